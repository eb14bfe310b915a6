"""Flow 1: a storage event becomes a `documents` row, an `ingestion_jobs` row and one job message.

Safe under at-least-once, concurrent and out-of-order delivery:
- the document upsert only moves `generation` forward, so a stale finalize changes nothing;
- the job is unique per (document, generation) and its row lock serialises duplicate events,
  so a generation is published once (`published_at`), and republished only if an earlier try
  failed before its transaction committed;
- a finalize for a generation that is no longer the object's live one is ignored (its
  successor has its own event), so a late finalize cannot resurrect a deleted object;
- a delete removes the document only if it is for the generation we hold (or a newer one).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.document_attributes import (
    forget_sidecar,
    record_sidecar,
    refresh,
    sidecar_attributes,
    sidecar_target,
)
from common.platform.events import JobMessage, StorageObjectEvent
from common.platform.formats import sniff_mime_type
from common.platform.messaging import get_publisher
from common.platform.models import (
    Document,
    DocumentStatus,
    IngestionJob,
    JobStatus,
    Project,
)
from common.platform.sources import upsert_document
from common.platform.spaces import project_spaces
from common.platform.storage import ObjectGoneError, get_blob_store

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    QUEUED = "queued"
    ALREADY_QUEUED = "already_queued"
    UNCHANGED = "unchanged"
    IGNORED = "ignored"
    DELETED = "deleted"
    METADATA = "metadata"  # a sidecar: attributes changed, nothing re-embedded


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    reason: str = ""
    document_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None


def parse_object_name(name: str) -> tuple[uuid.UUID, str] | None:
    """`<project_id>/<path>` -> (project id, path); None for anything else (folders included)."""
    if not name or name.endswith("/"):
        return None
    head, _, path = name.partition("/")
    if not path:
        return None
    try:
        return uuid.UUID(head), path
    except ValueError:
        return None


def handle_object_finalized(event: StorageObjectEvent) -> IngestResult:
    parsed = parse_object_name(event.name)
    if parsed is None:
        return _ignored(event, "object name is not <project_id>/<path> (or is a folder)")
    project_id, path = parsed
    live = get_blob_store().stat(event.bucket, event.name)
    if live is None or live.generation != event.generation:
        return _ignored(event, "this generation is no longer the live object")
    target = sidecar_target(path)
    if target is not None:
        return _sidecar_finalized(event, project_id, target)
    with transaction() as session:
        team_id = session.scalar(select(Project.team_id).where(Project.id == project_id))
        if team_id is None:
            return _ignored(event, "unknown project")
        # The live object's metadata says where an API-written document came from.
        document_id = upsert_document(
            session,
            live,
            team_id=team_id,
            project_id=project_id,
            path=path,
            mime_type=sniff_mime_type(event.name, event.content_type),
        )
        if document_id is None:
            return _ignored(event, "a newer generation of this object is already recorded")
        document = session.get_one(Document, document_id, with_for_update=True)
        if _unchanged(session, document, event):
            job_id = _record_unchanged(session, document, event)
            logger.info("content unchanged; chunks reused", extra=_ids(document, job_id))
            return IngestResult(Outcome.UNCHANGED, document_id=document_id, job_id=job_id)
        job = _job_for_generation(session, document_id, event.generation)
        if job.published_at is not None:
            return IngestResult(Outcome.ALREADY_QUEUED, document_id=document_id, job_id=job.id)
        # Claim the publication and commit before publishing: a brand-new document's rows must
        # be visible to the worker the moment the message reaches it.
        job.published_at = claimed = datetime.now(UTC)
        message = JobMessage(job.id, document_id, event.bucket, event.name, job.generation, None)
    try:
        _publish(message)
    except Exception:
        with transaction() as session:
            session.execute(
                update(IngestionJob)
                .where(IngestionJob.id == message.job_id, IngestionJob.published_at == claimed)
                .values(published_at=None)
            )
        raise  # the event is redelivered and publishes again
    logger.info(
        "ingestion job queued",
        extra={"document_id": str(document_id), "job_id": str(message.job_id)},
    )
    return IngestResult(Outcome.QUEUED, document_id=document_id, job_id=message.job_id)


def handle_object_deleted(event: StorageObjectEvent) -> IngestResult:
    parsed = parse_object_name(event.name)
    if parsed is None:
        return _ignored(event, "object name is not <project_id>/<path> (or is a folder)")
    project_id, path = parsed
    target = sidecar_target(path)
    if target is not None:
        with transaction() as session:
            if forget_sidecar(
                session, project_id=project_id, path=target, generation=event.generation
            ):
                refresh(session, project_id, target)
        return IngestResult(Outcome.METADATA)
    with transaction() as session:
        document = session.scalar(
            select(Document)
            .where(Document.project_id == project_id, Document.gcs_uri == event.gcs_uri)
            .with_for_update()
        )
        if document is None:
            return _ignored(event, "no document for this object")
        if document.generation is not None and document.generation > event.generation:
            return _ignored(event, "delete of an overwritten generation")
        session.execute(delete(Document).where(Document.id == document.id))
    logger.info("document deleted with its object", extra={"document_id": str(document.id)})
    return IngestResult(Outcome.DELETED, document_id=document.id)


def _sidecar_finalized(
    event: StorageObjectEvent, project_id: uuid.UUID, target: str
) -> IngestResult:
    """A `<path>.metadata.json`: the attributes of the document at `path`, now or when it comes."""
    try:
        data = get_blob_store().download(event.bucket, event.name, event.generation)
    except ObjectGoneError:
        return _ignored(event, "this generation is no longer the live object")
    with transaction() as session:
        if session.scalar(select(Project.id).where(Project.id == project_id)) is None:
            return _ignored(event, "unknown project")
        attributes, error = sidecar_attributes(session, project_id, data, event.name)
        stored = record_sidecar(
            session,
            project_id=project_id,
            path=target,
            generation=event.generation,
            attributes=attributes,
            error=error,
        )
        document = refresh(session, project_id, target) if stored else None
        document_id = document.id if document else None
    logger.info(
        "sidecar recorded" if stored else "sidecar ignored: a newer generation is recorded",
        extra={"document_id": str(document_id) if document_id else None, "error": bool(error)},
    )
    return IngestResult(Outcome.METADATA, document_id=document_id)


def reprocess_document(document_id: uuid.UUID) -> uuid.UUID:
    """Queue the current generation of a document again (after a failure, or on demand)."""
    with transaction() as session:
        document = session.get(Document, document_id, with_for_update=True)
        if document is None or document.gcs_uri is None or document.generation is None:
            raise LookupError(f"document {document_id} not found or never uploaded")
        bucket, name = split_gcs_uri(document.gcs_uri)
        job = _job_for_generation(session, document.id, document.generation)
        job.status = JobStatus.QUEUED
        job.error_message = None
        job.attempts = 0
        job.started_at = job.finished_at = None
        document.status = DocumentStatus.UPLOADED
        document.error_message = None
        # Forget the reusable content so the file is really processed again.
        document.ready_content_hash = None
        publish_job(session, job, bucket, name)
        return job.id


def publish_job(session: Session, job: IngestionJob, bucket: str, name: str) -> None:
    """Publish for an existing job inside its transaction (the worker blocks on the row lock
    until the commit); if the commit fails, a retry publishes again."""
    _publish(JobMessage(job.id, job.document_id, bucket, name, job.generation, None))
    job.published_at = datetime.now(UTC)
    session.flush()


def _publish(message: JobMessage) -> None:
    get_publisher().publish(
        get_settings().jobs_topic,
        message.to_payload(),
        {"document_id": str(message.document_id)},
    )


def split_gcs_uri(uri: str) -> tuple[str, str]:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return bucket, name


def _job_for_generation(session: Session, document_id: uuid.UUID, generation: int) -> IngestionJob:
    """The job of this generation, created if needed and locked for this transaction."""
    session.execute(
        insert(IngestionJob)
        .values(document_id=document_id, generation=generation)
        .on_conflict_do_nothing(
            index_elements=["document_id", "generation"],
            index_where=IngestionJob.space_id.is_(None),
        )
    )
    return session.execute(
        select(IngestionJob)
        .where(
            IngestionJob.document_id == document_id,
            IngestionJob.generation == generation,
            IngestionJob.space_id.is_(None),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _unchanged(session: Session, document: Document, event: StorageObjectEvent) -> bool:
    """The same bytes as the ready chunks, embedded by the project's active model: reuse them
    (during a model switch too: every space the project keeps holds them)."""
    if event.md5_hex is None or document.ready_content_hash != event.md5_hex:
        return False
    spaces = project_spaces(session, document.project_id, get_settings())
    return document.embedding_model == spaces.active.model


def _record_unchanged(session: Session, document: Document, event: StorageObjectEvent) -> uuid.UUID:
    now = datetime.now(UTC)
    job = _job_for_generation(session, document.id, event.generation)
    if job.status is not JobStatus.SUCCEEDED:
        job.status = JobStatus.SUCCEEDED
        job.started_at = job.started_at or now
        job.finished_at = now
        job.chunks_created = document.chunk_count
        job.embedding_model = document.embedding_model
        job.notice = document.notice
    document.status = DocumentStatus.READY
    document.ready_generation = event.generation
    return job.id


def _ignored(event: StorageObjectEvent, reason: str) -> IngestResult:
    logger.warning(
        "storage event ignored: %s",
        reason,
        extra={"event_id": event.event_id, "bucket": event.bucket, "generation": event.generation},
    )
    return IngestResult(Outcome.IGNORED, reason=reason)


def _ids(document: Document, job_id: uuid.UUID) -> dict[str, str]:
    return {"document_id": str(document.id), "job_id": str(job_id)}
