"""ingestion_jobs.lease_expires_at: a short lease a live worker renews (heartbeat).

A redelivery or the sweep takes a job over once its lease runs out, soon after its worker died,
instead of after the whole function timeout.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "ingestion_jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("ingestion_jobs", "lease_expires_at")
