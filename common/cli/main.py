"""The `ai-infra` command: the local stack, schema, tenants, keys, uploads, documents, questions.

It reads the same `AI_INFRA_*` settings as the functions, so the same commands work against the
local stack and against Cloud SQL + GCS. `--json` (before the command) makes every command print
one JSON document for scripts.
"""

import logging
import warnings
from pathlib import Path
from typing import Annotated

import typer

from common.cli import (
    ask,
    db,
    documents,
    embeddings,
    jobs,
    keys,
    migrate,
    package,
    projects,
    teams,
    upload,
    usage,
)
from common.cli.context import CliError, ErrorHandlingGroup, State

app = typer.Typer(
    name="ai-infra",
    cls=ErrorHandlingGroup,
    help="Operate ai-infra: local stack, schema, teams, projects, keys, uploads, questions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results as JSON (for scripts).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    ctx.obj = State(json=json_output, debug=debug)
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    else:
        # Library log records (a connection pool's traceback while Postgres restarts) would
        # reach stderr through logging's last-resort handler: errors are our one line instead.
        logging.getLogger().addHandler(logging.NullHandler())
        # The embedded Postgres' lock folder falls back to /tmp where XDG_RUNTIME_DIR is unset
        # (root in containers); that is fine, and not worth a warning on every command.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


app.add_typer(teams.app, name="teams")
app.add_typer(projects.app, name="projects")
app.add_typer(keys.app, name="keys")
app.add_typer(documents.app, name="documents")
app.add_typer(jobs.app, name="jobs")
app.add_typer(embeddings.app, name="embeddings")
app.add_typer(db.app, name="db")
app.command("migrate")(migrate.migrate_command)
app.command("upload")(upload.upload_command)
app.command("ask")(ask.ask_command)
app.command("usage")(usage.usage_command)
app.command("package")(package.package_command)


@app.command("dev")
def dev(
    *,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the stack keeps its data (default: settings)."),
    ] = None,
    inbox: Annotated[
        Path | None, typer.Option("--inbox", help="Folder watched for files (default: inbox).")
    ] = None,
    query_port: Annotated[int | None, typer.Option(help="Port of the query function.")] = None,
    ingest_port: Annotated[int | None, typer.Option(help="Port of ingest_trigger.")] = None,
    chunk_port: Annotated[int | None, typer.Option(help="Port of chunk_embed.")] = None,
    dead_letter_port: Annotated[int | None, typer.Option(help="Port of dead_letter.")] = None,
    gcs_port: Annotated[int | None, typer.Option(help="Port of the GCS emulator.")] = None,
    pubsub_port: Annotated[int | None, typer.Option(help="Port of the Pub/Sub emulator.")] = None,
    uploads_port: Annotated[
        int | None, typer.Option(help="Port of the upload gateway (signed upload URLs).")
    ] = None,
) -> None:
    """Run the whole local stack in this terminal (Ctrl-C stops everything)."""
    try:
        from common.cli.dev import DevError, DevPorts, run_dev
    except ImportError:
        raise CliError("`ai-infra dev` is not available in this version (common.cli.dev)") from None
    chosen = {
        "query": query_port,
        "ingest_trigger": ingest_port,
        "chunk_embed": chunk_port,
        "dead_letter": dead_letter_port,
        "gcs": gcs_port,
        "pubsub": pubsub_port,
        "uploads": uploads_port,
    }
    ports = DevPorts(**{name: port for name, port in chosen.items() if port is not None})
    try:
        code = run_dev(data_dir=data_dir, inbox=inbox, ports=ports)
    except DevError as error:
        raise CliError(str(error)) from None
    if code:
        raise typer.Exit(code)


def main() -> None:
    app()
