"""`ai-infra teams create|list|limit|limit-ingest`."""

from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common.cli.context import CliError, connect, state_of
from common.cli.limits import MAX_REQUESTS_PER_MINUTE, MAX_RUNNING_JOBS, parse_count, parse_limit
from common.cli.output import emit_fields, emit_records
from common.cli.resolve import find_team
from common.platform.db import transaction
from common.platform.models import ApiKey, Project, Team

app = typer.Typer(help="Teams: the tenants that own projects and API keys.", no_args_is_help=True)

COLUMNS = [
    ("id", "ID"),
    ("name", "NAME"),
    ("projects", "PROJECTS"),
    ("keys", "KEYS"),
    ("requests_per_minute", "RPM PER KEY"),
    ("max_running_jobs", "INGEST JOBS"),
    ("created_at", "CREATED"),
]


def team_record(team: Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        # Its keys' default limit; None: AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE.
        "requests_per_minute": team.requests_per_minute,
        # Ingestion jobs at once; None: AI_INFRA_INGEST_TEAM_MAX_RUNNING, else a fair share.
        "max_running_jobs": team.max_running_jobs,
        "created_at": team.created_at,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique team name.")],
    requests_per_minute: Annotated[
        int | None,
        typer.Option(
            "--requests-per-minute",
            min=1,
            max=MAX_REQUESTS_PER_MINUTE,
            help="Default rate limit of the team's keys (default: the global setting).",
        ),
    ] = None,
) -> None:
    """Create a team."""
    name = name.strip()
    if not name:
        raise CliError("a team name cannot be empty")
    connect(ctx)
    try:
        with transaction() as session:
            if session.scalars(select(Team).where(Team.name == name)).first() is not None:
                raise CliError(f"team {name!r} already exists")
            team = Team(name=name, requests_per_minute=requests_per_minute)
            session.add(team)
            session.flush()
            session.refresh(team)
            record = team_record(team)
    except IntegrityError:
        raise CliError(f"team {name!r} already exists") from None
    emit_fields(state_of(ctx), record, [("id", "id"), ("name", "name"), ("created_at", "created")])


@app.command("list")
def list_teams(ctx: typer.Context) -> None:
    """List teams with their project and key counts."""
    connect(ctx)
    projects = select(func.count()).where(Project.team_id == Team.id).scalar_subquery()
    keys = select(func.count()).where(ApiKey.team_id == Team.id).scalar_subquery()
    with transaction() as session:
        rows = session.execute(select(Team, projects, keys).order_by(Team.created_at, Team.name))
        records = [
            {**team_record(team), "projects": n_projects, "keys": n_keys}
            for team, n_projects, n_keys in rows
        ]
    emit_records(state_of(ctx), records, COLUMNS, empty="no teams yet: ai-infra teams create NAME")


@app.command("limit")
def limit(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name or id.")],
    requests_per_minute: Annotated[
        str, typer.Argument(help="Requests per minute per key, or 'default' for the setting.")
    ],
) -> None:
    """Set the default requests-per-minute limit of a team's keys (keys may override it)."""
    value = parse_limit(requests_per_minute, inherit="default")
    connect(ctx)
    with transaction() as session:
        row = find_team(session, team)
        row.requests_per_minute = value
        record = team_record(row)
    emit_fields(
        state_of(ctx),
        record,
        [("id", "team"), ("name", "name"), ("requests_per_minute", "rpm per key")],
    )


@app.command("limit-ingest")
def limit_ingest(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name or id.")],
    jobs: Annotated[
        str, typer.Argument(help="Ingestion jobs the team may run at once, or 'default'.")
    ],
) -> None:
    """Cap how many of a team's ingestion jobs run at once (others wait, deferred, and spend
    no attempt); 'default': AI_INFRA_INGEST_TEAM_MAX_RUNNING, else the team's fair share."""
    value = parse_count(jobs, inherit="default", what="running jobs", most=MAX_RUNNING_JOBS)
    connect(ctx)
    with transaction() as session:
        row = find_team(session, team)
        row.max_running_jobs = value
        record = team_record(row)
    emit_fields(
        state_of(ctx),
        record,
        [("id", "team"), ("name", "name"), ("max_running_jobs", "ingest jobs at once")],
    )
