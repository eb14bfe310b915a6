"""Document attributes: documents.path / object_attributes / attributes / (object_)metadata_error, the
sidecar table and each project's attribute types.

`path` is backfilled from the object URI (`gs://bucket/<project_id>/<path>`); attributes start
empty. The GIN index (jsonb_path_ops) serves filters' containment tests.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("path", sa.Text(), nullable=True))
    op.add_column(
        "documents",
        sa.Column(
            "object_attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )
    op.add_column(
        "documents",
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )
    op.add_column("documents", sa.Column("object_metadata_error", sa.Text(), nullable=True))
    op.add_column("documents", sa.Column("metadata_error", sa.Text(), nullable=True))
    op.execute(
        "UPDATE documents SET path = regexp_replace(gcs_uri, '^gs://[^/]+/[^/]+/', '') "
        "WHERE gcs_uri IS NOT NULL"
    )
    op.create_index(
        "ix_documents_attributes",
        "documents",
        ["attributes"],
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
    )
    op.create_table(
        "document_sidecars",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_document_sidecars_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "path", name=op.f("pk_document_sidecars")),
    )
    op.create_table(
        "project_attribute_types",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_attribute_types_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_project_attribute_types")),
    )


def downgrade() -> None:
    op.drop_table("project_attribute_types")
    op.drop_table("document_sidecars")
    op.drop_index("ix_documents_attributes", table_name="documents", postgresql_using="gin")
    op.drop_column("documents", "metadata_error")
    op.drop_column("documents", "object_metadata_error")
    op.drop_column("documents", "attributes")
    op.drop_column("documents", "object_attributes")
    op.drop_column("documents", "path")
