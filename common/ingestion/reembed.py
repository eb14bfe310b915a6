"""Re-embedding jobs of a model switch: a document's stored chunks, embedded into another space.

Nothing is downloaded, extracted or chunked again: the job reads the chunks' text (and their
context line, embedded with them as at ingestion) and writes the target space's vectors in the
same final transaction that finishes the job, under the same row locks and lease as ingestion.
A document whose chunks were rewritten since (reprocessed) is left to the rewrite, which fills
every space its project maintains.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.ingestion.chunk_store import copy_space_vectors
from common.ingestion.job_write import LockedJob
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.models import DocumentChunk
from common.platform.spaces import EmbeddingSpace, load_space


@dataclass(frozen=True)
class Reembedded:
    space: EmbeddingSpace
    chunk_ids: list[uuid.UUID]
    vectors: np.ndarray


class ChunksRewrittenError(RuntimeError):
    """The document's chunks changed since they were read: this job's vectors fit nothing."""


def embed_stored_chunks(document_id: uuid.UUID, space_id: uuid.UUID) -> Reembedded:
    """The document's stored chunks embedded with the space's model."""
    from common.inference.embeddings import embedder_for_space

    settings = get_settings()
    with transaction() as session:
        space = load_space(session, space_id, settings)
        rows = session.execute(
            select(DocumentChunk.id, DocumentChunk.content, DocumentChunk.context)
            .where(DocumentChunk.document_id == document_id)
            .order_by(DocumentChunk.chunk_index)
        ).all()
    embedder = embedder_for_space(space, settings)
    texts = [f"{row.context}\n\n{row.content}" if row.context else row.content for row in rows]
    vectors = (
        embedder.embed_documents(texts)
        if texts
        else np.zeros((0, space.dimensions), dtype=np.float32)
    )
    return Reembedded(space, [row.id for row in rows], np.asarray(vectors))


def write_space_vectors(session: Session, locked: LockedJob, built: Reembedded) -> int:
    """Replace the document's vectors in the space and finish the job (rows locked by the
    caller); ChunksRewrittenError when the chunks are no longer those embedded."""
    current = session.scalars(
        select(DocumentChunk.id)
        .where(DocumentChunk.document_id == locked.document_id)
        .order_by(DocumentChunk.chunk_index)
    ).all()
    if list(current) != built.chunk_ids:
        raise ChunksRewrittenError("the document's chunks were rewritten since they were read")
    space = built.space
    if space.table is not None:
        session.execute(
            text(f"DELETE FROM {space.table} WHERE chunk_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": built.chunk_ids},
        )
        copy_space_vectors(
            session,
            space=space,
            project_id=locked.project_id,
            chunk_ids=built.chunk_ids,
            embeddings=built.vectors,
        )
    else:  # back to the configured model's inline vectors
        session.execute(
            text(
                "UPDATE document_chunks c SET embedding = CAST(v.embedding AS vector) "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:vectors AS text[])) AS v(id, embedding) "
                "WHERE c.id = v.id"
            ),
            {
                "ids": built.chunk_ids,
                "vectors": [_literal(vector) for vector in built.vectors],
            },
        )
    session.execute(
        text(
            "UPDATE ingestion_jobs SET status = 'succeeded', finished_at = now(), "
            "chunks_created = :written, embedding_model = :model, error_message = NULL, "
            "lease_expires_at = NULL, updated_at = now() WHERE id = :job_id"
        ),
        {"written": len(built.chunk_ids), "model": space.model, "job_id": locked.job_id},
    )
    return len(built.chunk_ids)


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{value:.8g}" for value in np.asarray(vector, dtype=np.float32)) + "]"
