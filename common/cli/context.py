"""Settings and database bootstrap shared by every command, and the one place errors become lines.

The CLI uses the functions' settings. In local mode without `AI_INFRA_DATABASE_URL` it joins a
running `ai-infra dev` stack (another terminal) or, failing that, starts the embedded Postgres in
the local data folder for the length of one command.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from sqlalchemy import exc as sa_exc
from typer.core import TyperGroup

from common.platform.config import ConfigError, Mode, Settings, get_settings
from common.platform.errors import ApiError, PermanentIngestionError, TransientError

logger = logging.getLogger(__name__)

# Exit codes: 1 for a mistake the user can fix (or a dependency that is down), 2 is click's usage
# error, 70 (EX_SOFTWARE) for a bug.
EXIT_ERROR = 1
EXIT_BUG = 70


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code non-zero, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass
class State:
    """Global options, carried on the click context (`ctx.obj`)."""

    json: bool = False
    debug: bool = False


def state_of(ctx: typer.Context) -> State:
    obj = ctx.find_object(State)
    return obj if obj is not None else State()


def _switch_environment(ctx: typer.Context, environment: dict[str, str]) -> None:
    """Use other settings (a dev stack's, the embedded Postgres URL) until the command ends."""
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    _refresh_clients()

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_clients()

    ctx.find_root().call_on_close(restore)


def _refresh_clients() -> None:
    from common.platform.db import reset_engine
    from common.platform.messaging import reset_publisher
    from common.platform.storage import reset_blob_store

    get_settings.cache_clear()
    reset_engine()
    reset_blob_store()
    reset_publisher()


def local_stack_required() -> CliError:
    return CliError("no local stack is running: start `ai-infra dev` first")


def connect(ctx: typer.Context, *, migrating: bool = False, need_stack: bool = False) -> Settings:
    """Resolve settings and the database for one command.

    `need_stack`: the command also needs object storage (and, locally, the event sink), which in
    local mode only a running `ai-infra dev` provides. `migrating`: skip the at-head check.
    """
    settings = get_settings()
    if settings.mode is Mode.LOCAL and not settings.database_url:
        from common.localstack.state import running_stack_environment

        if need_stack and running_stack_environment(settings.local_data_dir) is None:
            raise local_stack_required()
        _use_local_database(ctx, settings)
        settings = get_settings()
    if need_stack and settings.mode is Mode.LOCAL and not settings.storage_emulator_host:
        raise local_stack_required()
    if not migrating:
        require_schema_at_head(settings)
    return settings


def _use_local_database(ctx: typer.Context, settings: Settings) -> None:
    """Join the running dev stack, or start the embedded Postgres until the command ends."""
    from common.localstack.database import local_database

    # Entered first, so it exits (stopping a server it started) after the environment is
    # restored: close callbacks run last-in, first-out.
    database = ctx.find_root().with_resource(local_database(settings.local_data_dir))
    _switch_environment(ctx, database.environment)


def require_schema_at_head(settings: Settings) -> None:
    from common.platform import migrate
    from common.platform.db import check_embedding_dimension

    current, head = migrate.current_revision(), migrate.head_revision()
    if current != head:
        raise CliError(
            f"the database schema is at {current or 'nothing'}, not at {head}: "
            "run `ai-infra migrate`"
        )
    check_embedding_dimension(settings)


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def describe(error: Exception) -> tuple[str, int] | None:
    """The line and exit code for an expected failure, or None for a bug."""
    from common.platform.db import SchemaMismatchError, is_database_unavailable

    if isinstance(error, CliError):
        return error.message, error.exit_code
    if isinstance(error, ApiError):
        return error.message, EXIT_ERROR
    if isinstance(error, ConfigError | SchemaMismatchError | PermanentIngestionError):
        return _one_line(error), EXIT_ERROR
    if isinstance(error, TransientError):
        return f"{_one_line(error)} (try again)", EXIT_ERROR
    if isinstance(error, sa_exc.DBAPIError) and is_database_unavailable(error):
        return f"cannot reach the database: {_one_line(error.orig or error)}", EXIT_ERROR
    return None


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


# Options of the root command that may also be written after the subcommand
# (`ai-infra teams list --json` means `ai-infra --json teams list`).
GLOBAL_FLAGS = frozenset({"--json", "--debug"})


def hoist_global_flags(argv: Sequence[str]) -> list[str]:
    """Move global flags to the front; nothing after a `--` separator is touched."""
    head, tail = list(argv), []
    if "--" in head:
        cut = head.index("--")
        head, tail = head[:cut], head[cut:]
    flags = [arg for arg in head if arg in GLOBAL_FLAGS]
    return [*dict.fromkeys(flags), *(arg for arg in head if arg not in GLOBAL_FLAGS), *tail]


class ErrorHandlingGroup(TyperGroup):
    """The root group: every exception below it becomes one stderr line and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = sys.argv[1:] if args is None else args
        return super().main(
            hoist_global_flags(argv),
            prog_name=prog_name or "ai-infra",
            complete_var=complete_var,
            standalone_mode=standalone_mode,
            windows_expand_args=windows_expand_args,
            **extra,
        )

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except Exception as error:
            debug = bool(ctx.params.get("debug"))
            described = describe(error)
            if described is not None:
                if debug:
                    traceback.print_exc(file=sys.stderr)
                raise _fail(*described) from None
            if debug:
                raise
            logger.debug("unexpected error", exc_info=True)
            raise _fail(
                f"unexpected {type(error).__name__}: {_one_line(error)} "
                "(re-run with --debug for the traceback)",
                EXIT_BUG,
            ) from None
