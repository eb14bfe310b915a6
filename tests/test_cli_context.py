"""How `ai-infra` finds its settings and database, and how it fails: one line, never a traceback.

Local mode joins a running dev stack or runs the embedded Postgres for one command; bad settings,
an unreachable database and bugs each end in one stderr line and a distinct exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import typer
from sqlalchemy import select

from common.cli.context import EXIT_BUG, CliError, ErrorHandlingGroup, hoist_global_flags
from common.localstack import embedded_pg
from common.localstack.state import write_state
from common.platform import migrate
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.models import Team
from tests.fixtures.factories import Tenant
from tests.test_cli import (
    assert_user_error,
    cli,
    cli_json,
    refresh_settings,
    restore_settings,  # noqa: F401 - autouse fixture shared with test_cli
    runner,
    team_name,
)


def test_a_malformed_setting_is_one_line_naming_the_variable(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_INFRA_CHUNK_TOKENS", "many")
    get_settings.cache_clear()
    assert_user_error(cli("teams", "list"), "AI_INFRA_CHUNK_TOKENS")


def test_an_unreachable_database_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = embedded_pg.url_for(str(tmp_path), "nothing")
    monkeypatch.setenv("AI_INFRA_DATABASE_URL", url)
    refresh_settings()
    assert_user_error(cli("teams", "list"), "cannot reach the database")


def test_local_mode_joins_a_running_dev_stack(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command in another terminal uses the dev stack's database instead of starting one."""
    write_state(tmp_path, {"AI_INFRA_DATABASE_URL": database_url})
    monkeypatch.delenv("AI_INFRA_DATABASE_URL")
    monkeypatch.setenv("AI_INFRA_LOCAL_DATA_DIR", str(tmp_path))
    refresh_settings()

    name = team_name()
    assert cli("teams", "create", name).exit_code == 0
    assert name in {team["name"] for team in cli_json("teams", "list")}
    assert not (tmp_path / "pg").exists()
    assert get_settings().database_url is None  # the command left the settings as it found them

    monkeypatch.setenv("AI_INFRA_DATABASE_URL", database_url)
    refresh_settings()
    with transaction() as session:
        assert session.scalar(select(Team).where(Team.name == name)) is not None


@pytest.mark.slow
def test_local_mode_without_a_stack_runs_the_embedded_postgres_for_one_command(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh checkout: `migrate` then `teams list` work with nothing running, nothing left."""
    monkeypatch.delenv("AI_INFRA_DATABASE_URL")
    monkeypatch.setenv("AI_INFRA_LOCAL_DATA_DIR", str(tmp_path))
    refresh_settings()

    payload = cli_json("migrate")
    assert payload["from"] is None
    assert payload["to"] == migrate.head_revision()
    assert (tmp_path / "pg" / "PG_VERSION").exists()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()  # stopped after the command
    assert cli_json("teams", "list") == []
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_no_command_prints_help(database_url: str) -> None:
    result = cli()
    assert "teams" in result.output
    assert "upload" in result.output


def test_package_writes_the_functions_source_archive(tmp_path: Path) -> None:
    payload = cli_json("package", str(tmp_path / "dist"))
    archive = Path(payload["archive"])
    assert archive.parent == tmp_path / "dist"
    with zipfile.ZipFile(archive) as bundle:
        names = set(bundle.namelist())
    assert {"main.py", "requirements.txt", "common/platform/config.py"} <= names
    assert payload["bytes"] == archive.stat().st_size


def test_package_refuses_an_output_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    assert_user_error(cli("package", str(tmp_path / "taken")), "not a folder")


def error_app() -> typer.Typer:
    """A two-command app on the CLI's root group: one user mistake, one bug."""
    demo = typer.Typer(cls=ErrorHandlingGroup, pretty_exceptions_enable=False)

    @demo.callback()
    def root(debug: bool = typer.Option(False, "--debug")) -> None:
        pass

    @demo.command()
    def mistake() -> None:
        raise CliError("unknown team 'x'")

    @demo.command()
    def bug() -> None:
        raise RuntimeError("list index out of range\nsecond line")

    return demo


def test_an_unexpected_error_is_one_line_with_a_hint_and_debug_shows_the_traceback() -> None:
    demo = error_app()
    assert_user_error(runner.invoke(demo, ["mistake"]), "unknown team 'x'")

    result = runner.invoke(demo, ["bug"])
    assert result.exit_code == EXIT_BUG
    assert result.stderr.strip() == (
        "error: unexpected RuntimeError: list index out of range second line "
        "(re-run with --debug for the traceback)"
    )
    debug = runner.invoke(demo, ["--debug", "bug"])
    assert isinstance(debug.exception, RuntimeError)


def test_json_may_follow_the_subcommand(tenant: Tenant) -> None:
    result = cli("keys", "list", "--team", str(tenant.team_id), "--json")
    assert result.exit_code == 0, result.output
    assert [key["id"] for key in json.loads(result.stdout)] == [str(tenant.api_key_id)]


def test_global_flags_after_a_double_dash_are_arguments() -> None:
    assert hoist_global_flags(["ask", "-p", "x", "--json", "--", "--json"]) == [
        "--json",
        "ask",
        "-p",
        "x",
        "--",
        "--json",
    ]


def test_a_missing_cloud_setting_is_one_line_even_before_the_commands_load(
    tmp_path: Path,
) -> None:
    """The schema models read settings on import; the console script still prints one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
    env["AI_INFRA_MODE"] = "cloud"
    script = Path(sys.executable).with_name("ai-infra")
    result = subprocess.run(
        [str(script), "teams", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "AI_INFRA_DB_INSTANCE_CONNECTION_NAME" in line
