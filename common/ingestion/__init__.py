"""Ingestion flow: a storage event becomes a document whose chunks queries can see.

`trigger` (object finalized/deleted -> document, job, job message), `jobs` (the worker:
download, `extract`, `chunking`, embed, then `job_write`/`chunk_store` in one transaction) and
`sweeper` (dead letters and expired leases). May import `inference` and `platform`, never `query`.
"""
