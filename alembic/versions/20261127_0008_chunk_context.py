"""document_chunks.context: the title and section heading path, embedded and full-text indexed.

content_tsv is generated from context + content, so it is dropped and added again (with its
GIN index); existing rows get their tsvector from the content alone until re-ingested.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_document_chunks_content_tsv"


def _tsv(expression: str) -> None:
    op.drop_index(_INDEX, table_name="document_chunks")
    op.drop_column("document_chunks", "content_tsv")
    op.add_column(
        "document_chunks",
        sa.Column("content_tsv", TSVECTOR(), sa.Computed(expression, persisted=True)),
    )
    op.create_index(_INDEX, "document_chunks", ["content_tsv"], postgresql_using="gin")


def upgrade() -> None:
    op.add_column("document_chunks", sa.Column("context", sa.Text(), nullable=True))
    _tsv("to_tsvector('english'::regconfig, coalesce(context || ' ', '') || content)")


def downgrade() -> None:
    _tsv("to_tsvector('english'::regconfig, content)")
    op.drop_column("document_chunks", "context")
