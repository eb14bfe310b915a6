"""`ai-infra keys create|list|revoke`: the raw key is shown once; only its hash is stored."""

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import select

from common.cli.context import CliError, connect, state_of
from common.cli.limits import MAX_REQUESTS_PER_MINUTE, parse_limit
from common.cli.output import emit, emit_fields, emit_records, warn
from common.cli.resolve import find_key, find_team
from common.platform.db import transaction
from common.platform.models import ApiKey, ApiKeyStatus, Team
from common.query import auth

app = typer.Typer(
    help="API keys: create (shown once), list, revoke, rate limit.", no_args_is_help=True
)

# How much of the raw key is kept for display: enough to tell keys apart, useless to an attacker.
PREFIX_LENGTH = 12

COLUMNS = [
    ("id", "ID"),
    ("prefix", "PREFIX"),
    ("name", "NAME"),
    ("team", "TEAM"),
    ("status", "STATUS"),
    ("requests_per_minute", "RPM"),
    ("created_at", "CREATED"),
    ("last_used_at", "LAST USED"),
    ("revoked_at", "REVOKED"),
]


def key_record(key: ApiKey, team: Team) -> dict[str, Any]:
    """Everything an operator may see about a key; never the hash."""
    return {
        "id": key.id,
        "prefix": key.key_prefix,
        "name": key.name,
        "team_id": team.id,
        "team": team.name,
        "status": key.status,
        # The key's own limit; None: the team's default, else AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE.
        "requests_per_minute": key.requests_per_minute,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    team: Annotated[str, typer.Option("--team", "-t", help="Team name or id.")],
    name: Annotated[str | None, typer.Option("--name", help="A label, e.g. who uses it.")] = None,
    requests_per_minute: Annotated[
        int | None,
        typer.Option(
            "--requests-per-minute",
            min=1,
            max=MAX_REQUESTS_PER_MINUTE,
            help="This key's rate limit (default: the team's, else the global setting).",
        ),
    ] = None,
) -> None:
    """Create an API key for a team and print it once."""
    connect(ctx)
    raw_key = auth.generate_api_key()
    with transaction() as session:
        owner = find_team(session, team)
        key = ApiKey(
            team_id=owner.id,
            key_hash=auth.hash_api_key(raw_key),
            key_prefix=raw_key[:PREFIX_LENGTH],
            name=name,
            requests_per_minute=requests_per_minute,
        )
        session.add(key)
        session.flush()
        session.refresh(key)
        record = {**key_record(key, owner), "key": raw_key}
    warn("store this key now: it is not stored and will not be shown again")

    def render(out: Console) -> None:
        out.print(f"API key for team {owner.name} (id {key.id}):")
        out.print(raw_key, markup=False)

    emit(state_of(ctx), record, render)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    team: Annotated[str | None, typer.Option("--team", "-t", help="Only this team's.")] = None,
) -> None:
    """List keys: prefix, status, created, last used (never the key or its hash)."""
    connect(ctx)
    with transaction() as session:
        query = select(ApiKey, Team).join(Team, Team.id == ApiKey.team_id)
        if team is not None:
            query = query.where(ApiKey.team_id == find_team(session, team).id)
        rows = session.execute(query.order_by(Team.name, ApiKey.created_at))
        records = [key_record(key, owner) for key, owner in rows]
    emit_records(state_of(ctx), records, COLUMNS, empty="no keys")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key id, displayed prefix, or the key itself.")],
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    connect(ctx)
    with transaction() as session:
        row = find_key(session, key)
        if row.status is ApiKeyStatus.REVOKED:
            raise CliError(f"key {row.key_prefix or row.id} is already revoked")
        row.status = ApiKeyStatus.REVOKED
        row.revoked_at = datetime.now(UTC)
        owner = session.get_one(Team, row.team_id)
        record = key_record(row, owner)
    emit_fields(
        state_of(ctx),
        record,
        [("id", "revoked key"), ("prefix", "prefix"), ("team", "team"), ("revoked_at", "at")],
    )


@app.command("limit")
def limit(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key id, displayed prefix, or the key itself.")],
    requests_per_minute: Annotated[
        str, typer.Argument(help="Requests per minute, or 'team' to use the team's default.")
    ],
) -> None:
    """Set a key's requests-per-minute limit (takes effect on its next request)."""
    value = parse_limit(requests_per_minute, inherit="team")
    connect(ctx)
    with transaction() as session:
        row = find_key(session, key)
        row.requests_per_minute = value
        record = key_record(row, session.get_one(Team, row.team_id))
    emit_fields(
        state_of(ctx),
        record,
        [("id", "key"), ("prefix", "prefix"), ("team", "team"), ("requests_per_minute", "rpm")],
    )
