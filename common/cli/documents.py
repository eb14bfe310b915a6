"""`ai-infra documents list|show|reprocess|set-meta`: where each file is in the pipeline,
retries, and attributes."""

import json
import uuid
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.cli.context import CliError, connect, state_of
from common.cli.output import emit, emit_fields, emit_records, table
from common.cli.resolve import find_document, find_project, parse_uuid
from common.platform.db import transaction
from common.platform.models import Document, DocumentStatus, IngestionJob

app = typer.Typer(help="Documents: status, last job, errors; reprocess.", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]

COLUMNS = [
    ("id", "ID"),
    ("title", "TITLE"),
    ("status", "STATUS"),
    ("chunks", "CHUNKS"),
    ("updated_at", "UPDATED"),
    ("error", "ERROR"),
]

SHOW_FIELDS = [
    ("id", "id"),
    ("title", "title"),
    ("project", "project"),
    ("gcs_uri", "object"),
    ("mime_type", "type"),
    ("size_bytes", "bytes"),
    ("status", "status"),
    ("chunks", "chunks"),
    ("embedding_model", "embedding model"),
    ("error", "error"),
    ("notice", "notice"),
    ("attributes", "attributes"),
    ("metadata_error", "metadata error"),
    ("created_at", "created"),
    ("updated_at", "updated"),
    ("job_id", "last job"),
    ("job_status", "job status"),
    ("job_attempts", "job attempts"),
    ("job_started_at", "job started"),
    ("job_finished_at", "job finished"),
    ("job_error", "job error"),
]


def document_record(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "project_id": document.project_id,
        "title": document.title,
        "gcs_uri": document.gcs_uri,
        "mime_type": document.mime_type,
        "size_bytes": document.size_bytes,
        "status": document.status,
        "chunks": document.chunk_count,
        "embedding_model": document.embedding_model,
        "error": document.error_message,
        "notice": document.notice,
        "attributes": document.attributes,
        "metadata_error": document.metadata_error,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
    }


