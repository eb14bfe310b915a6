"""Embedding spaces: a model switch fills a space of its own beside the inline vectors.

`embedding_spaces` lists the spaces other than the inline one (`document_chunks.embedding`, now
nullable: a project that moved to another space and finished keeps no inline vectors). Each
project points at its active, pending and previous space (NULL: inline). Re-embedding jobs are
ingestion jobs with a `space_id`: one job per (document, generation) and space, so the unique
key becomes two partial unique indexes. The spaces' own tables are created by
`ai-infra embeddings switch`, not here.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "embedding_spaces",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedding_spaces")),
        sa.UniqueConstraint(
            "model", "dimensions", name=op.f("uq_embedding_spaces_model_dimensions")
        ),
        sa.UniqueConstraint("table_name", name=op.f("uq_embedding_spaces_table_name")),
    )
    for column in ("active_space_id", "pending_space_id", "previous_space_id"):
        op.add_column("projects", sa.Column(column, sa.UUID(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_projects_{column}_embedding_spaces"),
            "projects",
            "embedding_spaces",
            [column],
            ["id"],
        )
    op.add_column("ingestion_jobs", sa.Column("space_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_ingestion_jobs_space_id_embedding_spaces"),
        "ingestion_jobs",
        "embedding_spaces",
        ["space_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_constraint("uq_ingestion_jobs_document_id_generation", "ingestion_jobs", type_="unique")
    op.create_index(
        "uq_ingestion_jobs_document_id_generation",
        "ingestion_jobs",
        ["document_id", "generation"],
        unique=True,
        postgresql_where=sa.text("space_id IS NULL"),
    )
    op.create_index(
        "uq_ingestion_jobs_document_id_generation_space_id",
        "ingestion_jobs",
        ["document_id", "generation", "space_id"],
        unique=True,
        postgresql_where=sa.text("space_id IS NOT NULL"),
    )
    op.alter_column("document_chunks", "embedding", nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM document_chunks WHERE embedding IS NULL")
    op.alter_column("document_chunks", "embedding", nullable=False)
    op.drop_index("uq_ingestion_jobs_document_id_generation_space_id", table_name="ingestion_jobs")
    op.drop_index("uq_ingestion_jobs_document_id_generation", table_name="ingestion_jobs")
    op.execute("DELETE FROM ingestion_jobs WHERE space_id IS NOT NULL")
    op.create_unique_constraint(
        "uq_ingestion_jobs_document_id_generation", "ingestion_jobs", ["document_id", "generation"]
    )
    op.drop_constraint(
        op.f("fk_ingestion_jobs_space_id_embedding_spaces"), "ingestion_jobs", type_="foreignkey"
    )
    op.drop_column("ingestion_jobs", "space_id")
    for column in ("previous_space_id", "pending_space_id", "active_space_id"):
        op.drop_constraint(
            op.f(f"fk_projects_{column}_embedding_spaces"), "projects", type_="foreignkey"
        )
        op.drop_column("projects", column)
    op.execute(
        "DO $$ DECLARE t text; BEGIN FOR t IN SELECT table_name FROM embedding_spaces "
        "WHERE table_name IS NOT NULL LOOP "
        "EXECUTE format('DROP TABLE IF EXISTS %I', t); END LOOP; END $$"
    )
    op.drop_table("embedding_spaces")
