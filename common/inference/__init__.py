"""Model clients both flows use: embedders, answer generators, rerankers and their retry policy.

`embeddings`, `generation` and `reranking` each define a protocol and the one factory that picks
an implementation (`embedders/`, `generators/`, `rerankers/`) from settings; `retry` is the
429/5xx policy of the cloud clients (the reranker only classifies failures and shares its backoff
gate: it never retries, it falls back). May import `platform` only.
"""
