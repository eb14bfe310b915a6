"""`ai-infra upload`: files or folders into `gs://BUCKET/<project_id>/<path>`, unchanged skipped.

In the cloud the bucket's finalize event starts ingestion (Eventarc); the local stack has no
Eventarc, so when `AI_INFRA_EVENT_SINK_URL` is set the same CloudEvent is posted to it here.
"""

import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy.orm import Session

from common.cli.context import CliError, connect, state_of
from common.cli.output import console, emit, table, warn
from common.cli.resolve import find_project
from common.platform.config import Mode, Settings
from common.platform.db import is_database_unavailable, transaction
from common.platform.formats import sniff_mime_type
from common.platform.storage import BlobInfo, BlobStore, get_blob_store

# Outcomes of one file's transfer.
UPLOADED = "uploaded"
UNCHANGED = "unchanged"
TOO_LARGE = "too large"
ERROR = "error"

EVENT_ATTEMPTS = 6  # 31 s of backoff: rides out a restarting trigger or database
POLL_SECONDS = 0.5
MAX_OBJECT_NAME_BYTES = 1024


@dataclass
class Item:
    """One local file and what became of it."""

    path: Path
    relative: str
    size: int
    object_name: str = ""
    outcome: str = ""
    generation: int | None = None
    error: str | None = None
    document: dict[str, Any] = field(default_factory=dict)

    def record(self, bucket: str) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "object": self.object_name,
            "gcs_uri": f"gs://{bucket}/{self.object_name}",
            "size": self.size,
            "result": self.outcome,
            "generation": self.generation,
            "error": self.error,
            **self.document,
        }


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def collect(paths: Sequence[Path]) -> list[Item]:
    """Every file named or found (recursively, no hidden files) under the folders named."""
    items: list[Item] = []
    for path in paths:
        if not path.exists():
            raise CliError(f"no such file or folder: {path}")
        if path.is_file():
            items.append(Item(path, path.name, path.stat().st_size))
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                relative = found.relative_to(path)
                if found.is_file() and not _hidden(relative):
                    items.append(Item(found, relative.as_posix(), found.stat().st_size))
        else:
            raise CliError(f"not a regular file or folder: {path}")
    if not items:
        raise CliError("nothing to upload (empty folders and hidden files are skipped)")
    seen: dict[str, Path] = {}
    for item in items:
        if item.relative in seen:
            raise CliError(
                f"{seen[item.relative]} and {item.path} would both be stored as {item.relative!r}"
            )
        seen[item.relative] = item.path
    return items


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def send_finalize(url: str, blob: BlobInfo) -> str | None:
    """Post the finalize CloudEvent as Eventarc would (retrying its 5xx); the error, if any."""
    from common.localstack.eventarc import FINALIZED, send_storage_event

    problem = ""
    for attempt in range(EVENT_ATTEMPTS):
        if attempt:
            time.sleep(POLL_SECONDS * 2**attempt)
        try:
            response = send_storage_event(url, FINALIZED, blob)
        except httpx.HTTPError as error:
            problem = f"event sink {url} unreachable: {type(error).__name__}"
            continue
        if response.is_success:
            return None
        problem = f"event sink answered {response.status_code}"
        if response.status_code < 500 and response.status_code != 429:
            break
    return problem


def transfer(
    item: Item, store: BlobStore, settings: Settings, metadata: dict[str, str] | None = None
) -> None:
    """Upload one file unless the stored object already has its content and attributes (a
    changed attribute alone uploads again: the chunks are reused, not re-embedded); send the
    event."""
    metadata = metadata or {}
    if item.size > settings.max_file_bytes:
        item.outcome = TOO_LARGE
        item.error = f"larger than AI_INFRA_MAX_FILE_BYTES ({settings.max_file_bytes} bytes)"
        return
    data = item.path.read_bytes()
    existing = store.stat(settings.bucket, item.object_name)
    if (
        existing is not None
        and existing.md5_hex == md5_hex(data)
        and metadata.items() <= existing.metadata.items()
    ):
        item.outcome, item.generation = UNCHANGED, existing.generation
        return
    content_type = sniff_mime_type(item.path.name, None)
    blob = store.upload(settings.bucket, item.object_name, data, content_type, metadata)
    item.outcome, item.generation = UPLOADED, blob.generation
    if settings.event_sink_url:
        item.error = send_finalize(settings.event_sink_url, blob)
        if item.error:
            item.outcome = ERROR


