"""Changing a project's embedding model without downtime: fill a new space, flip, roll back.

`start` makes the target space the project's *pending* one and queues one re-embedding job per
ready document that lacks vectors there (ordinary ingestion jobs with a `space_id`: Pub/Sub,
leases, retries, fair scheduling and quota-aware batching as for any upload). Meanwhile every
write of the project's chunks fills every space it maintains (`ProjectSpaces.maintained`), so
uploads during the switch land in both. `activate_if_complete` runs after each job of a
switching project: once no re-embedding job is left and every ready document has its vectors
in the pending space, the pending space becomes active and the active one *previous*, in one
transaction under the project's row lock (which a chunk write holds shared until it commits,
so a flip never passes one by: `jobs._finish`); queries read the active space only, so they
never see a half-filled one. `rollback` swaps active and previous back (or cancels a running
switch); `finish` drops the previous space's vectors (and its table once no project uses it).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from common.ingestion.trigger import publish_job, split_gcs_uri
from common.platform.config import Settings
from common.platform.db import sqlstate
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus, Project
from common.platform.spaces import (
    EmbeddingSpace,
    drop_unused_spaces,
    ensure_space,
    inline_space,
    load_space,
    project_spaces,
)

logger = logging.getLogger(__name__)

CANCELLED = "the embedding switch was cancelled (rollback)"
# gemini-embedding-001's price per 1M input tokens (cloud.google.com/vertex-ai/generative-ai/
# pricing, 2025: $0.15); the local model is free.
PRICE_PER_MILLION_TOKENS = {"gemini-embedding-001": 0.15}
# The project's row, locked against other switches and activations: FOR NO KEY UPDATE, not FOR
# UPDATE, which would also block every insert referencing the project (its query log rows,
# new documents and chunks) until the switch's transaction ends: queries stalled for as long
# as `switch` took to queue its jobs (bench/model_switch.py).
_PROJECT_LOCK = {"key_share": True}
_DROP_LOCK_TIMEOUT = "500ms"  # under Postgres' deadlock_timeout (1 s)
_DROP_ATTEMPTS = 5
_LOCK_NOT_AVAILABLE = "55P03"
# Per document (a re-embedding job embeds one): its texts (context line, blank line, content),
# their tokens at ~4 bytes a token as the embedder and the stand-in count them, and the same
# capped at the model's input limit, which is what the embedder packs requests by.
_PER_DOCUMENT = """
    SELECT count(*) AS texts, sum(tokens) AS tokens, sum(least(tokens, :max_input)) AS packed
    FROM (SELECT document_id, ceil((octet_length(content)
                 + coalesce(octet_length(nullif(context, '')) + 2, 0))
                 / CAST(:bytes_per_token AS numeric)) AS tokens
          FROM document_chunks WHERE document_id = ANY(CAST(:ids AS uuid[]))) AS chunk
    GROUP BY document_id
"""


def _missing_sql(space: EmbeddingSpace) -> str:
    """Ready documents of a project with a chunk lacking a vector in `space`."""
    lacks = (
        "c.embedding IS NULL"
        if space.table is None
        else f"NOT EXISTS (SELECT 1 FROM {space.table} v WHERE v.chunk_id = c.id)"
    )
    return (
        "SELECT d.id FROM documents d WHERE d.project_id = :project_id AND d.status = 'ready' "
        "AND d.gcs_uri IS NOT NULL AND EXISTS (SELECT 1 FROM document_chunks c "
        f"WHERE c.document_id = d.id AND {lacks})"
    )


def missing_documents(
    session: Session, project_id: uuid.UUID, space: EmbeddingSpace
) -> list[uuid.UUID]:
    return list(session.scalars(text(_missing_sql(space)), {"project_id": project_id}))


@dataclass(frozen=True)
class Estimate:
    projects: int
    documents: int
    chunks: int
    tokens: int
    requests: int
    minutes_at_quota: float
    dollars: float


def estimate(
    session: Session,
    project_ids: list[uuid.UUID],
    space: EmbeddingSpace,
    settings: Settings,
) -> Estimate:
    """What filling `space` for these projects will send: texts and tokens from the stored
    chunks, requests as the worker sends them (each job embeds one document, in requests the
    Vertex AI embedder fills up to 250 texts and `REQUEST_TOKEN_BUDGET` tokens: a document is
    at least one request of its own), minutes at the configured requests-per-minute quota, and
    the model's price."""
    from common.inference.embedders.vertex import (
        BYTES_PER_TOKEN,
        MAX_INPUT_TOKENS,
        MAX_TEXTS_PER_REQUEST,
        REQUEST_TOKEN_BUDGET,
    )

    documents = chunks = tokens = requests = 0
    for project_id in project_ids:
        missing = missing_documents(session, project_id, space)
        rows = session.execute(
            text(_PER_DOCUMENT),
            {"ids": missing, "max_input": MAX_INPUT_TOKENS, "bytes_per_token": BYTES_PER_TOKEN},
        ).all()
        documents += len(missing)
        for row in rows:
            chunks += int(row.texts)
            tokens += int(row.tokens)
            requests += max(
                math.ceil(row.texts / MAX_TEXTS_PER_REQUEST),
                math.ceil(row.packed / REQUEST_TOKEN_BUDGET),
            )
    price = PRICE_PER_MILLION_TOKENS.get(space.model, 0.0)
    return Estimate(
        projects=len(project_ids),
        documents=documents,
        chunks=chunks,
        tokens=tokens,
        requests=requests,
        minutes_at_quota=requests / settings.embedding_quota_per_minute,
        dollars=round(tokens / 1_000_000 * price, 4),
    )


