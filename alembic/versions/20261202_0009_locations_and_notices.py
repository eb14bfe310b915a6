"""Citable places and extraction notices: document_chunks.location, documents.notice and
ingestion_jobs.notice.

A chunk's location is how a citation names where it is ("slide 7", "sheet Budget, rows 2-41",
"page 3 (OCR)"); a notice says what a succeeded extraction left out (rows past the cap). Both
are nullable: existing rows keep NULL until re-ingested.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("document_chunks", sa.Column("location", sa.Text(), nullable=True))
    op.add_column("documents", sa.Column("notice", sa.Text(), nullable=True))
    op.add_column("ingestion_jobs", sa.Column("notice", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("ingestion_jobs", "notice")
    op.drop_column("documents", "notice")
    op.drop_column("document_chunks", "location")