@contextmanager
def storage_errors(bucket: str) -> Iterator[None]:
    """Storage failures an operator can act on, as one line."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        yield
    except gexc.NotFound as error:
        raise CliError(f"bucket {bucket!r} not found ({error.message})") from None
    except gexc.Forbidden as error:
        raise CliError(f"no permission on bucket {bucket!r} ({error.message})") from None
    except auth_exc.DefaultCredentialsError:
        raise CliError(
            "no Google credentials: run `gcloud auth application-default login`"
        ) from None


def upload_all(
    items: list[Item],
    settings: Settings,
    show_progress: bool,
    metadata: dict[str, str] | None = None,
) -> None:
    store = get_blob_store()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[files]} files"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        disable=not show_progress,
    )
    total = sum(item.size for item in items)
    with progress, storage_errors(settings.bucket):
        task = progress.add_task("uploading", total=total, files=f"0/{len(items)}")
        for done, item in enumerate(items, start=1):
            transfer(item, store, settings, metadata or {})
            progress.update(task, advance=item.size, files=f"{done}/{len(items)}")


def _settled(row: Any, item: Item) -> bool:
    from common.platform.models import DocumentStatus

    if row is None or item.generation is None:
        return False
    if row.generation is None or row.generation < item.generation:
        return False  # the finalize event of this upload has not been handled yet
    if row.status is DocumentStatus.READY:
        return row.ready_generation is not None and row.ready_generation >= item.generation
    return bool(row.status is DocumentStatus.FAILED)


def wait_for_documents(
    items: list[Item], project_id: uuid.UUID, bucket: str, timeout: float, show_progress: bool
) -> bool:
    """Poll the documents rows until every uploaded file is ready or failed; False on timeout."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import select

    from common.platform.models import Document

    watched = {f"gs://{bucket}/{i.object_name}": i for i in items if i.generation is not None}
    deadline = time.monotonic() + timeout
    status = console(stderr=True).status("waiting for ingestion", spinner="dots")
    if show_progress:
        status.start()
    try:
        while True:
            try:
                with transaction() as session:
                    rows = session.scalars(
                        select(Document)
                        .where(Document.project_id == project_id)
                        .where(Document.gcs_uri.in_(list(watched)))
                    ).all()
            except sa_exc.DBAPIError as error:
                if not is_database_unavailable(error):
                    raise
                # The database is restarting (the dev stack restarts it): keep waiting, as
                # asked, until it is back or the timeout runs out.
                status.update("waiting for ingestion: the database is unavailable, retrying")
                if time.monotonic() >= deadline:
                    return False
                time.sleep(POLL_SECONDS)
                continue
            by_uri = {row.gcs_uri: row for row in rows}
            settled = 0
            for uri, item in watched.items():
                row = by_uri.get(uri)
                item.document = _document_fields(row)
                settled += _settled(row, item)
            status.update(f"waiting for ingestion: {settled}/{len(watched)} settled")
            if settled == len(watched):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
    finally:
        status.stop()


def parse_meta_options(options: list[str]) -> dict[str, str]:
    """`--meta KEY=VALUE` options as a dict (a later KEY wins)."""
    found: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--meta {option!r}: expected KEY=VALUE")
        found[key.strip()] = value
    return found


def typed_metadata(
    session: Session, project_id: uuid.UUID, attributes: dict[str, str]
) -> dict[str, str]:
    """Attributes checked and typed against the project's registry before anything is sent."""
    from common.platform.attributes import (
        AttributeValueError,
        known_types,
        parse_object_metadata,
        register_types,
    )

    try:
        values = parse_object_metadata(attributes, known_types(session, project_id))
        register_types(session, project_id, values, path="--meta")
    except AttributeValueError as error:
        raise CliError(str(error).replace("metadata.", "--meta ", 1)) from None
    return attributes


def _document_fields(row: Any) -> dict[str, Any]:
    if row is None:
        return {"document_id": None, "status": "not seen", "chunks": None}
    fields = {"document_id": row.id, "status": row.status.value, "chunks": row.chunk_count}
    if row.error_message:
        fields["error"] = row.error_message
    return fields


def upload_command(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files, and folders whose files keep their path below the folder."),
    ],
    *,
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until every document is ready or failed.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="With --wait: give up after S seconds.")
    ] = 600.0,
    meta: Annotated[
        list[str] | None,
        typer.Option(
            "--meta",
            help="An attribute of every uploaded document, KEY=VALUE (repeatable); typed as "
            "the project knows KEY, else by its look (number, true/false, ISO date, text).",
        ),
    ] = None,
) -> None:
    """Upload files or folders to a project; each becomes a document that is ingested."""
    state = state_of(ctx)
    items = collect(paths)
    attributes = parse_meta_options(meta or [])
    settings = connect(ctx, need_stack=True)
    with transaction() as session:
        project_id = find_project(session, project).id
        metadata = typed_metadata(session, project_id, attributes)
    for item in items:
        item.object_name = f"{project_id}/{item.relative}"
        if len(item.object_name.encode()) > MAX_OBJECT_NAME_BYTES:
            raise CliError(f"path too long for an object name: {item.relative}")
    if settings.mode is Mode.LOCAL and not settings.event_sink_url:
        warn("AI_INFRA_EVENT_SINK_URL is not set: nothing will ingest these files locally")
    interactive = not state.json and console(stderr=True).is_terminal
    upload_all(items, settings, show_progress=interactive, metadata=metadata)
    timed_out = wait and not wait_for_documents(
        items, project_id, settings.bucket, timeout, show_progress=interactive
    )
    records = [item.record(settings.bucket) for item in items]
    emit(state, records, lambda out: _render(out, records, wait))
    problems = _problems(items, wait, timed_out, timeout)
    if problems:
        raise CliError(problems)


def _render(out: Console, records: list[dict[str, Any]], waited: bool) -> None:
    columns = [("file", "FILE"), ("result", "UPLOAD")]
    if waited:
        columns += [("status", "STATUS"), ("chunks", "CHUNKS")]
    out.print(table(records, [*columns, ("error", "ERROR")]))
    counts: dict[str, int] = {}
    for record in records:
        counts[record["result"]] = counts.get(record["result"], 0) + 1
    out.print(", ".join(f"{n} {outcome}" for outcome, n in counts.items()))


def _problems(items: list[Item], waited: bool, timed_out: bool, timeout: float) -> str:
    not_sent = [i for i in items if i.outcome in (ERROR, TOO_LARGE)]
    failed = [i for i in items if i.document.get("status") == "failed"]
    parts = []
    if not_sent:
        parts.append(f"{len(not_sent)} of {len(items)} files not uploaded or not announced")
    if waited and failed:
        parts.append(f"{len(failed)} of {len(items)} documents failed")
    if timed_out:
        pending = [i for i in items if i.document.get("status") not in ("ready", "failed")]
        parts.append(f"timed out after {timeout:g}s with {len(pending)} documents not settled")
    return "; ".join(parts)
