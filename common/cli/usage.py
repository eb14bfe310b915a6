"""`ai-infra usage --team TEAM [--from DAY] [--to DAY]`: what `GET /v1/usage` reports."""

from typing import Annotated

import typer
from rich.console import Console

from common.cli.context import CliError, connect, state_of
from common.cli.output import emit, table
from common.cli.resolve import find_team
from common.platform.db import transaction
from common.query.usage import (
    UsageRangeError,
    parse_day,
    resolve_range,
    team_usage,
    today_utc,
)

COLUMNS = [
    ("date", "DAY (UTC)"),
    ("requests", "REQUESTS"),
    ("answered_requests", "ANSWERED"),
    ("prompt_tokens", "PROMPT TOKENS"),
    ("completion_tokens", "COMPLETION TOKENS"),
    ("documents_added", "DOCUMENTS ADDED"),
    ("bytes_uploaded", "BYTES UPLOADED"),
    ("chunks_created", "CHUNKS CREATED"),
]


def usage_command(
    ctx: typer.Context,
    team: Annotated[str, typer.Option("--team", "-t", help="Team name or id.")],
    start: Annotated[
        str | None, typer.Option("--from", help="First UTC day, YYYY-MM-DD (default: 30 days).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last UTC day, inclusive (default: today).")
    ] = None,
) -> None:
    """A team's requests, tokens, documents and chunks per day and in total."""
    try:
        first, last = resolve_range(
            parse_day(start, "from"), parse_day(end, "to"), today=today_utc()
        )
    except UsageRangeError as error:
        raise CliError(f"--{error}") from None  # messages start with the parameter's name
    connect(ctx)
    with transaction() as session:
        owner = find_team(session, team)
        report = team_usage(session, owner.id, first, last)

    def render(out: Console) -> None:
        rows = [day.model_dump() for day in report.days]
        totals: dict[str, object] = {"date": "total", **report.total.model_dump()}
        out.print(table([*rows, totals], COLUMNS, title=f"usage of team {owner.name}"))
        now = report.documents
        statuses = ", ".join(f"{count} {status}" for status, count in now.by_status.items())
        out.print(
            f"documents now: {statuses}; {now.chunks_stored} chunks, {now.bytes_stored} bytes"
        )

    emit(state_of(ctx), report.model_dump(mode="json"), render)
