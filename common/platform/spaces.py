"""Embedding spaces: where a chunk's vectors of one model and dimension live.

The deployment's configured model is the *inline* space: `document_chunks.embedding`, sized by
the settings at migration time. Every other space (a model switch's target) is a table of its
own, `chunk_vectors_<model>_<dimensions>` (chunk id, project id, vector), with its own HNSW
index, created and dropped by `ai-infra embeddings` (not by migrations: alembic ignores these
tables). Dimensions over pgvector's HNSW limit for `vector` (2,000) are stored as `halfvec`.

A project uses one *active* space for its queries; during a switch a *pending* one fills up,
and after it a *previous* one stays until `finish`, so a rollback is instant. Every write of a
project's chunks goes to all of them (`ProjectSpaces.maintained`). A NULL active space is the
inline one; the inline space gets a row (no table) once a switch names it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.platform.config import MODEL_DIMENSIONS, Settings

HNSW_MAX_VECTOR_DIMENSIONS = 2000
TABLE_PREFIX = "chunk_vectors_"
# Dimensions each model may be asked for (Vertex AI's output_dimensionality); the local model
# has one.
MODEL_CHOICES: dict[str, tuple[int, ...]] = {
    "all-MiniLM-L6-v2": (384,),
    "gemini-embedding-001": (768, 1536, 3072),
    "text-embedding-005": (768,),
    "text-multilingual-embedding-002": (768,),
}


@dataclass(frozen=True)
class EmbeddingSpace:
    """One model at one dimension; `table` None for the inline space. Spaces are the same when
    their model, dimension and storage are (the inline space may or may not have its row)."""

    id: uuid.UUID | None = field(compare=False)
    model: str
    dimensions: int
    table: str | None

    @property
    def vector_type(self) -> str:
        return "halfvec" if self.dimensions > HNSW_MAX_VECTOR_DIMENSIONS else "vector"

    @property
    def ops(self) -> str:
        return f"{self.vector_type}_cosine_ops"

    @property
    def label(self) -> str:
        return f"{self.model} ({self.dimensions})" + ("" if self.table else ", inline")


def inline_space(settings: Settings) -> EmbeddingSpace:
    return EmbeddingSpace(
        None, settings.resolved_embedding_model, settings.resolved_embedding_dim, None
    )


@dataclass(frozen=True)
class ProjectSpaces:
    active: EmbeddingSpace
    pending: EmbeddingSpace | None
    previous: EmbeddingSpace | None

    @property
    def maintained(self) -> list[EmbeddingSpace]:
        """Every space a write of this project's chunks must fill (active first)."""
        spaces = [self.active]
        for space in (self.pending, self.previous):
            if space is not None and space not in spaces:
                spaces.append(space)
        return spaces


_SPACE = text("SELECT id, model, dimensions, table_name FROM embedding_spaces WHERE id = :id")
_PROJECT = text(
    "SELECT active_space_id, pending_space_id, previous_space_id FROM projects WHERE id = :id"
)
_PROJECT_HELD = text(f"{_PROJECT.text} FOR SHARE")


def load_space(session: Session, space_id: uuid.UUID | None, settings: Settings) -> EmbeddingSpace:
    """The space of an id (None: the inline one)."""
    if space_id is None:
        return inline_space(settings)
    row = session.execute(_SPACE, {"id": space_id}).one()
    return EmbeddingSpace(row.id, row.model, int(row.dimensions), row.table_name)


def project_spaces(
    session: Session, project_id: uuid.UUID, settings: Settings, *, hold: bool = False
) -> ProjectSpaces:
    """`hold`: keep the project's row share-locked until the transaction ends, so no switch
    starts, flips or rolls back (they take it FOR NO KEY UPDATE) while a write fills the spaces
    read here."""
    statement = _PROJECT_HELD if hold else _PROJECT
    row = session.execute(statement, {"id": project_id}).one()
    return ProjectSpaces(
        active=load_space(session, row.active_space_id, settings),
        pending=(
            load_space(session, row.pending_space_id, settings)
            if row.pending_space_id is not None
            else None
        ),
        previous=(
            load_space(session, row.previous_space_id, settings)
            if row.previous_space_id is not None
            else None
        ),
    )


def table_name(model: str, dimensions: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40]
    return f"{TABLE_PREFIX}{slug}_{dimensions}"


def check_choice(model: str, dimensions: int | None) -> int:
    """The dimension to use for `model`; ValueError naming the choices when there is none."""
    if model not in MODEL_CHOICES:
        raise ValueError(f"unknown embedding model {model!r} (known: {', '.join(MODEL_CHOICES)})")
    choices = MODEL_CHOICES[model]
    if dimensions is None:
        return MODEL_DIMENSIONS.get(model, choices[0])
    if dimensions not in choices:
        raise ValueError(
            f"{model} embeds at {', '.join(map(str, choices))} dimensions, not {dimensions}"
        )
    return dimensions


def ensure_space(
    session: Session, model: str, dimensions: int, settings: Settings
) -> EmbeddingSpace:
    """The space of `model` at `dimensions` with its row: the inline one (the configured model,
    no table), or a table created if needed."""
    inline = inline_space(settings)
    name: str | None = table_name(model, dimensions)
    if (model, dimensions) == (inline.model, inline.dimensions):
        name = None
    row = session.execute(
        text(
            "INSERT INTO embedding_spaces (model, dimensions, table_name) "
            "VALUES (:model, :dimensions, :table) "
            "ON CONFLICT (model, dimensions) DO UPDATE SET model = excluded.model "
            "RETURNING id"
        ),
        {"model": model, "dimensions": dimensions, "table": name},
    ).one()
    space = EmbeddingSpace(row.id, model, dimensions, name)
    if name is None:
        return space
    kind = f"{space.vector_type}({dimensions})"
    session.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {name} ("
            "chunk_id uuid PRIMARY KEY REFERENCES document_chunks (id) ON DELETE CASCADE, "
            "project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE, "
            f"embedding {kind} NOT NULL)"
        )
    )
    session.execute(text(f"CREATE INDEX IF NOT EXISTS ix_{name}_project ON {name} (project_id)"))
    session.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS ix_{name}_hnsw ON {name} "
            f"USING hnsw (embedding {space.ops}) WITH (m = 16, ef_construction = 64)"
        )
    )
    return space


def drop_unused_spaces(session: Session) -> list[str]:
    """Drop every space table no project uses any more; returns the dropped tables."""
    rows = session.execute(
        text(
            "SELECT s.id, s.table_name FROM embedding_spaces s WHERE s.table_name IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM projects p WHERE s.id IN "
            "(p.active_space_id, p.pending_space_id, p.previous_space_id))"
        )
    ).all()
    if rows:
        # DROP TABLE takes ACCESS EXCLUSIVE locks on the tables its foreign keys reference; a
        # query takes its locks projects first, then document_chunks. Take them in that order
        # up front, or a query and this drop can deadlock (one waits for the other's second).
        session.execute(text("LOCK TABLE projects, document_chunks IN ACCESS EXCLUSIVE MODE"))
    for row in rows:
        session.execute(text(f"DROP TABLE IF EXISTS {row.table_name}"))
        session.execute(text("DELETE FROM embedding_spaces WHERE id = :id"), {"id": row.id})
    return [row.table_name for row in rows]
