"""Fair ingestion: ingestion_jobs.deferred_at / deferrals and teams.max_running_jobs.

A job held back by fair scheduling stays `queued` with `deferred_at` set until a free slot
releases it (common.ingestion.scheduling); the partial index finds those few rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("teams", sa.Column("max_running_jobs", sa.Integer(), nullable=True))
    op.add_column(
        "ingestion_jobs", sa.Column("deferred_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "ingestion_jobs",
        sa.Column("deferrals", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index(
        "ix_ingestion_jobs_deferred_at",
        "ingestion_jobs",
        ["deferred_at"],
        postgresql_where="deferred_at IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_index("ix_ingestion_jobs_deferred_at", table_name="ingestion_jobs")
    op.drop_column("ingestion_jobs", "deferrals")
    op.drop_column("ingestion_jobs", "deferred_at")
    op.drop_column("teams", "max_running_jobs")
