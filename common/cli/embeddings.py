"""`ai-infra embeddings switch|status|rollback|finish`: change a project's embedding model with
no downtime (see common/ingestion/embedding_switch.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.cli.context import CliError, connect, state_of
from common.cli.output import emit, emit_records
from common.cli.resolve import find_project
from common.platform.config import Settings
from common.platform.db import transaction
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus, Project
from common.platform.spaces import check_choice, ensure_space, project_spaces

app = typer.Typer(
    help="Embedding models: switch a project to another, watch, roll back, finish.",
    no_args_is_help=True,
)

ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="Project name or id (or --all).")
]
AllOption = Annotated[bool, typer.Option("--all", help="Every project.")]


def _projects(session: Session, project: str | None, every: bool) -> list[Project]:
    if (project is None) == (not every):
        raise CliError("give --project P or --all")
    if every:
        return list(session.scalars(select(Project).order_by(Project.name)))
    return [find_project(session, project or "")]


@app.command("switch")
def switch(
    ctx: typer.Context,
    *,
    model: Annotated[str, typer.Option("--model", "-m", help="The embedding model to move to.")],
    dimensions: Annotated[
        int | None, typer.Option("--dimensions", "-d", help="Its output dimension.")
    ] = None,
    project: ProjectOption = None,
    every: AllOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Re-embed the stored chunks of the projects into MODEL in the background; each project
    switches when its new vectors are complete. Prints the cost first."""
    from common.ingestion.embedding_switch import activate_if_complete, estimate, start

    try:
        size = check_choice(model, dimensions)
    except ValueError as error:
        raise CliError(str(error)) from None
    settings = connect(ctx, need_stack=True)
    with transaction() as session:
        chosen = _projects(session, project, every)
        space = ensure_space(session, model, size, settings)
        cost = estimate(session, [p.id for p in chosen], space, settings)
    state = state_of(ctx)
    if not state.json:
        typer.echo(
            f"Switching {cost.projects} project(s) to {space.label}: {cost.documents} documents, "
            f"{cost.chunks} chunks, ~{cost.tokens:,} tokens in {cost.requests:,} requests, "
            f"~{cost.minutes_at_quota:.1f} min at {settings.embedding_quota_per_minute} "
            f"requests/min, ~${cost.dollars:.2f}."
        )
    if not yes:
        typer.confirm("Start the switch?", abort=True)
    records: list[dict[str, Any]] = []
    for owner in chosen:
        with transaction() as session:
            queued = start(session, owner.id, space, settings)
        records.append({"project": owner.name, "project_id": owner.id, "jobs_queued": queued})
    with transaction() as session:
        for owner in chosen:  # nothing to re-embed: complete already
            activate_if_complete(session, owner.id, settings)

    def render(out: Console) -> None:
        for record in records:
            out.print(f"{record['project']}: {record['jobs_queued']} re-embedding jobs queued")
        out.print("`ai-infra embeddings status` shows the progress.")

    emit(state, {"estimate": vars(cost), "projects": records}, render)


@app.command("status")
def status(ctx: typer.Context, project: ProjectOption = None, every: AllOption = True) -> None:
    """Per project: the active, pending and previous space, and the switch's progress."""
    settings = connect(ctx)
    with transaction() as session:
        chosen = _projects(session, project, every=project is None)
        records = [_status(session, owner, settings) for owner in chosen]
    emit_records(
        state_of(ctx),
        records,
        [
            ("project", "PROJECT"),
            ("active", "ACTIVE"),
            ("pending", "PENDING"),
            ("progress", "RE-EMBEDDED"),
            ("failed_jobs", "FAILED"),
            ("previous", "PREVIOUS"),
        ],
        empty="no projects",
    )


def _status(session: Session, owner: Project, settings: Settings) -> dict[str, Any]:
    from common.ingestion.embedding_switch import missing_documents

    spaces = project_spaces(session, owner.id, settings)
    record: dict[str, Any] = {
        "project": owner.name,
        "project_id": owner.id,
        "active": spaces.active.label,
        "pending": spaces.pending.label if spaces.pending else None,
        "previous": spaces.previous.label if spaces.previous else None,
        "progress": None,
        "failed_jobs": 0,
    }
    if spaces.pending is not None:
        ready = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.project_id == owner.id, Document.status == DocumentStatus.READY)
        )
        missing = len(missing_documents(session, owner.id, spaces.pending))
        record["progress"] = f"{(ready or 0) - missing}/{ready} documents"
        record["failed_jobs"] = session.scalar(
            select(func.count())
            .select_from(IngestionJob)
            .join(Document, Document.id == IngestionJob.document_id)
            .where(
                Document.project_id == owner.id,
                IngestionJob.space_id == spaces.pending.id,
                IngestionJob.status == JobStatus.FAILED,
                Document.generation == IngestionJob.generation,
            )
        )
    return record


@app.command("rollback")
def rollback(ctx: typer.Context, project: ProjectOption = None, every: AllOption = False) -> None:
    """Cancel a running switch, or make the previous space active again (instant)."""
    from common.ingestion.embedding_switch import rollback as roll_back

    settings = connect(ctx)
    outcomes = []
    with transaction() as session:
        for owner in _projects(session, project, every):
            try:
                outcomes.append(
                    {"project": owner.name, "result": roll_back(session, owner.id, settings)}
                )
            except LookupError as error:
                outcomes.append({"project": owner.name, "result": str(error)})
    emit_records(state_of(ctx), outcomes, [("project", "PROJECT"), ("result", "RESULT")])


@app.command("finish")
def finish(
    ctx: typer.Context,
    project: ProjectOption = None,
    every: AllOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop the previous space's vectors: no rollback after this."""
    from common.ingestion.embedding_switch import finish as drop_previous

    settings = connect(ctx)
    if not yes:
        typer.confirm("Drop the previous embedding space (no rollback after this)?", abort=True)
    outcomes = []
    with transaction() as session:
        for owner in _projects(session, project, every):
            dropped = drop_previous(session, owner.id, settings)
            outcomes.append(
                {"project": owner.name, "dropped": dropped or "nothing (no previous space)"}
            )
    emit_records(state_of(ctx), outcomes, [("project", "PROJECT"), ("dropped", "DROPPED")])
