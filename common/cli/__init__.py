"""The `ai-infra` operator command: one module per command group, assembled in `main`.

The outermost layer: may import every other package of `common`; none imports it.
"""
