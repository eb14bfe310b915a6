"""Grant the functions' IAM database users access to the schema (Cloud SQL only).

On Cloud SQL every IAM service-account user is a member of `cloudsqliamserviceaccount`; the
operator who runs the migrations owns the tables, so without this grant the functions could not
read or write them. Elsewhere (the embedded Postgres, Docker) the role does not exist and this is
a no-op. Default privileges cover tables later migrations create.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "cloudsqliamserviceaccount"


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
            GRANT USAGE ON SCHEMA public TO {ROLE};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE};
            ALTER DEFAULT PRIVILEGES IN SCHEMA public
              GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE};
            ALTER DEFAULT PRIVILEGES IN SCHEMA public
              GRANT USAGE, SELECT ON SEQUENCES TO {ROLE};
          END IF;
        END
        $$;
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
            ALTER DEFAULT PRIVILEGES IN SCHEMA public
              REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {ROLE};
            ALTER DEFAULT PRIVILEGES IN SCHEMA public
              REVOKE USAGE, SELECT ON SEQUENCES FROM {ROLE};
            REVOKE SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public FROM {ROLE};
            REVOKE USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public FROM {ROLE};
          END IF;
        END
        $$;
        """
    )
