"""Replace a document's chunks in bulk: delete the old rows and COPY the new ones.

Runs inside the caller's transaction, so readers see either the old chunks or the new ones,
never a mix. COPY (binary format) is the bulk path: one round trip for all rows instead of one
INSERT per chunk; HNSW upkeep still dominates the cost (see bench/ingest.py).
"""

from __future__ import annotations

import io
import struct
import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session

from common.ingestion.chunking import Chunk
from common.platform.models import DocumentChunk

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
    "context",
    "location",
)
_COPY_SQL = f"COPY document_chunks ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT binary)"
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_FIELD_COUNT = struct.pack(">h", len(COPY_COLUMNS))
_INT32 = struct.Struct(">i")
_INT4_FIELD = struct.Struct(">ii")
_NULL = _INT32.pack(-1)
_VECTOR_HEADER = struct.Struct(">hh")  # pgvector's binary form: dimension, unused, float4s


def replace_chunks(
    session: Session,
    *,
    document_id: uuid.UUID,
    project_id: uuid.UUID,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray,
) -> int:
    """Delete the document's chunks and write these; returns the number written."""
    session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == document_id))
    return copy_chunks(
        session,
        document_id=document_id,
        project_id=project_id,
        chunks=chunks,
        embeddings=embeddings,
    )


def copy_chunks(
    session: Session,
    *,
    document_id: uuid.UUID,
    project_id: uuid.UUID,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray,
) -> int:
    """COPY these chunks in (the caller removed the old ones in the same transaction)."""
    if len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
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
    """COPY binary format: no float formatting or parsing; vectors go as pgvector's wire form."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if not np.all(np.isfinite(vectors)):
        raise ValueError("non-finite embedding")
    dimension = vectors.shape[1] if vectors.ndim == 2 else 0
    vector_header = _VECTOR_HEADER.pack(dimension, 0)
    vector_length = _INT32.pack(len(vector_header) + 4 * dimension)
    big_endian = vectors.astype(">f4")
    ids = _field(document_id.bytes) + _field(project_id.bytes)
    parts = [_BINARY_HEADER]
    for chunk, vector in zip(chunks, big_endian, strict=True):
        parts += [
            _FIELD_COUNT,
            ids,
            _int_field(chunk.index),
            _field(chunk.content.replace("\x00", "").encode()),
            vector_length,
            vector_header,
            vector.tobytes(),
            _int_field(chunk.page_start),
            _int_field(chunk.page_end),
            _int_field(chunk.char_start),
            _int_field(chunk.char_end),
            _int_field(chunk.token_count),
            _text_field(chunk.context),
            _text_field(chunk.location),
        ]
    parts.append(_TRAILER)
    return b"".join(parts)


def _field(data: bytes) -> bytes:
    return _INT32.pack(len(data)) + data


def _text_field(value: str | None) -> bytes:
    return _NULL if value is None else _field(value.replace("\x00", "").encode())


def _int_field(value: int | None) -> bytes:
    return _NULL if value is None else _INT4_FIELD.pack(4, value)
