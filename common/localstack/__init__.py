"""Local stand-ins for the cloud: the GCS emulator, the Pub/Sub emulator, served functions.

Used by `ai-infra dev` and by the tests; needs the `local` extra (and the Google Cloud SDK for
the Pub/Sub emulator). Also the embedded Postgres (`embedded_pg`) and its portable pgvector build.
May import the flows and `platform`; nothing but `cli`, `alembic/env.py` (to find the local
database), tests and benches imports it.
"""
