"""The final write of an ingestion job: lock, check ownership, bookkeeping, COPY — lean.

This is the hot path of every job, so it runs plain SQL (no ORM objects): one statement that
locks the document, then the job (the order every path uses); one that removes the old
chunks, finishes the job and readies the document; then the COPY of the new chunks, all in
the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from common.ingestion.chunk_store import copy_chunks, copy_space_vectors
from common.ingestion.chunking import Chunk
from common.platform.models import Document, DocumentChunk, DocumentStatus, IngestionJob, JobStatus
from common.platform.spaces import EmbeddingSpace

# Both row locks in one round trip, document first: the lateral subquery runs (and locks the
# job) only after the document row has been locked, the order every other path uses.
_LOCK = text(
    """
    SELECT d.project_id, d.generation, d.ready_generation, j.status, j.attempts, j.generation
    FROM (SELECT id, project_id, generation, ready_generation FROM documents
          WHERE id = :document_id FOR UPDATE) AS d
    CROSS JOIN LATERAL (SELECT status::text AS status, attempts, generation FROM ingestion_jobs
                        WHERE id = :job_id AND document_id = d.id FOR UPDATE) AS j
    """
)
_SUPERSEDE = text(
    "UPDATE ingestion_jobs SET status = 'failed', finished_at = now(), updated_at = now(), "
    "error_message = 'superseded by generation ' || :current WHERE id = :id"
)
# Old chunks out, job succeeded, document ready: one round trip (the COPY follows).
_FINISH = text(
    """
    WITH gone AS (
        DELETE FROM document_chunks WHERE document_id = :document_id AND :has_chunks
    ), finished AS (
        UPDATE ingestion_jobs
        SET status = 'succeeded', finished_at = now(), chunks_created = :written,
            embedding_model = :model, error_message = NULL, notice = :notice, updated_at = now()
        WHERE id = :job_id
    )
    UPDATE documents
    SET status = 'ready', error_message = NULL, notice = :notice, ready_generation = :generation,
        ready_content_hash = content_hash, embedding_model = :model, chunk_count = :written,
        updated_at = now()
    WHERE id = :document_id
    """
)


@dataclass(frozen=True)
class LockedJob:
    job_id: uuid.UUID
    document_id: uuid.UUID
    project_id: uuid.UUID
    generation: int
    has_chunks: bool


def lock_for_write(
    session: Session, *, job_id: uuid.UUID, document_id: uuid.UUID, attempt: int | None
) -> LockedJob | None:
    """Lock the rows; None unless `attempt` still owns a running job of the current generation.

    A job whose document moved on to a newer generation is marked superseded. `attempt=None`
    skips the ownership check (benchmarks replaying finished jobs).
    """
    row = session.execute(_LOCK, {"document_id": document_id, "job_id": job_id}).first()
    if row is None:
        return None
    project_id, current_generation, ready_generation, status, attempts, generation = row
    if attempt is not None and (status != "running" or attempts != attempt):
        return None
    if current_generation != generation:
        if status in ("queued", "running"):
            session.execute(_SUPERSEDE, {"id": job_id, "current": str(current_generation)})
        return None
    return LockedJob(
        job_id=job_id,
        document_id=document_id,
        project_id=project_id,
        generation=generation,
        # Chunks are only ever written here, together with ready_generation.
        has_chunks=ready_generation is not None,
    )


def write_result(
    session: Session,
    locked: LockedJob,
    *,
    chunks: Sequence[Chunk],
    embeddings: Mapping[EmbeddingSpace, np.ndarray],
    model: str,
    notice: str | None = None,
) -> int:
    """Replace the chunks, finish the job and ready the document (rows locked by the caller):
    the chunks' vectors go to every space given (the inline one with the chunks, the others'
    tables after them); `notice`: what the extraction left out, kept on both."""
    session.execute(
        _FINISH,
        {
            "document_id": locked.document_id,
            "job_id": locked.job_id,
            "generation": locked.generation,
            "written": len(chunks),
            "model": model,
            "notice": notice,
            "has_chunks": locked.has_chunks,
        },
    )
    chunk_ids = [uuid.uuid4() for _ in chunks]
    inline = next((vectors for space, vectors in embeddings.items() if space.table is None), None)
    written = copy_chunks(
        session,
        document_id=locked.document_id,
        project_id=locked.project_id,
        chunks=chunks,
        embeddings=inline,
        chunk_ids=chunk_ids,
    )
    for space, vectors in embeddings.items():
        if space.table is not None:
            copy_space_vectors(
                session,
                space=space,
                project_id=locked.project_id,
                chunk_ids=chunk_ids,
                embeddings=vectors,
            )
    return written


def fail_document(session: Session, document: Document, reason: str) -> None:
    """The document's current generation failed: say why, and drop the stale earlier chunks."""
    document.status = DocumentStatus.FAILED
    document.error_message = reason
    # The object now holds the failed generation, so chunks of an earlier one no longer match it.
    session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == document.id))
    document.chunk_count = 0
    document.ready_generation = None
    document.ready_content_hash = None


WORKER_DIED = "the worker stopped without finishing (killed, timed out or out of memory)"


def give_up(session: Session, job: IngestionJob, document: Document, now: datetime) -> None:
    """The job used every attempt: fail it (and its document, if still current) with the reason."""
    reason = job.error_message or WORKER_DIED
    reason = reason.split(": ", 1)[1] if reason.startswith("attempt ") else reason
    job.status = JobStatus.FAILED
    job.error_message = f"gave up after {job.attempts} attempts: {reason}"
    job.finished_at = now
    job.lease_expires_at = None
    if document.generation == job.generation and job.space_id is None:
        fail_document(session, document, job.error_message)
