"""`ai-infra migrate`: bring the database schema to head (alembic)."""

import typer
from rich.console import Console

from common.cli.context import connect, state_of
from common.cli.output import emit


def migrate_command(ctx: typer.Context) -> None:
    """Upgrade the database schema to the newest migration."""
    from common.platform import migrate

    connect(ctx, migrating=True)
    before = migrate.current_revision()
    migrate.upgrade()
    after = migrate.current_revision()
    record = {"from": before, "to": after, "changed": before != after}

    def render(out: Console) -> None:
        if before == after:
            out.print(f"schema already at head ({after})")
        else:
            out.print(f"schema migrated: {before or 'empty database'} -> {after}")

    emit(state_of(ctx), record, render)
