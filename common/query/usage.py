"""A team's usage over a range of UTC days, from the rows the system keeps anyway.

Per day and in total: `requests` (queries the API completed: one `query_logs` row each, both
modes, streamed or not), `answered_requests` (those grounded in retrieved sources, `used_rag`),
prompt and completion tokens (as the model reported them), `documents_added` and
`bytes_uploaded` (documents first seen that day and the size of their current version),
`chunks_created` (chunks written by ingestion jobs that finished that day, re-used ones
included). `documents` is the state now: documents by status, chunks and bytes stored. Rows of
deleted documents (and their jobs) are gone, so past days only count what still exists; query
logs are kept when documents are deleted.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from common.platform.config import get_settings
from common.platform.job_queue import team_queues
from common.platform.models import DocumentStatus

MAX_DAYS = 366
DEFAULT_DAYS = 30
# Dates outside this span name no data and would overflow date arithmetic at the edges.
EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class UsageRangeError(ValueError):
    """A bad `from`/`to` (the message names the parameter); the API answers 422."""


class UsageCounts(BaseModel):
    requests: int
    answered_requests: int
    prompt_tokens: int
    completion_tokens: int
    documents_added: int
    bytes_uploaded: int
    chunks_created: int


class UsageDay(UsageCounts):
    date: date


class DocumentsNow(BaseModel):
    by_status: dict[str, int]
    chunks_stored: int
    bytes_stored: int


class IngestionNow(BaseModel):
    """The team's ingestion queue now (see README "Fair ingestion")."""

    queued: int = Field(description="Jobs waiting for a worker.")
    deferred: int = Field(description="Jobs held back by fair scheduling until a slot frees up.")
    running: int = Field(description="Jobs running now.")
    oldest_queued_seconds: int | None = Field(description="Age of the oldest waiting job.")


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    team_id: uuid.UUID
    from_: date = Field(alias="from")
    to: date
    days: list[UsageDay]
    total: UsageCounts
    documents: DocumentsNow
    ingestion: IngestionNow


def parse_day(value: str | None, name: str) -> date | None:
    """`YYYY-MM-DD` (None when absent); anything else raises UsageRangeError naming `name`."""
    if value is None:
        return None
    if not _DATE.fullmatch(value):
        raise UsageRangeError(f"{name}: expected a date as YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise UsageRangeError(f"{name}: not a calendar date") from None
    if not EARLIEST <= day <= LATEST:
        raise UsageRangeError(f"{name}: must be between {EARLIEST} and {LATEST}")
    return day


def resolve_range(start: date | None, end: date | None, *, today: date) -> tuple[date, date]:
    """Inclusive days: `to` defaults to today (UTC), `from` to the 30 days ending at `to`."""
    end = end or max(today, start or today)
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise UsageRangeError("from: must not be after to")
    if (end - start).days + 1 > MAX_DAYS:
        raise UsageRangeError(f"to: the range is limited to {MAX_DAYS} days")
    return start, end


def today_utc() -> date:
    return datetime.now(UTC).date()


_PER_DAY = text(
    """
    WITH days AS (
        SELECT CAST(d AS date) AS day
        FROM generate_series(CAST(:start AS date), CAST(:end AS date), interval '1 day') AS d
    ), q AS (
        SELECT CAST(created_at AT TIME ZONE 'UTC' AS date) AS day, count(*) AS requests,
               count(*) FILTER (WHERE used_rag) AS answered_requests,
               coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
               coalesce(sum(completion_tokens), 0) AS completion_tokens
        FROM query_logs
        WHERE team_id = :team_id AND created_at >= :since AND created_at < :until
        GROUP BY 1
    ), d AS (
        SELECT CAST(created_at AT TIME ZONE 'UTC' AS date) AS day, count(*) AS documents_added,
               coalesce(sum(size_bytes), 0) AS bytes_uploaded
        FROM documents
        WHERE team_id = :team_id AND created_at >= :since AND created_at < :until
        GROUP BY 1
    ), j AS (
        SELECT CAST(j.finished_at AT TIME ZONE 'UTC' AS date) AS day,
               coalesce(sum(j.chunks_created), 0) AS chunks_created
        FROM ingestion_jobs j JOIN documents doc ON doc.id = j.document_id
        WHERE doc.team_id = :team_id AND j.status = 'succeeded'
          AND j.finished_at >= :since AND j.finished_at < :until
        GROUP BY 1
    )
    SELECT days.day,
           coalesce(q.requests, 0) AS requests,
           coalesce(q.answered_requests, 0) AS answered_requests,
           coalesce(q.prompt_tokens, 0) AS prompt_tokens,
           coalesce(q.completion_tokens, 0) AS completion_tokens,
           coalesce(d.documents_added, 0) AS documents_added,
           coalesce(d.bytes_uploaded, 0) AS bytes_uploaded,
           coalesce(j.chunks_created, 0) AS chunks_created
    FROM days LEFT JOIN q USING (day) LEFT JOIN d USING (day) LEFT JOIN j USING (day)
    ORDER BY days.day
    """
)

_NOW = text(
    """
    SELECT status, count(*) AS documents, coalesce(sum(chunk_count), 0) AS chunks,
           coalesce(sum(size_bytes), 0) AS bytes
    FROM documents WHERE team_id = :team_id GROUP BY status
    """
)


def team_usage(session: Session, team_id: uuid.UUID, start: date, end: date) -> UsageReport:
    """The report for the inclusive UTC days `start`..`end` (two statements, one snapshot)."""
    since = datetime.combine(start, time.min, UTC)
    until = datetime.combine(end, time.min, UTC) + timedelta(days=1)
    rows = session.execute(
        _PER_DAY,
        {"team_id": team_id, "start": start, "end": end, "since": since, "until": until},
    ).mappings()
    days = [UsageDay.model_validate(dict(row) | {"date": row["day"]}) for row in rows]
    total = UsageCounts(
        **{name: sum(getattr(day, name) for day in days) for name in UsageCounts.model_fields}
    )
    by_status = {status.value: 0 for status in DocumentStatus}
    chunks = stored = 0
    for row in session.execute(_NOW, {"team_id": team_id}):
        by_status[str(row.status)] = int(row.documents)
        chunks += int(row.chunks)
        stored += int(row.bytes)
    queues = team_queues(
        session,
        datetime.now(UTC),
        job_timeout_seconds=get_settings().job_timeout_seconds,
        team_id=team_id,
    )
    queue = queues[0] if queues else None
    return UsageReport(
        team_id=team_id,
        from_=start,
        to=end,
        days=days,
        total=total,
        documents=DocumentsNow(by_status=by_status, chunks_stored=chunks, bytes_stored=stored),
        ingestion=IngestionNow(
            queued=queue.queued if queue else 0,
            deferred=queue.deferred if queue else 0,
            running=queue.running if queue else 0,
            oldest_queued_seconds=queue.oldest_queued_seconds if queue else None,
        ),
    )
