"""The platform every flow stands on: settings, database, schema, object store, messaging.

`config` (settings, read once), `db` (engine and transactions), `models` (the schema contract),
`migrate`, `storage` (GCS), `messaging` (Pub/Sub), `events` (CloudEvent and job message
parsing), `log`, `errors`, `runtime` (function start-up) and `packaging` (the deploy archive).
Imports nothing else of `common`.
"""
