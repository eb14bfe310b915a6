"""The names of the per-project indexes the sweep keeps (`common.ingestion.project_indexes`).

The search names them too (`common.query.retrieval` asks whether a project's IVFFlat index is
there), so they live below both flows.
"""

from __future__ import annotations

import uuid
import zlib

PREFIX = "ix_chunks_hnsw_project_"
IVF_PREFIX = "ix_chunks_ivf_project_"
GIN_PREFIX = "ix_chunks_gin_project_"
SPACE_PREFIX = "ix_space_hnsw_"
INLINE_TABLE = "document_chunks"


def index_name(project_id: uuid.UUID, table: str = INLINE_TABLE) -> str:
    """`ix_chunks_hnsw_project_<32 hex>` for the inline vectors, `ix_space_hnsw_<crc32 of the
    space's table>_<32 hex>` for a space's: 55 characters, under Postgres' 63."""
    if table == INLINE_TABLE:
        return PREFIX + project_id.hex
    return f"{SPACE_PREFIX}{zlib.crc32(table.encode()):08x}_{project_id.hex}"


def ivf_index_name(project_id: uuid.UUID) -> str:
    """`ix_chunks_ivf_project_<32 hex>`: the project's IVFFlat index of its inline halfvecs."""
    return IVF_PREFIX + project_id.hex


def gin_index_name(project_id: uuid.UUID) -> str:
    """`ix_chunks_gin_project_<32 hex>`: the project's GIN index of its chunks' tsvectors."""
    return GIN_PREFIX + project_id.hex


PREFIXES = (PREFIX, IVF_PREFIX, GIN_PREFIX, SPACE_PREFIX)


def project_of(name: str) -> uuid.UUID | None:
    if not name.startswith(PREFIXES):
        return None
    try:
        return uuid.UUID(hex=name.rpartition("_")[2])
    except ValueError:
        return None
