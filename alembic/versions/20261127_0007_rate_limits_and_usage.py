"""Rate limits per API key and the usage report's index.

`teams.requests_per_minute` (a team's default) and `api_keys.requests_per_minute` (a key's own
limit); `api_key_rate_windows`, one UNLOGGED counter row per key (see
`common.query.rate_limit`); `query_logs (team_id, created_at)` for `GET /v1/usage`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("teams", sa.Column("requests_per_minute", sa.Integer(), nullable=True))
    op.add_column("api_keys", sa.Column("requests_per_minute", sa.Integer(), nullable=True))
    op.create_table(
        "api_key_rate_windows",
        sa.Column("api_key_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_rate_windows_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", name=op.f("pk_api_key_rate_windows")),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_query_logs_team_id_created_at", "query_logs", ["team_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_query_logs_team_id_created_at", table_name="query_logs")
    op.drop_table("api_key_rate_windows")
    op.drop_column("api_keys", "requests_per_minute")
    op.drop_column("teams", "requests_per_minute")
