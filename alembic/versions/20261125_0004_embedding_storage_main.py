"""Keep chunk embeddings inline (storage MAIN) so vector scans do not fetch each from TOAST.

A chunk row (vector + text + tsvector) passes the 2 kB TOAST threshold, and with the default
EXTENDED storage the vector, its largest field, was moved out of line: every exact-scan row then
cost an extra TOAST fetch (bench/query.py: a regular project's p50 18 ms -> 10 ms inline).
MAIN makes the toaster move the text and tsvector out first and the vector only as a last
resort, so 1536-d vectors still fit. Applies to rows written from now on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 20:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE MAIN")


def downgrade() -> None:
    op.execute("ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE EXTENDED")
