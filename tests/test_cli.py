"""The `ai-infra` operator commands against the real embedded Postgres, through typer's runner.

Each command's happy path and the mistakes an operator makes (unknown names, bad ids, a key
revoked twice): one `error:` line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from common.cli.main import app
from common.localstack import embedded_pg
from common.platform import migrate
from common.platform.config import get_settings
from common.platform.db import reset_engine, transaction
from common.platform.messaging import reset_publisher
from common.platform.models import (
    ApiKey,
    ApiKeyStatus,
    Document,
    DocumentStatus,
    IngestionJob,
    JobStatus,
)
from common.platform.storage import reset_blob_store
from common.query import auth
from tests.fixtures.factories import Tenant, make_tenant

runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def cli_json(*args: str) -> Any:
    result = cli("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_user_error(result: Result, *fragments: str) -> str:
    """One `error:` line on stderr, exit code 1, no traceback; returns the line."""
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert line.startswith("error: "), result.output
    assert "\n" not in line
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in line
    return line


def refresh_settings() -> None:
    get_settings.cache_clear()
    reset_engine()
    reset_blob_store()
    reset_publisher()


@pytest.fixture(autouse=True)
def restore_settings() -> Iterator[None]:
    """Commands may switch this process's settings (dev stack, embedded Postgres): undo that."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    refresh_settings()


def team_name() -> str:
    return f"cli-team-{uuid.uuid4().hex[:10]}"


def test_migrate_on_a_migrated_database_reports_it_is_at_head(database_url: str) -> None:
    payload = cli_json("migrate")
    head = migrate.head_revision()
    assert payload == {"from": head, "to": head, "changed": False}
    assert "already at head" in cli("migrate").stdout


