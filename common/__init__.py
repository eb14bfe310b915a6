"""ai-infra's code, one package per layer of the README's architecture diagram.

- `ingestion`: flow 1, bucket to chunks (trigger, jobs, extraction, chunking, final write, sweep).
- `query`: flow 2, question to cited answer (HTTP API, auth, retrieval, answers, logs, documents).
- `inference`: the model clients both flows use (embedders, generators, retry policy).
- `platform`: what everything stands on (settings, database, models, storage, messaging, events).
- `cli` and `localstack`: the operator's commands and the local stand-ins for the cloud.

Imports run one way: `functions/` -> cli/localstack -> flows -> inference -> platform; a flow
never imports the other flow (tests/test_layout.py enforces it).
"""