def start(
    session: Session, project_id: uuid.UUID, space: EmbeddingSpace, settings: Settings
) -> int:
    """Make `space` the project's pending space and queue the documents it lacks; returns
    how many jobs were queued. Switching to the active space is a no-op; to the previous one,
    its vectors are reused (only documents added since are embedded)."""
    project = session.get_one(Project, project_id, with_for_update=_PROJECT_LOCK)
    current = project_spaces(session, project_id, settings)
    if space == current.active:
        _cancel(session, project, current.pending)
        project.pending_space_id = None
        return 0
    if current.pending is not None and current.pending != space:
        _cancel(session, project, current.pending)
    if current.previous is not None and current.previous != space:
        _drop_vectors(session, project_id, current.previous)  # one way back at a time
        project.previous_space_id = None
    project.pending_space_id = space.id
    queued = queue_missing(session, project_id, space)
    logger.info(
        "embedding switch started",
        extra={"project_id": str(project_id), "space": space.label, "jobs": queued},
    )
    return queued


def queue_missing(session: Session, project_id: uuid.UUID, space: EmbeddingSpace) -> int:
    """A re-embedding job (published) for every ready document lacking vectors in `space`."""
    queued = 0
    for document_id in missing_documents(session, project_id, space):
        document = session.get_one(Document, document_id)
        if document.generation is None or document.gcs_uri is None:
            continue
        job = _job_for(session, document, space)
        if job.status is JobStatus.QUEUED and job.published_at is None:
            publish_job(session, job, *split_gcs_uri(document.gcs_uri))
            queued += 1
    return queued


