"""Flow 2: run one ingestion job (download, extract, chunk, embed, replace chunks).

At-least-once rules: a finished job or one superseded by a newer generation is acknowledged and
skipped; a job another worker is running under a live lease is acknowledged too (that worker
finishes it, or dies, stops renewing its lease, and the sweep or a redelivery takes the job
over), so a crash never spends the message's delivery attempts. While it runs, an attempt
renews its lease (`lease.LeaseKeeper`). The final write re-checks, under row locks, that this
attempt still owns the job and the generation is still current, then replaces the chunks,
finishes the job and makes the document ready in ONE transaction. Bad files fail the job
permanently; transient errors are re-raised so Pub/Sub redelivers, until the last attempt,
which fails the job and dead-letters the message.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np
from sqlalchemy.orm import Session

from common.inference.embeddings import embedder_for_space
from common.inference.retry import ModelRequestError
from common.ingestion import scheduling
from common.ingestion.chunking import Chunk, TokenCounter, chunk_text
from common.ingestion.embedding_switch import activate_if_complete, queue_missing
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions
from common.ingestion.job_write import fail_document, give_up, lock_for_write, write_result
from common.ingestion.lease import LeaseKeeper, LeaseLostError, lease_deadline, lease_is_live
from common.ingestion.locations import with_locations
from common.ingestion.ocr import get_ocr_engine, ocr_deadline
from common.ingestion.reembed import (
    ChunksRewrittenError,
    Reembedded,
    embed_stored_chunks,
    write_space_vectors,
)
from common.ingestion.sections import (
    CONTEXT_TOKENS,
    document_title,
    embedding_input,
    with_context,
)
from common.ingestion.trigger import publish_job, split_gcs_uri
from common.platform.config import Settings, get_settings
from common.platform.db import transaction
from common.platform.errors import PermanentIngestionError, TransientError
from common.platform.events import JobMessage
from common.platform.messaging import get_publisher
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus
from common.platform.spaces import EmbeddingSpace, ProjectSpaces, project_spaces
from common.platform.storage import get_blob_store

logger = logging.getLogger(__name__)

# Writes in a row that found the project switched to a space the chunks lack (each embeds them
# for it first); past that, the job is retried later.
FINISH_ATTEMPTS = 3


class JobOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    GAVE_UP = "gave_up"
    DEFERRED = "deferred"  # fair scheduling holds it back; released when a slot frees up


@dataclass(frozen=True)
class _Claim:
    job_id: uuid.UUID
    attempt: int
    document_id: uuid.UUID
    project_id: uuid.UUID
    mime_type: str | None
    size_bytes: int | None
    content_hash: str | None
    # The project's embedding spaces at the claim; a re-embedding job's own space.
    spaces: ProjectSpaces
    space_id: uuid.UUID | None = None


def run_job(message: JobMessage) -> JobOutcome:
    """Process one job message; returns normally to acknowledge, raises TransientError to retry.

    The slot a finished job frees goes to the fairest deferred job: this worker takes it over
    itself (`_hand_off`) while its request is younger than `AI_INFRA_INGEST_HANDOFF_SECONDS`,
    else, or when that job is not its to take, it is released (published again)."""
    started = time.monotonic()
    claim = _claim(message)
    if isinstance(claim, JobOutcome):
        return claim
    try:
        outcome = _run_claimed(message, claim)
    except BaseException:
        _release_slot()
        raise
    _run_handed_off(started)
    return outcome


def _run_handed_off(started: float) -> None:
    """Run deferred jobs handed to this worker as its slot frees, until none is its to take or
    the request is old enough that the next job might outlive the function's timeout; then the
    slot (or what is left of it) is released to a published message as before."""
    settings = get_settings()
    while time.monotonic() - started < settings.ingest_handoff_seconds:
        taken = _hand_off(settings)
        if taken is None:
            break
        message, claim = taken
        try:
            _run_claimed(message, claim)
        except TransientError:
            # No Pub/Sub delivery stands behind a handed-off job: it is published again (its
            # failed attempt counted), and this worker stops taking jobs over.
            _republish(message)
            break
    _release_slot()


def _hand_off(settings: Settings) -> tuple[JobMessage, _Claim] | None:
    """Claim the fairest deferred job for this worker's free slot, admitted as a delivery of it
    would be; None when there is none, the slot is spoken for, or a worker holds its rows."""
    now = datetime.now(UTC)
    with transaction() as session:
        scheduling.lock(session)
        if not scheduling.has_free_slot(session, now, settings):
            return None
        fairest = scheduling.releasable(session, now, settings, limit=1)
        if not fairest:
            return None
        # The advisory lock is held, so rows are only tried (SKIP LOCKED), never waited for: a
        # worker claiming the job holds its row locks and waits for the advisory lock.
        job = session.get(IngestionJob, fairest[0], with_for_update={"skip_locked": True})
        if job is None:
            return None
        document = session.get(Document, job.document_id, with_for_update={"skip_locked": True})
        if (
            document is None
            or not document.gcs_uri
            or job.deferred_at is None
            or job.status is not JobStatus.QUEUED
            or document.generation != job.generation
            or scheduling.admits(session, document.team_id, now, settings) is not None
        ):
            return None
        bucket, name = split_gcs_uri(document.gcs_uri)
        message = JobMessage(job.id, document.id, bucket, name, job.generation, None)
        logger.info(
            "deferred job handed to a worker whose slot freed",
            extra={"job_id": str(job.id), "team_id": str(document.team_id)},
        )
        return message, _start(session, job, document, now, settings)


def _republish(message: JobMessage) -> None:
    try:
        with transaction() as session:
            job = session.get(IngestionJob, message.job_id, with_for_update=True)
            if job is not None and job.status is JobStatus.QUEUED:
                publish_job(session, job, message.bucket, message.name)
    except Exception:  # the sweep publishes a queued job whose last message is stale
        logger.exception("could not publish a handed-off job again; the sweep will")


def _run_claimed(message: JobMessage, claim: _Claim) -> JobOutcome:
    settings = get_settings()
    started = time.monotonic()
    stages = _Stages()
    try:
        with LeaseKeeper(claim.job_id, claim.attempt, settings.job_lease_seconds) as lease:
            if claim.space_id is not None:
                with stages.timed("embed"):
                    vectors = embed_stored_chunks(claim.document_id, claim.space_id)
                lease.check()
                with stages.timed("write"):
                    written = _finish_reembedding(claim, vectors)
            else:
                built = _build_chunks(message, claim, stages, lease)
                lease.check()
                with stages.timed("write"):
                    written = _finish(claim, built, lease)
    except LeaseLostError:
        logger.warning("attempt dropped: its job was taken over", extra=_log_ids(claim))
        return JobOutcome.SKIPPED
    except PermanentIngestionError as error:
        _fail(claim, str(error))
        logger.warning("ingestion failed: %s", error, extra=_log_ids(claim))
        return JobOutcome.FAILED
    except ModelRequestError as error:
        # Not the file's fault, but retrying cannot help either (bad credentials, model or
        # request): fail now; `ai-infra documents reprocess --failed` once it is fixed.
        _fail(claim, f"the embedding model refused the request ({error}); fix and reprocess")
        logger.error("embedding request refused: %s", error, extra=_log_ids(claim))
        return JobOutcome.FAILED
    except Exception as error:
        reason = _describe(error)
        if claim.attempt >= settings.max_delivery_attempts:
            _fail(claim, f"gave up after {claim.attempt} attempts: {reason}")
            _dead_letter(message, reason)
            logger.error("ingestion gave up: %s", reason, extra=_log_ids(claim))
            return JobOutcome.GAVE_UP
        _record_retry(claim, reason)
        logger.warning("ingestion will be retried: %s", reason, extra=_log_ids(claim))
        if isinstance(error, TransientError):
            raise
        raise TransientError(reason) from error
    if written is None:
        return JobOutcome.SKIPPED
    if claim.spaces.pending is not None:
        _activate_if_complete(claim.project_id)
    logger.info(
        "ingestion succeeded",
        extra={
            **_log_ids(claim),
            "chunks": written,
            "seconds": round(time.monotonic() - started, 3),
            "stages": stages.rounded(),
        },
    )
    return JobOutcome.SUCCEEDED


def _claim(message: JobMessage) -> _Claim | JobOutcome:
    settings = get_settings()
    now = datetime.now(UTC)
    with transaction() as session:
        # Lock order everywhere: document, then job (the trigger upserts the document first).
        document = session.get(Document, message.document_id, with_for_update=True)
        job = session.get(IngestionJob, message.job_id, with_for_update=True)
        if job is None or document is None or job.document_id != document.id:
            logger.info(
                "job no longer exists (document deleted)", extra={"job_id": str(message.job_id)}
            )
            return JobOutcome.SKIPPED
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return JobOutcome.SKIPPED
        if document.generation != job.generation:
            _supersede(job, document, now)
            return JobOutcome.SKIPPED
        if job.status is JobStatus.RUNNING:
            if lease_is_live(job, now, settings):
                # Its worker is alive and will finish (or its lease runs out and the sweep
                # republishes): acknowledge, so this delivery spends no attempt of the job's.
                logger.info(
                    "job owned by a live worker; delivery acknowledged",
                    extra={"job_id": str(job.id), "attempt": job.attempts},
                )
                return JobOutcome.SKIPPED
            if job.attempts >= settings.max_delivery_attempts:
                give_up(session, job, document, now)
                logger.error(
                    "ingestion gave up: %s", job.error_message, extra={"job_id": str(job.id)}
                )
                return JobOutcome.GAVE_UP
            logger.warning(
                "taking over a job whose worker stopped renewing its lease",
                extra={"job_id": str(job.id), "attempt": job.attempts},
            )
        scheduling.lock(session)
        waiting_for = scheduling.admits(session, document.team_id, now, settings)
        if waiting_for is not None:
            job.deferred_at = job.deferred_at or now
            job.deferrals += 1
            logger.info(
                "job deferred: %s",
                waiting_for,
                extra={"job_id": str(job.id), "team_id": str(document.team_id)},
            )
            # A slot this delivery leaves free (it yielded to a team running fewer jobs) goes
            # to the fairest deferred job now, not when some job next finishes.
            session.flush()
            scheduling.release(session, now, settings)
            return JobOutcome.DEFERRED
        return _start(session, job, document, now, settings)


def _start(
    session: Session, job: IngestionJob, document: Document, now: datetime, settings: Settings
) -> _Claim:
    """Make an admitted job this worker's (rows locked by the caller): one attempt more, a
    fresh lease."""
    job.deferred_at = None
    job.attempts += 1
    job.status = JobStatus.RUNNING
    job.started_at = now
    job.lease_expires_at = lease_deadline(settings.job_lease_seconds, now)
    if document.status is not DocumentStatus.READY and job.space_id is None:
        document.status = DocumentStatus.PROCESSING
    return _Claim(
        job_id=job.id,
        attempt=job.attempts,
        document_id=document.id,
        project_id=document.project_id,
        mime_type=document.mime_type,
        size_bytes=document.size_bytes,
        content_hash=document.content_hash,
        spaces=project_spaces(session, document.project_id, settings),
        space_id=job.space_id,
    )


def _release_slot() -> None:
    """This job's slot is free: hand it to the fairest deferred job. Best effort: a sweep
    releases what a failure here leaves."""
    try:
        with transaction() as session:
            scheduling.release(session, datetime.now(UTC), get_settings())
    except Exception:
        logger.exception("could not release deferred jobs; the sweep will")


class _Stages:
    """Seconds per pipeline stage, logged with each success (bench/ingest.py reads them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def rounded(self) -> dict[str, float]:
        return {stage: round(value, 4) for stage, value in self.seconds.items()}


@dataclass(frozen=True)
class _Built:
    chunks: list[Chunk]
    # The chunks' vectors in each space the project maintains (active first).
    embeddings: dict[EmbeddingSpace, np.ndarray]
    notice: str | None


def _build_chunks(
    message: JobMessage, claim: _Claim, stages: _Stages, lease: LeaseKeeper
) -> _Built:
    settings = get_settings()
    limit = settings.max_file_bytes
    if claim.size_bytes is not None and claim.size_bytes > limit:
        raise PermanentIngestionError(_too_large(claim.size_bytes, limit))
    with stages.timed("download"):
        data = get_blob_store().download(message.bucket, message.name, message.generation)
    if len(data) > limit:
        raise PermanentIngestionError(_too_large(len(data), limit))
    if (
        claim.content_hash
        and hashlib.md5(data, usedforsecurity=False).hexdigest() != claim.content_hash
    ):
        raise PermanentIngestionError(
            "the object changed while queued (superseded by a newer upload)"
        )
    # Chunks are cut for the active space's model; every maintained space embeds them.
    embedder = embedder_for_space(claim.spaces.active, settings)
    # A chunk longer than a model's input would be silently truncated when embedded; the
    # context line (title and section headings) is embedded before the content.
    max_tokens = min(
        [settings.chunk_tokens]
        + [
            embedder_for_space(space, settings).max_input_tokens - CONTEXT_TOKENS
            for space in claim.spaces.maintained
        ]
    )
    with stages.timed("extract"):
        document = extract_text(
            data,
            mime_type=claim.mime_type,
            filename=message.name,
            options=extraction_options(settings, embedder, max_tokens, lease.check),
        )
    with stages.timed("chunk"):
        chunks = chunk_text(
            document,
            max_tokens=max_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
            tokenizer=embedder,
        )
        chunks = with_context(
            chunks,
            title=document_title(message.name),
            headings=document.headings,
            tokenizer=embedder,
        )
        chunks = with_locations(chunks, document)
    if not chunks:
        raise PermanentIngestionError("no text to index after extraction")
    lease.check()
    embeddings: dict[EmbeddingSpace, np.ndarray] = {}
    with stages.timed("embed"):
        for space in claim.spaces.maintained:
            embeddings[space] = _embed(chunks, space, settings)
            lease.check()
    return _Built(chunks, embeddings, _notice(document))


def _embed(chunks: list[Chunk], space: EmbeddingSpace, settings: Settings) -> np.ndarray:
    inputs = [embedding_input(chunk) for chunk in chunks]
    return np.asarray(embedder_for_space(space, settings).embed_documents(inputs))


def extraction_options(
    settings: Settings, tokenizer: TokenCounter, max_tokens: int, checkpoint: Callable[[], None]
) -> ExtractOptions:
    """The limits and helpers of one job's extraction, from the settings."""
    return ExtractOptions(
        max_pages=settings.max_pdf_pages,
        max_rows=settings.max_sheet_rows,
        max_image_pixels=settings.max_image_pixels,
        block_tokens=max_tokens,
        tokenizer=tokenizer,
        ocr=get_ocr_engine(settings),
        ocr_dpi=settings.ocr_dpi,
        checkpoint=checkpoint,
        deadline=ocr_deadline(settings),
    )


def _notice(document: ExtractedText) -> str | None:
    return "; ".join(document.notices)[:2000] or None


def _finish(claim: _Claim, built: _Built, lease: LeaseKeeper) -> int | None:
    """Write the chunks in every space the project maintains now.

    A switch may have started, flipped or been rolled back since the claim. The project's row,
    held shared from before the document's (the lock order of `embedding_switch`) until the
    write commits, keeps the spaces as read: an activation waits for this write and then sees
    the re-embedding it queued for a pending space. The active space is never left to such a
    job (the document would be ready but unsearchable until it ran): when a flip made it one
    the chunks lack, they are embedded for it here, outside any transaction, and read again.
    """
    settings = get_settings()
    for _ in range(FINISH_ATTEMPTS):
        with transaction() as session:
            spaces = project_spaces(session, claim.project_id, settings, hold=True)
            if spaces.active in built.embeddings:
                return _write(session, claim, built, spaces)
        logger.info(
            "the project switched models since the claim: embedding for its active space",
            extra={**_log_ids(claim), "space": spaces.active.label},
        )
        vectors = _embed(built.chunks, spaces.active, settings)
        built = replace(built, embeddings={**built.embeddings, spaces.active: vectors})
        lease.check()
    raise TransientError(
        "the project's embedding model kept changing while its chunks were written"
    )


def _write(session: Session, claim: _Claim, built: _Built, spaces: ProjectSpaces) -> int | None:
    locked = lock_for_write(
        session, job_id=claim.job_id, document_id=claim.document_id, attempt=claim.attempt
    )
    if locked is None:
        return None
    written = write_result(
        session,
        locked,
        chunks=built.chunks,
        embeddings={
            space: vectors
            for space, vectors in built.embeddings.items()
            if space in spaces.maintained
        },
        model=spaces.active.model,
        notice=built.notice,
    )
    for space in spaces.maintained:
        if space not in built.embeddings:
            queue_missing(session, claim.project_id, space)  # a pending or previous space
    return written


def _finish_reembedding(claim: _Claim, built: Reembedded) -> int | None:
    with transaction() as session:
        # Held like `_finish`'s: a rollback cancelling the space waits for these vectors (and
        # drops them) instead of leaving them behind in its table.
        spaces = project_spaces(session, claim.project_id, get_settings(), hold=True)
        locked = lock_for_write(
            session, job_id=claim.job_id, document_id=claim.document_id, attempt=claim.attempt
        )
        if locked is None:
            return None
        if built.space not in spaces.maintained:
            _close(session, claim, "the embedding switch was cancelled")
            return None
        try:
            return write_space_vectors(session, locked, built)
        except ChunksRewrittenError as error:
            _close(session, claim, str(error))
            return None


def _close(session: Session, claim: _Claim, reason: str) -> None:
    """End a re-embedding job that has nothing left to do (its document is fine)."""
    job = session.get_one(IngestionJob, claim.job_id)
    job.status, job.error_message = JobStatus.FAILED, reason
    job.finished_at, job.lease_expires_at = datetime.now(UTC), None


def _activate_if_complete(project_id: uuid.UUID) -> None:
    """A switching project's job finished: flip it if its new space is now complete. Best
    effort: the sweep checks again."""
    try:
        with transaction() as session:
            activate_if_complete(session, project_id, get_settings())
    except Exception:
        logger.exception("could not check the embedding switch; the sweep will")


def _locked(session: Session, claim: _Claim) -> tuple[IngestionJob | None, Document | None]:
    """The job and document if this attempt still owns a current job, else (None, None)."""
    document = session.get(Document, claim.document_id, with_for_update=True)
    job = session.get(IngestionJob, claim.job_id, with_for_update=True)
    if job is None or document is None:
        return None, None
    if job.status is not JobStatus.RUNNING or job.attempts != claim.attempt:
        return None, None
    if document.generation != job.generation:
        _supersede(job, document, datetime.now(UTC))
        return None, None
    return job, document


def _fail(claim: _Claim, reason: str) -> None:
    with transaction() as session:
        job, document = _locked(session, claim)
        if job is None or document is None:
            return
        job.status = JobStatus.FAILED
        job.error_message = reason
        job.finished_at = datetime.now(UTC)
        if job.space_id is None:  # a failed re-embedding leaves the document as it is
            fail_document(session, document, reason)


def _record_retry(claim: _Claim, reason: str) -> None:
    """Keep the last error visible and release the lease so the redelivery can run at once."""
    try:
        with transaction() as session:
            job, _ = _locked(session, claim)
            if job is not None:
                job.status = JobStatus.QUEUED
                job.lease_expires_at = None
                job.error_message = f"attempt {claim.attempt} failed: {reason}"
    except Exception:  # the database itself may be what failed; the lease then expires
        logger.exception("could not record the failed attempt", extra=_log_ids(claim))


def _supersede(job: IngestionJob, document: Document, now: datetime) -> None:
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        job.status = JobStatus.FAILED
        job.error_message = f"superseded by generation {document.generation}"
        job.finished_at = now


def _dead_letter(message: JobMessage, reason: str) -> None:
    settings = get_settings()
    try:
        get_publisher().publish(
            settings.dead_letter_topic, message.to_payload(), {"reason": reason[:500]}
        )
    except TransientError:
        logger.exception("could not publish to the dead-letter topic")


def _too_large(size: int, limit: int) -> str:
    return f"the file is too large ({size:,} bytes; the limit is {limit:,} bytes)"


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:500] if text else type(error).__name__


def _log_ids(claim: _Claim) -> dict[str, object]:
    return {
        "job_id": str(claim.job_id),
        "document_id": str(claim.document_id),
        "attempt": claim.attempt,
    }
