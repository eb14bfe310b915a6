"""`ai-infra teams|keys ... --requests-per-minute` and `teams|keys limit`: the limits the query
API enforces per key (key's own, else the team's, else the setting)."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner, Result

from common.cli.main import app
from common.platform.db import transaction
from common.query import auth
from tests.fixtures.factories import Tenant

runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def cli_json(*args: str) -> Any:
    result = cli("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def effective_limit(raw_key: str) -> int:
    with transaction() as session:
        principal = auth.authenticate(session, raw_key, default_rpm=600)
    assert principal.rate_limit is not None
    return principal.rate_limit.limit


def test_team_default_key_override_and_inheritance(tenant: Tenant) -> None:
    team = str(tenant.team_id)
    assert effective_limit(tenant.api_key) == 600, "neither sets one: the setting"
    assert cli_json("teams", "limit", team, "40")["requests_per_minute"] == 40
    assert effective_limit(tenant.api_key) == 40
    created = cli_json("keys", "create", "--team", team, "--requests-per-minute", "7")
    assert created["requests_per_minute"] == 7
    assert effective_limit(created["key"]) == 7
    listed = {key["id"]: key for key in cli_json("keys", "list", "--team", team)}
    assert listed[created["id"]]["requests_per_minute"] == 7
    assert listed[str(tenant.api_key_id)]["requests_per_minute"] is None
    assert cli_json("keys", "limit", created["id"], "team")["requests_per_minute"] is None
    assert effective_limit(created["key"]) == 40
    assert cli_json("teams", "limit", team, "default")["requests_per_minute"] is None
    assert effective_limit(created["key"]) == 600


def test_teams_create_takes_a_default_limit(database_url: str) -> None:
    import uuid

    name = f"cli-limit-{uuid.uuid4().hex[:8]}"
    created = cli_json("teams", "create", name, "--requests-per-minute", "90")
    assert created["requests_per_minute"] == 90
    listed = {team["name"]: team for team in cli_json("teams", "list")}
    assert listed[name]["requests_per_minute"] == 90


def test_bad_limits_are_one_line_errors(tenant: Tenant) -> None:
    for args in (
        ("keys", "limit", str(tenant.api_key_id), "lots"),
        ("keys", "limit", str(tenant.api_key_id), "0"),
        ("teams", "limit", str(tenant.team_id), "-5"),
    ):
        result = cli(*args)
        assert result.exit_code != 0
        assert "Traceback" not in result.output
    result = cli("keys", "limit", str(tenant.api_key_id), "lots")
    assert result.stderr.strip() == (
        "error: requests per minute must be a whole number or 'team', got 'lots'"
    )
    refused = cli("keys", "create", "--team", str(tenant.team_id), "--requests-per-minute", "0")
    assert refused.exit_code == 2  # typer's own range check


def test_a_teams_ingestion_limit_is_set_listed_and_reset(tenant: Tenant) -> None:
    team = str(tenant.team_id)
    assert cli_json("teams", "limit-ingest", team, "3")["max_running_jobs"] == 3
    listed = {row["id"]: row for row in cli_json("teams", "list")}
    assert listed[team]["max_running_jobs"] == 3
    assert cli_json("teams", "limit-ingest", team, "default")["max_running_jobs"] is None
    refused = cli("teams", "limit-ingest", team, "0")
    assert refused.exit_code == 1 and "running jobs must be between 1 and 1000" in refused.stderr
