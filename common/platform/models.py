"""SQLAlchemy models: the source of truth for the schema (migrations are generated from here).

The embedding column's dimension comes from settings, so the models, the migrations and the code
always agree on one N; `common.platform.db.check_embedding_dimension` refuses to start when the
database was built for another one.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.platform.config import get_settings

EMBEDDING_DIM = get_settings().resolved_embedding_dim
# The text-search configuration of the generated tsvector column; queries must use the same.
TS_CONFIG = "english"
CHUNK_TSV_EXPRESSION = (
    f"to_tsvector('{TS_CONFIG}'::regconfig, coalesce(context || ' ', '') || content)"
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ApiKeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class SourceType(enum.StrEnum):
    UPLOAD = "upload"
    URL = "url"
    MANUAL = "manual"


class DocumentStatus(enum.StrEnum):
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _pg_enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=uuid.uuid4,
        server_default=func.gen_random_uuid(),
    )


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    # The team's default requests per minute per API key (None: the global setting).
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    # Ingestion jobs the team may run at once (None: AI_INFRA_INGEST_TEAM_MAX_RUNNING, else
    # only its fair share; see common.ingestion.scheduling).
    max_running_jobs: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()


class EmbeddingSpace(Base):
    """A model at a dimension whose vectors live in a table of their own, or inline in
    document_chunks.embedding for the configured model (common.platform.spaces)."""

    __tablename__ = "embedding_spaces"
    __table_args__ = (UniqueConstraint("model", "dimensions"), UniqueConstraint("table_name"))

    id: Mapped[uuid.UUID] = _uuid_pk()
    model: Mapped[str] = mapped_column(Text, nullable=False)
    dimensions: Mapped[int] = mapped_column(Integer, nullable=False)
    # None for the configured model's inline space (document_chunks.embedding).
    table_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("team_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    # The embedding space its queries use, the one a switch fills, the one a rollback returns
    # to (None: the inline space of the configured model); see common.platform.spaces.
    active_space_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("embedding_spaces.id"))
    pending_space_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("embedding_spaces.id"))
    previous_space_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("embedding_spaces.id"))
    created_at: Mapped[datetime] = _created_at()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Hex SHA-256 of the raw key; the raw key is shown once at creation and never stored.
    key_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    # The first characters of the key, safe to display so an operator can tell keys apart.
    key_prefix: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ApiKeyStatus] = mapped_column(
        _pg_enum(ApiKeyStatus, "api_key_status"),
        nullable=False,
        server_default=ApiKeyStatus.ACTIVE.value,
    )
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # This key's own requests per minute (None: the team's default, else the global setting).
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)


class ApiKeyRateWindow(Base):
    """Requests counted in a key's current one-minute window (`common.query.rate_limit`).

    UNLOGGED: counting writes no WAL and commits without a disk flush; after a crash the table
    is empty, which only forgets the current minute's counts.
    """

    __tablename__ = "api_key_rate_windows"
    __table_args__ = {"prefixes": ["UNLOGGED"]}  # noqa: RUF012

    api_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    requests: Mapped[int] = mapped_column(Integer, nullable=False)


class Document(Base):
    __tablename__ = "documents"
    # One document per project and object URI: the upsert key of the ingest trigger.
    __table_args__ = (
        UniqueConstraint("project_id", "gcs_uri"),
        # Filters' equality and list tests are containment (`@>`): jsonb_path_ops serves them.
        Index(
            "ix_documents_attributes",
            "attributes",
            postgresql_using="gin",
            postgresql_ops={"attributes": "jsonb_path_ops"},
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str] = mapped_column(Text, nullable=False)
    source_type: Mapped[SourceType] = mapped_column(
        _pg_enum(SourceType, "document_source_type"),
        nullable=False,
        server_default=SourceType.UPLOAD.value,
    )
    gcs_uri: Mapped[str | None] = mapped_column(Text)
    # Where a `url` source was fetched from (None for uploads and manual text).
    source_url: Mapped[str | None] = mapped_column(Text)
    mime_type: Mapped[str | None] = mapped_column(Text)
    status: Mapped[DocumentStatus] = mapped_column(
        _pg_enum(DocumentStatus, "document_status"),
        nullable=False,
        server_default=DocumentStatus.UPLOADED.value,
    )
    # The newest object generation seen for this URI (from finalize events); jobs of older
    # generations are superseded.
    generation: Mapped[int | None] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(Text)
    # What the current chunks were built from, so an identical re-upload can skip re-embedding.
    ready_generation: Mapped[int | None] = mapped_column(BigInteger)
    ready_content_hash: Mapped[str | None] = mapped_column(Text)
    embedding_model: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error_message: Mapped[str | None] = mapped_column(Text)
    # What the ready chunks leave out or guessed (rows past the cap, unreadable pages).
    notice: Mapped[str | None] = mapped_column(Text)
    # The object's name under its project ("contracts/2025/lease.pdf"): the `path` attribute.
    path: Mapped[str | None] = mapped_column(Text)
    # Attributes (common.platform.attributes): those of the object's own custom metadata, and
    # the effective ones filters see (the sidecar's win over the object's).
    object_attributes: Mapped[dict[str, object]] = mapped_column(
        JSONB, nullable=False, server_default="{}"
    )
    attributes: Mapped[dict[str, object]] = mapped_column(
        JSONB, nullable=False, server_default="{}"
    )
    # Why the object's metadata was not applied, and what users see: that and the sidecar's
    # error (`document_sidecars.error`); the document and its chunks are fine either way.
    object_metadata_error: Mapped[str | None] = mapped_column(Text)
    metadata_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class DocumentSidecar(Base):
    """The live `<path>.metadata.json` of a project path: kept apart from its document, which
    may arrive before or after it, and applied to it whenever either changes."""

    __tablename__ = "document_sidecars"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(Text, primary_key=True)  # the document's path
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
    attributes: Mapped[dict[str, object]] = mapped_column(
        JSONB, nullable=False, server_default="{}"
    )
    # Why this generation's attributes could not be used (bad JSON, a type conflict).
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class ProjectAttributeType(Base):
    """Each attribute name's type in a project: set by its first use, enforced after."""

    __tablename__ = "project_attribute_types"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class IngestionJob(Base):
    __tablename__ = "ingestion_jobs"
    # One job per document and object generation: duplicate events make no second job.
    __table_args__ = (
        # One ingestion job per document generation, and one re-embedding job per generation
        # and embedding space (a model switch's).
        Index(
            "uq_ingestion_jobs_document_id_generation",
            "document_id",
            "generation",
            unique=True,
            postgresql_where="space_id IS NULL",
        ),
        Index(
            "uq_ingestion_jobs_document_id_generation_space_id",
            "document_id",
            "generation",
            "space_id",
            unique=True,
            postgresql_where="space_id IS NOT NULL",
        ),
        Index("ix_ingestion_jobs_status_started_at", "status", "started_at"),
        Index(
            "ix_ingestion_jobs_deferred_at",
            "deferred_at",
            postgresql_where="deferred_at IS NOT NULL",
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Set for a re-embedding job of a model switch: the space it fills from the stored chunks.
    space_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("embedding_spaces.id", ondelete="CASCADE")
    )
    status: Mapped[JobStatus] = mapped_column(
        _pg_enum(JobStatus, "job_status"), nullable=False, server_default=JobStatus.QUEUED.value
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    # Delivery attempts counted on the row itself (a raw Pub/Sub push does not carry the count).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Set once the job message is handed to Pub/Sub: a redelivered storage event republishes
    # only when this is still empty, so each generation yields one message.
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # While running: until when the worker owns the job; its heartbeat moves this forward.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Queued but held back by fair scheduling (common.ingestion.scheduling) since then, and
    # how often it was; a deferral spends no attempt.
    deferred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deferrals: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    chunks_created: Mapped[int | None] = mapped_column(Integer)
    embedding_model: Mapped[str | None] = mapped_column(Text)
    # What a succeeded job left out or guessed (see Document.notice).
    notice: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class DocumentChunk(Base):
    __tablename__ = "document_chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "chunk_index"),
        Index(
            "ix_document_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_document_chunks_content_tsv", "content_tsv", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    # Denormalised so project-scoped search filters without a join.
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True
    )
    chunk_index: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    # The inline space's vector (None once the project moved to another space for good).
    embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIM))
    page_start: Mapped[int | None] = mapped_column(Integer)
    page_end: Mapped[int | None] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer, nullable=False)
    char_end: Mapped[int] = mapped_column(Integer, nullable=False)
    token_count: Mapped[int] = mapped_column(Integer, nullable=False)
    # Document title and section heading path ("title > chapter > section"): embedded and
    # indexed with the content, never cited (content and offsets stay the extracted text).
    context: Mapped[str | None] = mapped_column(Text)
    # Where the chunk is, as a citation says it: "slide 7", "sheet Budget, rows 2-41",
    # "page 3 (OCR)"; None for formats without pages or rows (common.ingestion.locations).
    location: Mapped[str | None] = mapped_column(Text)
    content_tsv: Mapped[str] = mapped_column(
        TSVECTOR, Computed(CHUNK_TSV_EXPRESSION, persisted=True)
    )
    created_at: Mapped[datetime] = _created_at()


class QueryLog(Base):
    __tablename__ = "query_logs"
    __table_args__ = (
        Index("ix_query_logs_project_id_created_at", "project_id", "created_at"),
        Index("ix_query_logs_team_id_created_at", "team_id", "created_at"),  # usage reports
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=False
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    request_id: Mapped[str | None] = mapped_column(Text)
    # SHA-256 of the question: the text itself is never stored.
    question_hash: Mapped[str] = mapped_column(Text, nullable=False)
    used_rag: Mapped[bool] = mapped_column(Boolean, nullable=False)
    top_k: Mapped[int] = mapped_column(Integer, nullable=False)
    model: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()


class QueryCitation(Base):
    __tablename__ = "query_citations"
    __table_args__ = (PrimaryKeyConstraint("query_id", "chunk_id"),)

    query_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("query_logs.id", ondelete="CASCADE"), nullable=False
    )
    chunk_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("document_chunks.id", ondelete="CASCADE"), nullable=False, index=True
    )
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    score: Mapped[float] = mapped_column(Double, nullable=False)