def last_job(session: Session, document_id: uuid.UUID) -> IngestionJob | None:
    query = (
        select(IngestionJob)
        .where(IngestionJob.document_id == document_id)
        .order_by(IngestionJob.created_at.desc(), IngestionJob.generation.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def job_fields(job: IngestionJob | None) -> dict[str, Any]:
    return {
        "job_id": job.id if job else None,
        "job_generation": job.generation if job else None,
        "job_status": job.status if job else None,
        "job_attempts": job.attempts if job else None,
        "job_started_at": job.started_at if job else None,
        "job_finished_at": job.finished_at if job else None,
        "job_error": job.error_message if job else None,
    }


@app.command("list")
def list_documents(
    ctx: typer.Context,
    project: ProjectOption,
    status: Annotated[
        DocumentStatus | None, typer.Option("--status", "-s", help="Only documents in this state.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 200,
    document_filter: Annotated[
        str | None,
        typer.Option("--filter", help="Only documents whose attributes match (JSON filter)."),
    ] = None,
) -> None:
    """List a project's documents with status, chunk count and error."""
    connect(ctx)
    with transaction() as session:
        owner = find_project(session, project)
        query = select(Document).where(Document.project_id == owner.id)
        if status is not None:
            query = query.where(Document.status == status)
        if document_filter is not None:
            query = query.where(Document.id.in_(_filtered(session, owner.id, document_filter)))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(Document.updated_at.desc(), Document.title).limit(limit)
        ).all()
        records = [document_record(d) for d in rows]
    state = state_of(ctx)
    emit_records(state, records, COLUMNS, empty="no documents")
    if total > len(records) and not state.json:
        typer.echo(f"({len(records)} of {total} shown; use --limit)", err=True)


@app.command("show")
def show_document(
    ctx: typer.Context, document: Annotated[str, typer.Argument(help="Document id.")]
) -> None:
    """One document: status, last ingestion job, error message, chunk count."""
    parse_uuid(document, "document id")
    connect(ctx)
    with transaction() as session:
        row = find_document(session, document)
        owner = find_project(session, str(row.project_id))
        record = {
            **document_record(row),
            "project": owner.name,
            **job_fields(last_job(session, row.id)),
        }
    emit_fields(state_of(ctx), record, SHOW_FIELDS)


@app.command("reprocess")
def reprocess(
    ctx: typer.Context,
    document: Annotated[str | None, typer.Argument(help="Document id.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed document.")] = False,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="With --failed: project name or id.")
    ] = None,
) -> None:
    """Run ingestion again for one document, or for every failed one of a project."""
    if (document is None) == (not failed):
        raise CliError("give a document id or --failed --project P (not both)")
    if failed and project is None:
        raise CliError("--failed needs --project P")
    connect(ctx, need_stack=True)
    with transaction() as session:
        if document is not None:
            targets = [find_document(session, document)]
        else:
            owner = find_project(session, project or "")
            targets = list(
                session.scalars(
                    select(Document)
                    .where(Document.project_id == owner.id)
                    .where(Document.status == DocumentStatus.FAILED)
                    .order_by(Document.title)
                )
            )
        chosen = [(d.id, d.title) for d in targets]
    try:
        from common.ingestion.trigger import reprocess_document
    except ImportError:
        raise CliError(
            "reprocessing is not available in this version (common.ingestion.trigger)"
        ) from None
    records = []
    for doc_id, title in chosen:
        try:
            job_id = reprocess_document(doc_id)
        except LookupError as error:  # e.g. a document that never had an uploaded object
            raise CliError(f"cannot reprocess {title!r}: {error}") from None
        records.append({"document_id": doc_id, "title": title, "job_id": job_id})

    def render(out: Console) -> None:
        if not records:
            out.print("no failed documents")
            return
        out.print(
            table(records, [("document_id", "DOCUMENT"), ("title", "TITLE"), ("job_id", "JOB")])
        )
        out.print(f"{len(records)} document(s) queued again")

    emit(state_of(ctx), records, render)


def _filtered(session: Session, project_id: uuid.UUID, raw: str) -> list[uuid.UUID]:
    from common.platform.attributes import known_types
    from common.platform.errors import ApiError
    from common.query.filters import compile_filter, parse_filter_text
    from common.query.retrieval import matching_documents

    try:
        compiled = compile_filter(
            parse_filter_text(raw, path="--filter"),
            known_types(session, project_id),
            path="--filter",
        )
    except ApiError as error:
        raise CliError(error.message) from None
    return matching_documents(session, project_id, compiled)


@app.command("set-meta")
def set_meta(
    ctx: typer.Context,
    document: Annotated[str, typer.Argument(help="Document id.")],
    attributes: Annotated[
        list[str] | None,
        typer.Argument(
            help='KEY=VALUE pairs; VALUE as JSON when it parses (2025, true, ["a","b"]), else text.'
        ),
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="Remove this attribute (repeatable).")
    ] = None,
) -> None:
    """Change a document's attributes (written as its sidecar; nothing is re-embedded)."""
    from common.platform.errors import ApiError
    from common.query.document_metadata import patch_attributes

    patch: dict[str, object] = {name: None for name in unset or []}
    for pair in attributes or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{pair!r}: expected KEY=VALUE")
        patch[key.strip()] = _json_or_text(value)
    if not patch:
        raise CliError("give KEY=VALUE pairs or --unset KEY")
    parse_uuid(document, "document id")
    settings = connect(ctx, need_stack=True)
    with transaction() as session:
        row = find_document(session, document)
        team_id = row.team_id
    try:
        view = patch_attributes(team_id, row.id, patch, settings)
    except ApiError as error:
        raise CliError(error.message) from None
    record = {"id": view.id, "title": view.title, "attributes": view.attributes}
    emit_fields(
        state_of(ctx),
        record,
        [("id", "id"), ("title", "title"), ("attributes", "attributes")],
    )


def _json_or_text(value: str) -> object:
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, str | int | float | bool | list) else value
