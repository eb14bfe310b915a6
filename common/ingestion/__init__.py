"""Ingestion flow: a storage event becomes a document whose chunks queries can see.

`trigger` (object finalized/deleted -> document, job, job message), `jobs` (the worker:
download, `extract`, `chunking`, `sections` (each chunk's title and heading path), embed, then
`job_write`/`chunk_store` in one transaction, holding a `lease` renewed by a heartbeat),
`sweeper` (dead letters, expired leases, lost messages), `project_indexes` (an HNSW graph of its
own for each big project, kept by the sweep) and `monitoring` (the scheduled sweep's figures).
May import `inference` and `platform`, never `query`.
"""
