"""Generator implementations, one module per provider, and their shared types (`base`).

`common.inference.generation` picks one from settings.
"""
