"""The Vertex AI ranking API (Discovery Engine `:rank`) over plain httpx.

`POST {base}/projects/{project}/locations/global/rankingConfigs/default_ranking_config:rank`
with `{"model", "query", "records": [{"id", "title", "content"}], "topN",
"ignoreRecordDetailsInResponse": true}` answers `{"records": [{"id", "score"}, ...]}`, best
first, scores in [0, 1]. The API takes at most 200 records a request and scores at most a model's
context window of each record (1,024 tokens for the -004 models, 512 for the older ones; longer
records are cut by the API). Records are cut here to that budget (title first, then the content,
with the 4-bytes-a-token estimate the Vertex embedder uses), so what is sent is what is scored and
no bytes travel for nothing; more than 200 records are never sent.

Credentials: `AI_INFRA_VERTEX_ACCESS_TOKEN` (stand-ins), else Application Default Credentials with
the cloud-platform scope, refreshed under a lock when they expire. The caller needs
`discoveryengine.rankingConfigs.rank` on the project (infra/iam.tf).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import httpx

from common.inference.rerankers.base import RankedRecord, RerankRecord
from common.platform.config import Settings

RANKING_BASE_URL = "https://discoveryengine.googleapis.com/v1"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
MAX_RECORDS_PER_REQUEST = 200
# Tokens of each record (title + content) a model scores; the rest is ignored by the API.
RECORD_TOKEN_LIMITS = {
    "semantic-ranker-default-004": 1024,
    "semantic-ranker-fast-004": 1024,
    "semantic-ranker-default@latest": 1024,
    "semantic-ranker-fast@latest": 1024,
    "semantic-ranker-default-003": 512,
    "semantic-ranker-default-002": 512,
    "semantic-ranker-512-003": 512,
    "semantic-ranker-512@latest": 512,
}
DEFAULT_RECORD_TOKENS = 512  # an unknown model: the smallest window any of them has
BYTES_PER_TOKEN = 4
MAX_TITLE_SHARE = 4  # a title takes at most a quarter of the record's budget


def record_token_limit(model: str) -> int:
    return RECORD_TOKEN_LIMITS.get(model, DEFAULT_RECORD_TOKENS)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def cut_to_tokens(text: str, tokens: int) -> str:
    """The longest prefix of `text` whose estimate fits `tokens` (whole characters only)."""
    limit = max(0, tokens) * BYTES_PER_TOKEN
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def record_payload(record: RerankRecord, token_limit: int) -> dict[str, str]:
    """The record as the API takes it, cut to `token_limit` estimated tokens in all."""
    title = cut_to_tokens(record.title, token_limit // MAX_TITLE_SHARE)
    content = cut_to_tokens(record.content, token_limit - estimate_tokens(title))
    payload = {"id": record.id, "title": title, "content": content}
    if not content and not title:  # the API refuses a record with neither
        payload["content"] = " "
    return payload


class VertexRanker:
    """Reranker for the Vertex AI ranking API; one pooled httpx client per instance."""

    def __init__(self, settings: Settings, *, credentials: Any = None) -> None:
        self.model_name = settings.rerank_model
        self.record_tokens = record_token_limit(self.model_name)
        base = (settings.rerank_base_url or RANKING_BASE_URL).rstrip("/")
        self.url = (
            f"{base}/projects/{settings.gcp_project}/locations/global"
            "/rankingConfigs/default_ranking_config:rank"
        )
        # Every phase bounded by the budget too, so a thread left behind by a timed-out call
        # ends soon (the caller stopped waiting for it at the deadline already).
        self._http = httpx.Client(timeout=settings.rerank_timeout_seconds)
        self._static_token = settings.vertex_access_token if credentials is None else None
        self._credentials = credentials
        self._lock = threading.Lock()

    def _token(self) -> str:
        if self._static_token:
            return self._static_token
        with self._lock:
            if self._credentials is None:
                import google.auth

                self._credentials, _ = google.auth.default(scopes=list(SCOPES))
            if not self._credentials.valid:
                from google.auth.transport.requests import Request

                self._credentials.refresh(Request())
            return str(self._credentials.token)

    def payload(self, query: str, records: Sequence[RerankRecord], *, top_n: int) -> dict[str, Any]:
        sent = records[:MAX_RECORDS_PER_REQUEST]
        return {
            "model": self.model_name,
            "query": query,
            "records": [record_payload(record, self.record_tokens) for record in sent],
            "topN": max(1, min(top_n, len(sent))),
            "ignoreRecordDetailsInResponse": True,
        }

    def rank(
        self, query: str, records: Sequence[RerankRecord], *, top_n: int
    ) -> list[RankedRecord]:
        if not records:
            return []
        response = self._http.post(
            self.url,
            json=self.payload(query, records, top_n=top_n),
            headers={"Authorization": f"Bearer {self._token()}"},
        )
        response.raise_for_status()
        data = response.json()
        ranked = data.get("records") if isinstance(data, dict) else None
        if not isinstance(ranked, list):
            raise ValueError(f"{self.model_name} sent a malformed ranking: {str(data)[:200]}")
        return [
            RankedRecord(id=str(item["id"]), score=float(item.get("score", 0.0)))
            for item in ranked
            if isinstance(item, dict) and "id" in item
        ]
