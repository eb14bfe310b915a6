"""Embedder implementations, one module per provider; pick one with `common.embeddings`."""
