"""Documents as the API and the CLI show them: status, last job, error; list, get, delete.

Every read is scoped by team: a document of another team is "not found", exactly like one that
does not exist. Listing is keyset-paginated (newest first) with an opaque cursor, so pages stay
cheap and stable while documents are added.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from common.platform.attributes import document_attributes
from common.platform.errors import ApiError
from common.platform.models import DocumentStatus
from common.query.filters import CompiledFilter

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class JobView(BaseModel):
    id: uuid.UUID
    status: str
    error_message: str | None
    # What a succeeded job left out (rows past the cap, pages that could not be read).
    notice: str | None
    attempts: int
    chunks_created: int | None
    embedding_model: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class DocumentView(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    title: str
    source_type: str
    source_url: str | None
    gcs_uri: str | None
    mime_type: str | None
    status: str
    size_bytes: int | None
    chunk_count: int
    embedding_model: str | None
    error_message: str | None
    notice: str | None
    attributes: dict[str, Any]
    # Why the last object metadata or sidecar was not applied (the document itself is fine).
    metadata_error: str | None
    created_at: datetime
    updated_at: datetime
    last_job: JobView | None


class DocumentPage(BaseModel):
    documents: list[DocumentView]
    next_cursor: str | None


class DeletedDocument(BaseModel):
    id: uuid.UUID
    deleted: bool
    object_deleted: bool


_SELECT = """
    SELECT d.id, d.project_id, d.title, d.source_type::text AS source_type, d.source_url, d.gcs_uri,
           d.mime_type, d.status::text AS status, d.size_bytes, d.chunk_count,
           d.embedding_model, d.error_message, d.notice, d.created_at, d.updated_at,
           d.attributes, d.path, d.metadata_error,
           j.id AS job_id, j.status::text AS job_status, j.error_message AS job_error,
           j.notice AS job_notice,
           j.attempts AS job_attempts, j.chunks_created AS job_chunks,
           j.embedding_model AS job_model, j.created_at AS job_created_at,
           j.started_at AS job_started_at, j.finished_at AS job_finished_at
    FROM documents d
    LEFT JOIN LATERAL (
        SELECT * FROM ingestion_jobs WHERE document_id = d.id
        ORDER BY generation DESC, created_at DESC LIMIT 1
    ) j ON true
"""

_LIST = (
    _SELECT
    + """
    WHERE d.project_id = :project_id AND d.team_id = :team_id
      AND (CAST(:status AS text) IS NULL OR d.status::text = CAST(:status AS text))
      AND (CAST(:after_created AS timestamptz) IS NULL
           OR (d.created_at, d.id) < (CAST(:after_created AS timestamptz),
                                      CAST(:after_id AS uuid)))
      AND {filter}
    ORDER BY d.created_at DESC, d.id DESC
    LIMIT :limit
    """
)
_LIST_ALL = text(_LIST.format(filter="true"))

_GET = text(_SELECT + " WHERE d.id = :document_id AND d.team_id = :team_id")


def _view(row: Any) -> DocumentView:
    job = None
    if row.job_id is not None:
        job = JobView(
            id=row.job_id,
            status=row.job_status,
            error_message=row.job_error,
            notice=row.job_notice,
            attempts=row.job_attempts,
            chunks_created=row.job_chunks,
            embedding_model=row.job_model,
            created_at=row.job_created_at,
            started_at=row.job_started_at,
            finished_at=row.job_finished_at,
        )
    return DocumentView(
        id=row.id,
        project_id=row.project_id,
        title=row.title,
        source_type=row.source_type,
        source_url=row.source_url,
        gcs_uri=row.gcs_uri,
        mime_type=row.mime_type,
        status=row.status,
        size_bytes=row.size_bytes,
        chunk_count=row.chunk_count,
        embedding_model=row.embedding_model,
        error_message=row.error_message,
        notice=row.notice,
        attributes=document_attributes(
            row.attributes,
            path=row.path,
            mime_type=row.mime_type,
            source_type=row.source_type,
            created_at=row.created_at,
            updated_at=row.updated_at,
        ),
        metadata_error=row.metadata_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_job=job,
    )


def encode_cursor(created_at: datetime, document_id: uuid.UUID) -> str:
    raw = json.dumps({"c": created_at.isoformat(), "i": str(document_id)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor encodes; 422 for anything this service did not hand out."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(payload["c"]), uuid.UUID(payload["i"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ApiError(422, "validation_error", "cursor: not a cursor from this API") from None


def list_documents(
    session: Session,
    team_id: uuid.UUID,
    project_id: uuid.UUID,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    status: DocumentStatus | None = None,
    document_filter: CompiledFilter | None = None,
) -> DocumentPage:
    """One page of a project's documents, newest first; the caller checked project ownership."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ApiError(422, "validation_error", f"limit: must be between 1 and {MAX_PAGE_SIZE}")
    after_created, after_id = decode_cursor(cursor) if cursor else (None, None)
    statement = text(_LIST.format(filter=document_filter.sql)) if document_filter else _LIST_ALL
    rows = session.execute(
        statement,
        {
            **(document_filter.params if document_filter else {}),
            "project_id": project_id,
            "team_id": team_id,
            "status": status.value if status else None,
            "after_created": after_created,
            "after_id": after_id,
            "limit": limit + 1,
        },
    ).all()
    documents = [_view(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.created_at, last.id)
    return DocumentPage(documents=documents, next_cursor=next_cursor)


def get_document(session: Session, team_id: uuid.UUID, document_id: uuid.UUID) -> DocumentView:
    row = session.execute(_GET, {"document_id": document_id, "team_id": team_id}).first()
    if row is None:
        raise ApiError(404, "not_found", "document not found")
    return _view(row)


def parse_gcs_uri(uri: str) -> tuple[str, str] | None:
    """(bucket, object name) of a gs:// URI, or None for anything else."""
    if not uri.startswith("gs://"):
        return None
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return (bucket, name) if bucket and name else None


def delete_document(document_id: uuid.UUID, team_id: uuid.UUID) -> DeletedDocument:
    """Delete the stored object, then the row (its chunks and jobs cascade).

    The object goes first: if storage is down nothing changed and the caller may retry
    (TransientError -> 503); an object already gone is fine. The delete event that storage
    then emits finds no document and is acknowledged by the ingest trigger.
    """
    from common.platform.db import transaction

    with transaction() as session:
        row = session.execute(
            text("SELECT gcs_uri FROM documents WHERE id = :id AND team_id = :team_id"),
            {"id": document_id, "team_id": team_id},
        ).first()
    if row is None:
        raise ApiError(404, "not_found", "document not found")
    object_deleted = False
    location = parse_gcs_uri(row.gcs_uri) if row.gcs_uri else None
    if location is not None:
        from common.platform.storage import get_blob_store

        object_deleted = get_blob_store().delete(*location)
    with transaction() as session:
        deleted = session.execute(
            text("DELETE FROM documents WHERE id = :id AND team_id = :team_id RETURNING id"),
            {"id": document_id, "team_id": team_id},
        ).first()
    logger.info(
        "document deleted",
        extra={"document_id": str(document_id), "object_deleted": object_deleted},
    )
    return DeletedDocument(
        id=document_id, deleted=deleted is not None, object_deleted=object_deleted
    )
