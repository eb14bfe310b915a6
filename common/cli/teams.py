"""`ai-infra teams create|list`."""

from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common.cli.context import CliError, connect, state_of
from common.cli.output import emit_fields, emit_records
from common.platform.db import transaction
from common.platform.models import ApiKey, Project, Team

app = typer.Typer(help="Teams: the tenants that own projects and API keys.", no_args_is_help=True)

COLUMNS = [
    ("id", "ID"),
    ("name", "NAME"),
    ("projects", "PROJECTS"),
    ("keys", "KEYS"),
    ("created_at", "CREATED"),
]


def team_record(team: Team) -> dict[str, Any]:
    return {"id": team.id, "name": team.name, "created_at": team.created_at}


@app.command("create")
def create(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Unique team name.")]
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
            team = Team(name=name)
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
