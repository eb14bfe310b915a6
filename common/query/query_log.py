"""The audit trail of queries: one `query_logs` row and its `query_citations`, in ONE statement.

The question is stored only as its SHA-256. A citation whose chunk was replaced between the
search and this write (a re-ingestion racing the query) is dropped rather than failing the log.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import text

from common.platform.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryLogRecord:
    team_id: uuid.UUID
    project_id: uuid.UUID
    api_key_id: uuid.UUID | None
    request_id: str
    question_hash: str
    used_rag: bool
    top_k: int
    model: str | None
    latency_ms: int
    prompt_tokens: int | None
    completion_tokens: int | None
    # (chunk_id, rank, cosine score) per cited chunk
    citations: list[tuple[uuid.UUID, int, float]] = field(default_factory=list)


_INSERT = text(
    """
    WITH log AS (
        INSERT INTO query_logs (team_id, project_id, api_key_id, request_id, question_hash,
                                used_rag, top_k, model, latency_ms, prompt_tokens,
                                completion_tokens)
        VALUES (:team_id, :project_id, :api_key_id, :request_id, :question_hash, :used_rag,
                :top_k, :model, :latency_ms, :prompt_tokens, :completion_tokens)
        RETURNING id
    )
    INSERT INTO query_citations (query_id, chunk_id, rank, score)
    SELECT log.id, cited.chunk_id, cited.rank, cited.score
    FROM log,
         unnest(CAST(:chunk_ids AS uuid[]), CAST(:ranks AS integer[]),
                CAST(:scores AS double precision[])) AS cited(chunk_id, rank, score)
    WHERE EXISTS (SELECT 1 FROM document_chunks c WHERE c.id = cited.chunk_id)
    """
)


def write_query_log(record: QueryLogRecord) -> None:
    """Insert the log and its citations (one round trip plus the commit)."""
    with transaction() as session:
        session.execute(
            _INSERT,
            {
                "team_id": record.team_id,
                "project_id": record.project_id,
                "api_key_id": record.api_key_id,
                "request_id": record.request_id,
                "question_hash": record.question_hash,
                "used_rag": record.used_rag,
                "top_k": record.top_k,
                "model": record.model,
                "latency_ms": record.latency_ms,
                "prompt_tokens": record.prompt_tokens,
                "completion_tokens": record.completion_tokens,
                # Text array literals: typed by the CASTs, and empty lists need no element type.
                "chunk_ids": "{" + ",".join(str(c[0]) for c in record.citations) + "}",
                "ranks": "{" + ",".join(str(c[1]) for c in record.citations) + "}",
                "scores": "{" + ",".join(repr(float(c[2])) for c in record.citations) + "}",
            },
        )
