"""`ai-infra projects create|list`."""

from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common.cli.context import CliError, connect, state_of
from common.cli.output import emit_fields, emit_records
from common.cli.resolve import find_team
from common.platform.db import transaction
from common.platform.models import Document, Project, Team

app = typer.Typer(help="Projects: a team's document collections.", no_args_is_help=True)

TeamOption = Annotated[str, typer.Option("--team", "-t", help="Team name or id.")]

COLUMNS = [
    ("id", "ID"),
    ("name", "NAME"),
    ("team", "TEAM"),
    ("documents", "DOCUMENTS"),
    ("created_at", "CREATED"),
]


def project_record(project: Project, team: Team) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "team_id": team.id,
        "team": team.name,
        "created_at": project.created_at,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name, unique within the team.")],
    team: TeamOption,
) -> None:
    """Create a project in a team; its id is the folder name for uploads."""
    name = name.strip()
    if not name:
        raise CliError("a project name cannot be empty")
    connect(ctx)
    try:
        with transaction() as session:
            owner = find_team(session, team)
            taken = select(Project).where(Project.team_id == owner.id, Project.name == name)
            if session.scalars(taken).first() is not None:
                raise CliError(f"team {owner.name!r} already has a project {name!r}")
            project = Project(team_id=owner.id, name=name)
            session.add(project)
            session.flush()
            session.refresh(project)
            record = project_record(project, owner)
    except IntegrityError:
        raise CliError(f"team {team!r} already has a project {name!r}") from None
    emit_fields(
        state_of(ctx),
        record,
        [("id", "id"), ("name", "name"), ("team", "team"), ("created_at", "created")],
    )


@app.command("list")
def list_projects(
    ctx: typer.Context,
    team: Annotated[str | None, typer.Option("--team", "-t", help="Only this team's.")] = None,
) -> None:
    """List projects (all teams, or one)."""
    connect(ctx)
    documents = select(func.count()).where(Document.project_id == Project.id).scalar_subquery()
    with transaction() as session:
        query = select(Project, Team, documents).join(Team, Team.id == Project.team_id)
        if team is not None:
            query = query.where(Project.team_id == find_team(session, team).id)
        rows = session.execute(query.order_by(Team.name, Project.name))
        records = [
            {**project_record(project, owner), "documents": count} for project, owner, count in rows
        ]
    emit_records(
        state_of(ctx),
        records,
        COLUMNS,
        empty="no projects yet: ai-infra projects create --team T NAME",
    )
