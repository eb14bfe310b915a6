"""Replace a document's chunks in bulk: delete the old rows and COPY the new ones.

Runs inside the caller's transaction, so readers see either the old chunks or the new ones,
never a mix. COPY (text format) is the bulk path: one round trip for all rows instead of one
INSERT per chunk; HNSW upkeep still dominates the cost (see bench/ingest.py).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session

from common.chunking import Chunk
from common.models import DocumentChunk

COPY_COLUMNS = (
    "document_id",
    "project_id",
    "chunk_index",
    "content",
    "embedding",
    "page_start",
    "page_end",
    "char_start",
    "char_end",
    "token_count",
)
_COPY_SQL = f"COPY document_chunks ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT text)"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def replace_chunks(
    session: Session,
    *,
    document_id: uuid.UUID,
    project_id: uuid.UUID,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray,
) -> int:
    """Delete the document's chunks and write these; returns the number written."""
    if len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == document_id))
    if not chunks:
        return 0
    payload = _copy_payload(document_id, project_id, chunks, embeddings)
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_COPY_SQL, stream=io.BytesIO(payload))
    finally:
        cursor.close()
    return len(chunks)


def _copy_payload(
    document_id: uuid.UUID,
    project_id: uuid.UUID,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray,
) -> bytes:
    lines = []
    prefix = f"{document_id}\t{project_id}\t"
    for chunk, vector in zip(chunks, np.asarray(embeddings, dtype=np.float32), strict=True):
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"chunk {chunk.index} has a non-finite embedding")
        literal = "[" + ",".join(f"{value:.8g}" for value in vector.tolist()) + "]"
        lines.append(
            prefix
            + "\t".join(
                (
                    str(chunk.index),
                    chunk.content.replace("\x00", "").translate(_ESCAPES),
                    literal,
                    _nullable(chunk.page_start),
                    _nullable(chunk.page_end),
                    str(chunk.char_start),
                    str(chunk.char_end),
                    str(chunk.token_count),
                )
            )
        )
    return ("\n".join(lines) + "\n").encode()


def _nullable(value: int | None) -> str:
    return "\\N" if value is None else str(value)
