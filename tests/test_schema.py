"""The schema contract, migrations and vector index on the real embedded Postgres + pgvector."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import IntegrityError

from common.localstack import embedded_pg
from common.platform import migrate
from common.platform.config import get_settings
from common.platform.db import (
    SchemaMismatchError,
    check_embedding_dimension,
    get_engine,
    reset_engine,
    transaction,
)
from common.platform.models import (
    EMBEDDING_DIM,
    Base,
    Document,
    DocumentChunk,
    IngestionJob,
    Project,
)
from tests.fixtures.factories import Tenant, make_tenant

# table -> column -> (udt_name, nullable) as the contract in DESIGN.md section 2 names them.
CONTRACT: dict[str, dict[str, tuple[str, bool]]] = {
    "teams": {"id": ("uuid", False), "name": ("text", False), "created_at": ("timestamptz", False)},
    "projects": {
        "id": ("uuid", False),
        "team_id": ("uuid", False),
        "name": ("text", False),
        "created_at": ("timestamptz", False),
    },
    "api_keys": {
        "id": ("uuid", False),
        "team_id": ("uuid", False),
        "key_hash": ("text", False),
        "status": ("api_key_status", False),
        "created_at": ("timestamptz", False),
        "revoked_at": ("timestamptz", True),
    },
    "documents": {
        "id": ("uuid", False),
        "team_id": ("uuid", False),
        "project_id": ("uuid", False),
        "title": ("text", False),
        "source_type": ("document_source_type", False),
        "gcs_uri": ("text", True),
        "mime_type": ("text", True),
        "status": ("document_status", False),
        "created_at": ("timestamptz", False),
        "updated_at": ("timestamptz", False),
    },
    "ingestion_jobs": {
        "id": ("uuid", False),
        "document_id": ("uuid", False),
        "status": ("job_status", False),
        "error_message": ("text", True),
        "started_at": ("timestamptz", True),
        "finished_at": ("timestamptz", True),
        "chunks_created": ("int4", True),
        "embedding_model": ("text", True),
        "created_at": ("timestamptz", False),
    },
    "document_chunks": {
        "id": ("uuid", False),
        "document_id": ("uuid", False),
        "project_id": ("uuid", False),
        "chunk_index": ("int4", False),
        "content": ("text", False),
        # Nullable since embedding spaces (migration 0012): a project whose vectors moved to
        # another model's space for good keeps none inline.
        "embedding": ("vector", True),
        "page_start": ("int4", True),
        "page_end": ("int4", True),
        "char_start": ("int4", False),
        "char_end": ("int4", False),
        "token_count": ("int4", False),
        "created_at": ("timestamptz", False),
    },
    "query_logs": {
        "id": ("uuid", False),
        "team_id": ("uuid", False),
        "project_id": ("uuid", False),
        "api_key_id": ("uuid", True),
        "question_hash": ("text", False),
        "used_rag": ("bool", False),
        "top_k": ("int4", False),
        "model": ("text", True),
        "latency_ms": ("int4", False),
        "prompt_tokens": ("int4", True),
        "completion_tokens": ("int4", True),
        "created_at": ("timestamptz", False),
    },
    "query_citations": {
        "query_id": ("uuid", False),
        "chunk_id": ("uuid", False),
        "rank": ("int4", False),
        "score": ("float8", False),
    },
}

ENUM_VALUES = {
    "api_key_status": ["active", "revoked"],
    "document_source_type": ["upload", "url", "manual"],
    "document_status": ["uploaded", "processing", "ready", "failed"],
    "job_status": ["queued", "running", "succeeded", "failed"],
}


@contextmanager
def using_database(url: str) -> Iterator[None]:
    """Point settings and the engine at another database for the duration of the block."""
    previous = os.environ["AI_INFRA_DATABASE_URL"]
    os.environ["AI_INFRA_DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engine()
    try:
        yield
    finally:
        reset_engine()
        os.environ["AI_INFRA_DATABASE_URL"] = previous
        get_settings.cache_clear()


@pytest.fixture
def scratch_database(
    database_url: str, embedded_server: embedded_pg.EmbeddedPostgres
) -> Iterator[str]:
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    embedded_server.server.psql(f"CREATE DATABASE {name};")
    url = embedded_pg.url_for(embedded_server.socket_dir, name)
    with using_database(url):
        yield url
    embedded_server.server.psql(f"DROP DATABASE {name} WITH (FORCE);")


def _tables() -> set[str]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return {row[0] for row in rows}


def test_migrations_round_trip_upgrade_downgrade_upgrade(scratch_database: str) -> None:
    migrate.upgrade()
    assert set(CONTRACT) <= _tables()
    assert migrate.is_at_head()
    migrate.downgrade("base")
    assert _tables() == {"alembic_version"}
    with get_engine().connect() as connection:
        leftover_enums = connection.execute(
            text("SELECT typname FROM pg_type WHERE typname = ANY(:names)"),
            {"names": list(ENUM_VALUES)},
        ).all()
    assert leftover_enums == []
    migrate.upgrade()
    assert set(CONTRACT) <= _tables()


def test_autogenerate_finds_no_drift_between_models_and_migrations(database_url: str) -> None:
    from common.ingestion.project_indexes import include_in_autogenerate

    # As alembic/env.py compares: project indexes and embedding spaces' tables are data.
    with get_engine().connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": include_in_autogenerate}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_every_contract_column_exists_with_type_and_nullability(database_url: str) -> None:
    with get_engine().connect() as connection:
        rows = connection.execute(
            text(
                "SELECT table_name, column_name, udt_name, is_nullable "
                "FROM information_schema.columns WHERE table_schema = 'public'"
            )
        ).all()
    actual = {(t, c): (udt, nullable == "YES") for t, c, udt, nullable in rows}
    for table, columns in CONTRACT.items():
        for column, expected in columns.items():
            assert actual.get((table, column)) == expected, f"{table}.{column}"


def test_enums_are_postgres_enums_with_contract_values(database_url: str) -> None:
    with get_engine().connect() as connection:
        for name, values in ENUM_VALUES.items():
            labels = connection.execute(
                text("SELECT unnest(enum_range(NULL::" + name + "))::text")
            ).scalars()
            assert list(labels) == values


def test_embedding_column_has_configured_dimension_and_hnsw_cosine_index(
    database_url: str,
) -> None:
    with get_engine().connect() as connection:
        typ = connection.execute(
            text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'"
            )
        ).scalar_one()
        indexdefs = list(
            connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'document_chunks'")
            ).scalars()
        )
    assert typ == f"vector({EMBEDDING_DIM})"
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in indexdefs)
    assert any("USING gin (content_tsv)" in d for d in indexdefs)
    assert any("(project_id)" in d for d in indexdefs)


def test_startup_check_rejects_database_built_for_another_dimension(
    scratch_database: str,
) -> None:
    migrate.upgrade()
    check_embedding_dimension()  # agrees: no error
    with transaction() as session:
        session.execute(text("DROP INDEX ix_document_chunks_embedding_hnsw"))
        session.execute(
            text("ALTER TABLE document_chunks ALTER COLUMN embedding TYPE vector(1536)")
        )
    with pytest.raises(SchemaMismatchError, match="1536-dimensional"):
        check_embedding_dimension()


def _document(tenant: Tenant, uri: str) -> Document:
    return Document(
        team_id=tenant.team_id, project_id=tenant.project_id, title="a.pdf", gcs_uri=uri
    )


def _chunk_row(
    tenant: Tenant, document_id: uuid.UUID, index: int, vector: list[float]
) -> dict[str, object]:
    return {
        "document_id": document_id,
        "project_id": tenant.project_id,
        "chunk_index": index,
        "content": f"chunk number {index}",
        "embedding": vector,
        "char_start": 0,
        "char_end": 10,
        "token_count": 3,
    }


def test_one_document_per_project_and_uri(tenant: Tenant) -> None:
    with transaction() as session:
        session.add(_document(tenant, "gs://b/p/a.pdf"))
    with pytest.raises(IntegrityError), transaction() as session:
        session.add(_document(tenant, "gs://b/p/a.pdf"))
    other = make_tenant()
    with transaction() as session:  # the same URI in another project is another document
        session.add(_document(other, "gs://b/p/a.pdf"))


def test_one_job_per_document_and_generation(tenant: Tenant) -> None:
    with transaction() as session:
        document = _document(tenant, "gs://b/p/jobs.pdf")
        session.add(document)
        session.flush()
        session.add(IngestionJob(document_id=document.id, generation=1))
        session.add(IngestionJob(document_id=document.id, generation=2))
        document_id = document.id
    with pytest.raises(IntegrityError), transaction() as session:
        session.add(IngestionJob(document_id=document_id, generation=1))


def test_deleting_a_project_cascades_to_documents_jobs_and_chunks(tenant: Tenant) -> None:
    with transaction() as session:
        document = _document(tenant, "gs://b/p/cascade.pdf")
        session.add(document)
        session.flush()
        session.add(IngestionJob(document_id=document.id, generation=1))
        session.execute(
            insert(DocumentChunk),
            [_chunk_row(tenant, document.id, i, [0.1] * EMBEDDING_DIM) for i in range(3)],
        )
    with transaction() as session:
        session.execute(delete(Project).where(Project.id == tenant.project_id))
    with transaction() as session:
        assert (
            session.scalars(select(Document).where(Document.project_id == tenant.project_id)).all()
            == []
        )
        assert (
            session.scalars(
                select(DocumentChunk).where(DocumentChunk.project_id == tenant.project_id)
            ).all()
            == []
        )
        assert (
            session.scalars(
                select(IngestionJob).where(IngestionJob.document_id == document.id)
            ).all()
            == []
        )


def test_cloud_sql_service_account_role_gets_table_access(database_url: str) -> None:
    """On Cloud SQL the functions' IAM users share `cloudsqliamserviceaccount`; grant it."""
    from common.platform import migrate

    role = "cloudsqliamserviceaccount"
    engine = get_engine()
    with engine.begin() as connection:
        connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        connection.execute(text(f"CREATE ROLE {role} NOLOGIN"))
    try:
        migrate.downgrade("0002")
        migrate.upgrade()
        with engine.connect() as connection:
            for table in ("documents", "document_chunks", "query_logs", "api_keys"):
                allowed = connection.execute(
                    text("SELECT has_table_privilege(:r, :t, 'SELECT,INSERT,UPDATE,DELETE')"),
                    {"r": role, "t": table},
                ).scalar_one()
                assert allowed, table
    finally:
        migrate.downgrade("0002")
        with engine.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        migrate.upgrade()


def test_embeddings_are_stored_inline(database_url: str) -> None:
    with get_engine().connect() as connection:
        storage = connection.execute(
            text(
                "SELECT attstorage FROM pg_attribute "
                "WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'"
            )
        ).scalar_one()
    assert storage == "m"
