"""`ai-infra db shell|url|reset`: look at the database the other commands use.

Same database as every command (`connect`): the URL from settings, a running dev stack's, or the
embedded Postgres started for the command. Cloud SQL with IAM authentication has no URL to hand
out, so in cloud mode these commands say what to run instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, text

from common.cli.context import CliError, connect, state_of
from common.cli.output import emit, note
from common.platform.config import DbIpType, Mode, Settings, get_settings

app = typer.Typer(
    help="The database: a psql shell, its URL, a reset for local development.",
    no_args_is_help=True,
)

SOCKET_PREFIX = ".s.PGSQL."


def libpq_url(sqlalchemy_url: str, *, with_password: bool = True) -> str:
    """The psql/libpq form of a `postgresql+pg8000://` URL (its unix socket becomes `host=`)."""
    url = make_url(sqlalchemy_url)
    query = {key: str(value) for key, value in url.query.items()}
    host, port = url.host or "", url.port
    socket = query.pop("unix_sock", None)
    if socket is not None:
        path = Path(socket)
        query["host"] = str(path.parent)
        if path.name.startswith(SOCKET_PREFIX) and path.name != f"{SOCKET_PREFIX}5432":
            query["port"] = path.name.removeprefix(SOCKET_PREFIX)
    credentials = url.username or ""
    if with_password and url.password is not None:
        credentials += f":{url.password}"
    netloc = (f"{credentials}@" if credentials else "") + host + (f":{port}" if port else "")
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return f"postgresql://{netloc}/{url.database or ''}" + (f"?{params}" if params else "")


def cloud_hint(settings: Settings) -> str:
    """What to run instead, when cloud mode reaches Cloud SQL through the connector (no URL)."""
    instance = settings.db_instance_connection_name or "PROJECT:REGION:INSTANCE"
    private = " --private-ip" if settings.db_ip_type is DbIpType.PRIVATE else ""
    user = settings.db_iam_user or "IAM_USER"
    return (
        "cloud mode reaches Cloud SQL through the connector (IAM auth), which has no URL: run "
        f"`cloud-sql-proxy --auto-iam-authn{private} {instance}` and "
        f'`psql "host=127.0.0.1 user={user} dbname={settings.db_name}"`, '
        "or set AI_INFRA_DATABASE_URL"
    )


def _source(settings: Settings) -> str:
    if settings.mode is Mode.CLOUD or settings.database_url:
        return "settings"
    from common.localstack.state import running_stack_environment

    if running_stack_environment(settings.local_data_dir) is not None:
        return "dev stack"
    return "embedded"


def _connect_url(ctx: typer.Context) -> tuple[str, str]:
    """The SQLAlchemy URL of the command's database and where it came from."""
    settings = get_settings()
    if settings.mode is Mode.CLOUD and not settings.database_url:
        raise CliError(cloud_hint(settings))
    source = _source(settings)
    url = connect(ctx, migrating=True).database_url
    assert url is not None  # local mode always resolves to a URL
    return url, source


@app.command(
    "shell",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def shell(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="Passed to psql, e.g. -c 'select 1' (or after --).", metavar="PSQL_ARGS"
        ),
    ] = None,
) -> None:
    """Open psql on the database (the embedded server's own psql locally)."""
    from common.localstack.database import psql_executable

    url, _ = _connect_url(ctx)
    psql = psql_executable()
    if psql is None:
        raise CliError("psql not found: install the PostgreSQL client (or `uv sync --extra local`)")
    password = make_url(url).password
    environment = None
    if password is not None:
        # Out of the command line, where `ps` would show it.
        environment = {**os.environ, "PGPASSWORD": password}
    code = _run_interactive([psql, libpq_url(url, with_password=False), *(args or [])], environment)
    if code:
        raise typer.Exit(code)


def _run_interactive(command: list[str], environment: dict[str, str] | None) -> int:
    """Run psql in the foreground; Ctrl-C cancels its query, not this process."""
    with subprocess.Popen(command, env=environment) as process:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                continue


@app.command("url")
def url_command(ctx: typer.Context) -> None:
    """Print the database URL for psql (--json adds the SQLAlchemy one)."""
    url, source = _connect_url(ctx)
    record = {"url": libpq_url(url), "sqlalchemy_url": url, "source": source}

    def render(out: Console) -> None:
        out.print(record["url"], soft_wrap=True)
        if source == "embedded":
            note(
                "note: no dev stack is running; the embedded Postgres was started for this "
                "command only (`ai-infra dev` keeps it running, `ai-infra db shell` opens psql)"
            )

    emit(state_of(ctx), record, render)


@app.command("reset")
def reset(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop every table, row and type, then migrate to head again (local mode only)."""
    from common.platform import migrate
    from common.platform.db import get_engine

    settings = get_settings()
    if settings.mode is Mode.CLOUD:
        raise CliError(
            "refusing to reset a database in cloud mode: `ai-infra db reset` is for local "
            "development (to rebuild a cloud schema on purpose, run alembic downgrade/upgrade)"
        )
    url, _ = _connect_url(ctx)
    where = libpq_url(url, with_password=False)
    if not yes:
        typer.confirm(f"Drop all data in {where} and migrate it to head again?", abort=True)
    try:
        with get_engine().begin() as connection:
            # The public schema as Postgres creates it; its owner may create in it.
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
            connection.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
    except sa_exc.ProgrammingError as error:
        raise CliError(f"cannot reset {where}: {' '.join(str(error.orig).split())}") from None
    migrate.upgrade()
    head = migrate.current_revision()
    record = {"reset": True, "url": where, "revision": head}
    emit(state_of(ctx), record, lambda out: out.print(f"database reset and migrated to {head}"))


@app.command("index-projects")
def index_projects(
    ctx: typer.Context,
    min_chunks: Annotated[
        int | None,
        typer.Option(
            help="Index projects above this many chunks [AI_INFRA_EXACT_SEARCH_MAX_CHUNKS]"
        ),
    ] = None,
    project: Annotated[
        list[str] | None, typer.Option("--project", help="Only this project id (repeatable).")
    ] = None,
) -> None:
    """Build every big project's own HNSW graph now, however long it takes (the sweep builds one
    per run and leaves those it could not finish in time to this command)."""
    import uuid

    from common.ingestion.project_indexes import sync_project_indexes

    settings = connect(ctx)
    try:
        only = {uuid.UUID(value) for value in project} if project else None
    except ValueError:
        raise CliError("--project takes a project id (a UUID)") from None
    threshold = settings.exact_search_max_chunks if min_chunks is None else min_chunks
    result = sync_project_indexes(min_chunks=threshold, max_builds=10**9, projects=only)
    record = {
        "built": result.built,
        "dropped": result.dropped,
        "build_seconds": {name: round(s, 1) for name, s in result.build_seconds.items()},
    }

    def render(out: Console) -> None:
        for name in result.built:
            out.print(f"built {name} in {result.build_seconds[name]:.1f} s")
        for name in result.dropped:
            out.print(f"dropped {name}")
        if not result.built and not result.dropped:
            out.print("every project index is in place")

    emit(state_of(ctx), record, render)