def test_commands_refuse_an_unmigrated_database_until_migrate_runs(
    embedded_server: embedded_pg.EmbeddedPostgres,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"cli_fresh_{uuid.uuid4().hex[:8]}"
    embedded_server.server.psql(f'CREATE DATABASE "{name}";')
    monkeypatch.setenv(
        "AI_INFRA_DATABASE_URL", embedded_pg.url_for(embedded_server.socket_dir, name)
    )
    refresh_settings()

    assert_user_error(cli("teams", "list"), "run `ai-infra migrate`")
    payload = cli_json("migrate")
    assert payload["from"] is None
    assert payload["to"] == migrate.head_revision()
    assert payload["changed"] is True
    assert cli_json("teams", "list") == []


def test_teams_create_then_list_shows_it_with_counts(database_url: str) -> None:
    name = team_name()
    created = cli_json("teams", "create", name)
    assert created["name"] == name
    uuid.UUID(created["id"])

    listed = {team["name"]: team for team in cli_json("teams", "list")}
    assert listed[name]["id"] == created["id"]
    assert listed[name]["projects"] == 0
    assert name in cli("teams", "list").stdout


def test_team_names_are_unique_and_not_empty(database_url: str) -> None:
    name = team_name()
    assert cli("teams", "create", name).exit_code == 0
    assert_user_error(cli("teams", "create", name), "already exists")
    assert_user_error(cli("teams", "create", "  "), "cannot be empty")


def test_projects_create_by_team_name_and_list_by_team_id(database_url: str) -> None:
    team = cli_json("teams", "create", team_name())
    created = cli_json("projects", "create", "--team", team["name"], "handbook")
    assert created["team_id"] == team["id"]

    listed = cli_json("projects", "list", "--team", team["id"])
    assert [(p["id"], p["name"], p["documents"]) for p in listed] == [
        (created["id"], "handbook", 0)
    ]
    assert_user_error(
        cli("projects", "create", "--team", team["id"], "handbook"), "already has a project"
    )


def test_unknown_team_is_named_in_the_error(database_url: str) -> None:
    assert_user_error(cli("projects", "create", "--team", "no-such-team", "p"), "no-such-team")
    assert_user_error(cli("projects", "list", "--team", str(uuid.uuid4())), "unknown team")
    assert_user_error(cli("keys", "create", "--team", "no-such-team"), "unknown team")


def test_keys_create_shows_the_raw_key_once_and_stores_only_its_hash(tenant: Tenant) -> None:
    result = cli("--json", "keys", "create", "--team", str(tenant.team_id), "--name", "ci")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    raw_key = created["key"]
    assert raw_key.startswith(auth.KEY_PREFIX)
    assert created["prefix"] == raw_key[:12]
    assert "not be shown again" in result.stderr
    with transaction() as session:
        row = session.get_one(ApiKey, uuid.UUID(created["id"]))
        assert row.key_hash == auth.hash_api_key(raw_key)
        assert row.name == "ci"
        assert row.status is ApiKeyStatus.ACTIVE

    human = cli("keys", "create", "--team", str(tenant.team_id))
    assert human.exit_code == 0
    assert auth.KEY_PREFIX in human.stdout


def test_keys_list_shows_prefix_and_status_but_never_the_key_or_hash(tenant: Tenant) -> None:
    listed = cli_json("keys", "list", "--team", str(tenant.team_id))
    assert len(listed) == 1
    (key,) = listed
    assert key["id"] == str(tenant.api_key_id)
    assert key["prefix"] == tenant.api_key[:12]
    assert key["status"] == "active"
    assert {"created_at", "last_used_at", "revoked_at"} <= key.keys()
    key_hash = auth.hash_api_key(tenant.api_key)
    for output in (json.dumps(listed), cli("keys", "list").stdout):
        assert tenant.api_key not in output
        assert key_hash not in output


def test_revoking_a_key_by_prefix_marks_it_and_a_second_revoke_fails(tenant: Tenant) -> None:
    prefix = tenant.api_key[:12]
    revoked = cli_json("keys", "revoke", prefix)
    assert revoked["status"] == "revoked"
    with transaction() as session:
        row = session.get_one(ApiKey, tenant.api_key_id)
        assert row.status is ApiKeyStatus.REVOKED
        assert row.revoked_at is not None

    assert_user_error(cli("keys", "revoke", prefix), "already revoked")
    assert_user_error(cli("keys", "revoke", str(tenant.api_key_id)), "already revoked")


def test_keys_are_revoked_by_id_or_by_the_raw_key(database_url: str) -> None:
    first, second = make_tenant("cli"), make_tenant("cli")
    assert cli_json("keys", "revoke", str(first.api_key_id))["id"] == str(first.api_key_id)
    assert cli_json("keys", "revoke", second.api_key)["id"] == str(second.api_key_id)


def test_revoking_an_unknown_or_vague_key_is_refused(database_url: str) -> None:
    assert_user_error(cli("keys", "revoke", str(uuid.uuid4())), "unknown key")
    assert_user_error(cli("keys", "revoke", "aik_zzzzzzzzzzzz"), "unknown key")
    assert_user_error(cli("keys", "revoke", "aik_"), "too short")


def add_document(
    tenant: Tenant, title: str, status: DocumentStatus, error: str | None = None, chunks: int = 0
) -> uuid.UUID:
    """A document row with one job, as the ingestion pipeline leaves it."""
    job_status = {
        DocumentStatus.READY: JobStatus.SUCCEEDED,
        DocumentStatus.FAILED: JobStatus.FAILED,
    }.get(status, JobStatus.QUEUED)
    with transaction() as session:
        document = Document(
            team_id=tenant.team_id,
            project_id=tenant.project_id,
            title=title,
            gcs_uri=f"gs://cli-bucket/{tenant.project_id}/{title}",
            status=status,
            generation=7,
            chunk_count=chunks,
            error_message=error,
        )
        session.add(document)
        session.flush()
        session.add(
            IngestionJob(
                document_id=document.id,
                generation=7,
                status=job_status,
                error_message=error,
                attempts=1,
            )
        )
        return document.id


def test_documents_list_shows_status_and_filters_by_it(tenant: Tenant) -> None:
    ready = add_document(tenant, "guide.pdf", DocumentStatus.READY, chunks=12)
    failed = add_document(tenant, "scan.pdf", DocumentStatus.FAILED, error="no text layer")

    listed = cli_json("documents", "list", "--project", str(tenant.project_id))
    assert {(d["id"], d["status"], d["chunks"]) for d in listed} == {
        (str(ready), "ready", 12),
        (str(failed), "failed", 0),
    }
    only_failed = cli_json("documents", "list", "-p", str(tenant.project_id), "--status", "failed")
    assert [(d["title"], d["error"]) for d in only_failed] == [("scan.pdf", "no text layer")]
    human = cli("documents", "list", "--project", str(tenant.project_id))
    assert "guide.pdf" in human.stdout
    assert "no text layer" in human.stdout


def test_documents_show_gives_last_job_and_error(tenant: Tenant) -> None:
    failed = add_document(tenant, "scan.pdf", DocumentStatus.FAILED, error="no text layer")
    shown = cli_json("documents", "show", str(failed))
    assert shown["status"] == "failed"
    assert shown["error"] == "no text layer"
    assert shown["job_status"] == "failed"
    assert shown["job_generation"] == 7
    assert shown["chunks"] == 0
    human = cli("documents", "show", str(failed)).stdout
    assert "no text layer" in human
    assert str(failed) in human


def test_documents_show_refuses_bad_and_unknown_ids(database_url: str) -> None:
    assert_user_error(cli("documents", "show", "not-a-uuid"), "must be a UUID")
    assert_user_error(cli("documents", "show", str(uuid.uuid4())), "unknown document")


def test_unknown_project_is_named_in_the_error(database_url: str) -> None:
    assert_user_error(cli("documents", "list", "--project", "nope"), "unknown project 'nope'")
    assert_user_error(cli("documents", "list", "--project", str(uuid.uuid4())), "unknown project")


def test_a_project_name_shared_by_two_teams_needs_its_id(database_url: str) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        team = cli_json("teams", "create", team_name())
        cli_json("projects", "create", "--team", team["id"], name)
    assert_user_error(cli("documents", "list", "--project", name), "several teams")


def test_reprocess_needs_exactly_one_target(database_url: str) -> None:
    assert_user_error(cli("documents", "reprocess"), "give a document id or --failed")
    assert_user_error(cli("documents", "reprocess", str(uuid.uuid4()), "--failed", "-p", "x"))
    assert_user_error(cli("documents", "reprocess", "--failed"), "--failed needs --project")