def _job_for(session: Session, document: Document, space: EmbeddingSpace) -> IngestionJob:
    from sqlalchemy.dialects.postgresql import insert

    assert document.generation is not None
    session.execute(
        insert(IngestionJob)
        .values(document_id=document.id, generation=document.generation, space_id=space.id)
        .on_conflict_do_nothing(
            index_elements=["document_id", "generation", "space_id"],
            index_where=IngestionJob.space_id.is_not(None),
        )
    )
    job = session.execute(
        select(IngestionJob)
        .where(
            IngestionJob.document_id == document.id,
            IngestionJob.generation == document.generation,
            IngestionJob.space_id == space.id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if job.status in (JobStatus.FAILED, JobStatus.SUCCEEDED):
        # A retry of a failed switch, or vectors deleted since: run it again, afresh.
        job.status, job.attempts, job.published_at = JobStatus.QUEUED, 0, None
        job.error_message = job.finished_at = job.started_at = None
    return job


def activate_if_complete(session: Session, project_id: uuid.UUID, settings: Settings) -> bool:
    """Flip the project to its pending space once that space holds every ready document."""
    project = session.get(Project, project_id, with_for_update=_PROJECT_LOCK)
    if project is None or project.pending_space_id is None:
        return False
    unfinished = session.scalar(
        select(IngestionJob.id)
        .join(Document, Document.id == IngestionJob.document_id)
        .where(
            Document.project_id == project_id,
            IngestionJob.space_id == project.pending_space_id,
            IngestionJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
            Document.generation == IngestionJob.generation,
        )
        .limit(1)
    )
    if unfinished is not None:
        return False
    pending = load_space(session, project.pending_space_id, settings)
    if missing_documents(session, project_id, pending):
        return False  # a failed job, or a document that became ready without it
    # The inline space has no row until a switch names it: it needs one to be kept as previous.
    project.previous_space_id = project.active_space_id or _inline_id(session, settings)
    project.active_space_id = project.pending_space_id
    project.pending_space_id = None
    session.execute(
        update(Document)
        .where(Document.project_id == project_id, Document.status == DocumentStatus.READY)
        .values(embedding_model=pending.model)
        .execution_options(synchronize_session=False)
    )
    logger.info(
        "embedding space activated",
        extra={"project_id": str(project_id), "space": pending.label},
    )
    return True


def _inline_id(session: Session, settings: Settings) -> uuid.UUID | None:
    inline = inline_space(settings)
    return ensure_space(session, inline.model, inline.dimensions, settings).id


def rollback(session: Session, project_id: uuid.UUID, settings: Settings) -> str:
    """Cancel a running switch, or return to the previous space; says what it did."""
    project = session.get_one(Project, project_id, with_for_update=_PROJECT_LOCK)
    current = project_spaces(session, project_id, settings)
    if current.pending is not None:
        _cancel(session, project, current.pending)
        return f"switch to {current.pending.label} cancelled; {current.active.label} stays active"
    if current.previous is None:
        raise LookupError("nothing to roll back to: no previous embedding space")
    project.active_space_id, project.previous_space_id = (
        project.previous_space_id,
        project.active_space_id,
    )
    session.execute(
        update(Document)
        .where(Document.project_id == project_id, Document.status == DocumentStatus.READY)
        .values(embedding_model=current.previous.model)
        .execution_options(synchronize_session=False)
    )
    return f"{current.previous.label} active again; {current.active.label} kept as previous"


def finish(session: Session, project_id: uuid.UUID, settings: Settings) -> str | None:
    """Drop the previous space's vectors of the project (its table once unused)."""
    project = session.get_one(Project, project_id, with_for_update=_PROJECT_LOCK)
    current = project_spaces(session, project_id, settings)
    if current.previous is None:
        return None
    _drop_vectors(session, project_id, current.previous)
    project.previous_space_id = None
    session.flush()
    _drop_unused_tables(session)
    return current.previous.label


def _drop_unused_tables(session: Session) -> None:
    """Drop the tables of spaces no project uses, each try waiting at most `_DROP_LOCK_TIMEOUT`
    for its locks. A DROP takes ACCESS EXCLUSIVE on its table, then on the tables its foreign
    keys name (projects, document_chunks); a query that has read `projects` and then reads the
    dropped space's table waits on the DROP while the DROP waits on it: a deadlock that failed
    `finish` under query load. Giving up before deadlock_timeout (1 s) ends it first; a table
    still busy after the tries is left, empty and unused, for the next `finish`."""
    for attempt in range(1, _DROP_ATTEMPTS + 1):
        savepoint = session.begin_nested()
        try:
            session.execute(text(f"SET LOCAL lock_timeout = '{_DROP_LOCK_TIMEOUT}'"))
            drop_unused_spaces(session)
            session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
        except DBAPIError as error:
            savepoint.rollback()
            if sqlstate(error) != _LOCK_NOT_AVAILABLE:
                raise
            time.sleep(0.2 * attempt)
            continue
        savepoint.commit()
        return
    logger.warning("unused embedding space tables left for the next finish: queries held them")


def _cancel(session: Session, project: Project, pending: EmbeddingSpace | None) -> None:
    if pending is None:
        return
    project.pending_space_id = None
    session.execute(
        update(IngestionJob)
        .where(
            IngestionJob.space_id == pending.id,
            IngestionJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
            IngestionJob.document_id.in_(
                select(Document.id).where(Document.project_id == project.id)
            ),
        )
        .values(status=JobStatus.FAILED, error_message=CANCELLED, finished_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    session.flush()
    if project_uses(session, pending) is False:
        _drop_vectors(session, project.id, pending)


def project_uses(session: Session, space: EmbeddingSpace) -> bool:
    return space.id is None or bool(
        session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM projects WHERE :id IN "
                "(active_space_id, pending_space_id, previous_space_id))"
            ),
            {"id": space.id},
        )
    )


def _drop_vectors(session: Session, project_id: uuid.UUID, space: EmbeddingSpace) -> None:
    if space.table is None:
        session.execute(
            text("UPDATE document_chunks SET embedding = NULL WHERE project_id = :project_id"),
            {"project_id": project_id},
        )
    else:
        session.execute(
            text(f"DELETE FROM {space.table} WHERE project_id = :project_id"),
            {"project_id": project_id},
        )
