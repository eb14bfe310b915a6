"""The platform every flow stands on: settings, database, schema, object store, messaging.

`config` (settings, read once), `db` (engine and transactions), `models` (the schema contract),
`migrate`, `storage` (GCS), `messaging` (Pub/Sub), `events` (CloudEvent and job message
parsing), `object_events` (storage CloudEvents where there is no Eventarc), `sources` (the one
document upsert per object generation, shared by the trigger and the API), `signed_urls`, `log`,
`errors`, `runtime` (function start-up) and `packaging` (the deploy archive). Imports nothing
else of `common`.
"""
