"""Embedder implementations, one module per provider.

`common.inference.embeddings` picks one from settings.
"""
