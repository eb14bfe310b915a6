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
from common.platform.spaces import EmbeddingSpace

COPY_COLUMNS = (
    "id",
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
_SPACE_FIELD_COUNT = struct.pack(">h", 3)
_INT32 = struct.Struct(">i")
_INT4_FIELD = struct.Struct(">ii")
_NULL = _INT32.pack(-1)
_VECTOR_HEADER = struct.Struct(">hh")  # pgvector's binary form: dimension, unused, values


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
    embeddings: np.ndarray | None,
    chunk_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """COPY these chunks in (the caller removed the old ones in the same transaction);
    `embeddings` None leaves the inline vector empty (the project's spaces are elsewhere)."""
    if embeddings is not None and len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    if not chunks:
        return 0
    ids = list(chunk_ids) if chunk_ids is not None else [uuid.uuid4() for _ in chunks]
    _copy(session, _COPY_SQL, _copy_payload(document_id, project_id, chunks, embeddings, ids))
    return len(chunks)


def copy_space_vectors(
    session: Session,
    *,
    space: EmbeddingSpace,
    project_id: uuid.UUID,
    chunk_ids: Sequence[uuid.UUID],
    embeddings: np.ndarray,
) -> int:
    """COPY vectors into an embedding space's table (`vector` or `halfvec`, by its size)."""
    if space.table is None:
        raise ValueError("the inline space's vectors are written with the chunks")
    if len(chunk_ids) != len(embeddings):
        raise ValueError(f"{len(chunk_ids)} chunks but {len(embeddings)} embeddings")
    if not chunk_ids:
        return 0
    vectors = _vectors(embeddings, half=space.vector_type == "halfvec")
    project = _field(project_id.bytes)
    parts = [_BINARY_HEADER]
    for chunk_id, vector in zip(chunk_ids, vectors, strict=True):
        parts += [_SPACE_FIELD_COUNT, _field(chunk_id.bytes), project, vector]
    parts.append(_TRAILER)
    statement = (
        f"COPY {space.table} (chunk_id, project_id, embedding) FROM STDIN WITH (FORMAT binary)"
    )
    _copy(session, statement, b"".join(parts))
    return len(chunk_ids)


def _copy(session: Session, statement: str, payload: bytes) -> None:
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement, stream=io.BytesIO(payload))
    finally:
        cursor.close()


def _vectors(embeddings: np.ndarray, *, half: bool = False) -> list[bytes]:
    """Each row as one binary COPY field of pgvector's `vector` (float4) or `halfvec` (float2)."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if not np.all(np.isfinite(vectors)):
        raise ValueError("non-finite embedding")
    dimension = vectors.shape[1] if vectors.ndim == 2 else 0
    header = _VECTOR_HEADER.pack(dimension, 0)
    width = 2 if half else 4
    length = _INT32.pack(len(header) + width * dimension)
    values = vectors.astype(">f2" if half else ">f4")
    return [length + header + row.tobytes() for row in values]


def _copy_payload(
    document_id: uuid.UUID,
    project_id: uuid.UUID,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray | None,
    chunk_ids: Sequence[uuid.UUID],
) -> bytes:
    """COPY binary format: no float formatting or parsing; vectors go as pgvector's wire form."""
    vectors = _vectors(embeddings) if embeddings is not None else [_NULL] * len(chunks)
    ids = _field(document_id.bytes) + _field(project_id.bytes)
    parts = [_BINARY_HEADER]
    for chunk, chunk_id, vector in zip(chunks, chunk_ids, vectors, strict=True):
        parts += [
            _FIELD_COUNT,
            _field(chunk_id.bytes),
            ids,
            _int_field(chunk.index),
            _field(chunk.content.replace("\x00", "").encode()),
            vector,
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
