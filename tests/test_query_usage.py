"""`GET /v1/usage` and `ai-infra usage`: per-day and total counts from the kept rows, scoped to
the caller's team, with validated, bounded date ranges."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from common.cli.main import app
from common.platform.db import transaction
from common.platform.models import (
    Document,
    DocumentStatus,
    IngestionJob,
    JobStatus,
    QueryLog,
)
from common.query.usage import resolve_range
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import QueryApi

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def log(tenant: Tenant, when: datetime, *, used_rag: bool, prompt: int | None, done: int | None):
    return QueryLog(
        team_id=tenant.team_id,
        project_id=tenant.project_id,
        api_key_id=tenant.api_key_id,
        question_hash="0" * 64,
        used_rag=used_rag,
        top_k=5,
        latency_ms=10,
        prompt_tokens=prompt,
        completion_tokens=done,
        created_at=when,
    )


def document(tenant: Tenant, when: datetime, status: DocumentStatus, size: int, chunks: int):
    return Document(
        team_id=tenant.team_id,
        project_id=tenant.project_id,
        title="d",
        gcs_uri=f"gs://b/{tenant.project_id}/{uuid.uuid4().hex}",
        status=status,
        size_bytes=size,
        chunk_count=chunks,
        created_at=when,
    )


def seed(tenant: Tenant) -> None:
    """Day 1: 3 requests (2 grounded), 2 documents; day 2: 1 request, 1 document, 1 job."""
    with transaction() as session:
        session.add_all(
            [
                log(tenant, at(DAY1, 0), used_rag=True, prompt=100, done=20),
                log(tenant, at(DAY1, 23), used_rag=True, prompt=50, done=5),
                log(tenant, at(DAY1, 12), used_rag=False, prompt=None, done=None),
                log(tenant, at(DAY2, 1), used_rag=True, prompt=7, done=3),
                log(tenant, at(DAY2 + timedelta(days=1), 0), used_rag=True, prompt=1, done=1),
            ]
        )
        ready = document(tenant, at(DAY1, 3), DocumentStatus.READY, 1000, 4)
        failed = document(tenant, at(DAY1, 4), DocumentStatus.FAILED, 10, 0)
        fresh = document(tenant, at(DAY2, 5), DocumentStatus.UPLOADED, 300, 0)
        session.add_all([ready, failed, fresh])
        session.flush()
        session.add(
            IngestionJob(
                document_id=ready.id,
                generation=1,
                status=JobStatus.SUCCEEDED,
                chunks_created=4,
                finished_at=at(DAY2, 6),
            )
        )


def get_usage(api: QueryApi, tenant: Tenant, **params: str) -> Any:
    return api.client.get(
        "/v1/usage", params=params, headers={"Authorization": f"Bearer {tenant.api_key}"}
    )


def test_usage_counts_per_day_and_in_total_for_the_callers_team_only(
    query_api: QueryApi,
) -> None:
    tenant, other = make_tenant("usage"), make_tenant("usage-other")
    seed(tenant)
    seed(other)
    response = get_usage(query_api, tenant, **{"from": "2026-03-01", "to": "2026-03-02"})
    assert response.status_code == 200, response.text
    assert response.headers["RateLimit-Policy"].startswith('"per-key"')
    report = response.json()
    assert report["team_id"] == str(tenant.team_id)
    assert (report["from"], report["to"]) == ("2026-03-01", "2026-03-02")
    day1, day2 = report["days"]
    assert day1 == {
        "date": "2026-03-01",
        "requests": 3,
        "answered_requests": 2,
        "prompt_tokens": 150,
        "completion_tokens": 25,
        "documents_added": 2,
        "bytes_uploaded": 1010,
        "chunks_created": 0,
    }
    assert day2 == {
        "date": "2026-03-02",
        "requests": 1,
        "answered_requests": 1,
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "documents_added": 1,
        "bytes_uploaded": 300,
        "chunks_created": 4,
    }
    assert report["total"] == {
        "requests": 4,
        "answered_requests": 3,
        "prompt_tokens": 157,
        "completion_tokens": 28,
        "documents_added": 3,
        "bytes_uploaded": 1310,
        "chunks_created": 4,
    }
    assert report["documents"] == {
        "by_status": {"uploaded": 1, "processing": 0, "ready": 1, "failed": 1},
        "chunks_stored": 4,
        "bytes_stored": 1310,
    }


def test_every_day_of_the_range_is_listed_and_the_default_is_30_days(
    query_api: QueryApi,
) -> None:
    tenant = make_tenant("usage-default")
    report = get_usage(query_api, tenant).json()
    today = datetime.now(UTC).date()
    assert report["to"] == str(today)
    assert report["from"] == str(today - timedelta(days=29))
    assert len(report["days"]) == 30
    assert all(day["requests"] == 0 for day in report["days"][:-1])
    one = get_usage(query_api, tenant, **{"from": "2026-02-28", "to": "2026-02-28"}).json()
    assert [day["date"] for day in one["days"]] == ["2026-02-28"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from: must not be after to"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, "to: the range is limited to 366 days"),
        ({"from": "yesterday"}, "from: expected a date as YYYY-MM-DD"),
        ({"to": "2026-02-30"}, "to: not a calendar date"),
        ({"to": "1999-12-31"}, "to: must be between 2000-01-01 and 2999-12-31"),
        ({"from": "2026-03-01\x00"}, "from: expected a date as YYYY-MM-DD"),
        ({"from": "2026-03-01\n"}, "from: expected a date as YYYY-MM-DD"),
        ({"since": "2026-03-01"}, "since: unknown parameter"),
    ],
)
def test_bad_ranges_are_422_naming_the_parameter(
    query_api: QueryApi, params: dict[str, str], message: str
) -> None:
    tenant = make_tenant("usage-bad")
    response = get_usage(query_api, tenant, **params)
    assert response.status_code == 422, response.text
    assert response.json() == {"error": {"code": "validation_error", "message": message}}


def test_usage_needs_a_key(query_api: QueryApi) -> None:
    assert query_api.client.get("/v1/usage").status_code == 401


def test_the_range_defaults_follow_from_and_to() -> None:
    today = date(2026, 5, 10)
    assert resolve_range(None, None, today=today) == (date(2026, 4, 11), today)
    assert resolve_range(None, date(2026, 1, 30), today=today) == (
        date(2026, 1, 1),
        date(2026, 1, 30),
    )
    assert resolve_range(date(2026, 5, 1), None, today=today) == (date(2026, 5, 1), today)
    assert resolve_range(date(2026, 6, 1), None, today=today) == (
        date(2026, 6, 1),
        date(2026, 6, 1),
    )


def test_cli_usage_prints_the_same_report(query_api: QueryApi) -> None:
    tenant = make_tenant("usage-cli")
    seed(tenant)
    runner = CliRunner()
    args = ["usage", "--team", str(tenant.team_id), "--from", "2026-03-01", "--to", "2026-03-02"]
    as_json = runner.invoke(app, ["--json", *args])
    assert as_json.exit_code == 0, as_json.output
    api = get_usage(query_api, tenant, **{"from": "2026-03-01", "to": "2026-03-02"}).json()
    assert json.loads(as_json.stdout) == api
    human = runner.invoke(app, args)
    assert human.exit_code == 0, human.output
    assert "2026-03-01" in human.stdout and "total" in human.stdout
    assert "documents now: 1 uploaded, 0 processing, 1 ready, 1 failed; 4 chunks" in human.stdout
    bad = runner.invoke(app, ["usage", "--team", str(tenant.team_id), "--from", "03/01/2026"])
    assert bad.exit_code == 1
    assert bad.stderr.strip() == "error: --from: expected a date as YYYY-MM-DD"
