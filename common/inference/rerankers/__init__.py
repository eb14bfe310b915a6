"""Reranker implementations, one module per provider.

`common.inference.reranking` picks one from settings and runs it under a deadline.
"""
