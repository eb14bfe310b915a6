"""Query flow: an API key and a question become a grounded answer with citations.

`api` (HTTP routing, validation, errors, OpenAPI), `auth` (API keys and team scope), `service`
(embed, `retrieval`, generate), `schemas` (request/response bodies), `query_log` (query_logs and
citations), `documents` (the documents endpoints), `intake` + `url_fetch` (documents over
HTTPS: signed uploads, URL and manual sources, SSRF-safe fetching), `rate_limit` (per key),
`usage`, `projects` (a team's projects) and `console` (the web console's static files). May
import `inference` and `platform`, never `ingestion`.
"""
