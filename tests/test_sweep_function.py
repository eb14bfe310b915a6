"""The scheduled sweep function over real HTTP: functions-framework, embedded Postgres, emulators.

Cloud Scheduler POSTs to it every minute; it moves stuck jobs on, counts the jobs still not
finished after `overdue_minutes` and answers the figures (also logged for the alert policies).
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.ingestion.monitoring import (
    DEFAULT_OVERDUE_MINUTES,
    MAX_OVERDUE_MINUTES,
    count_overdue_jobs,
)
from common.localstack.processes import free_port, spawn
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.messaging import pubsub_clients
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus
from common.platform.storage import BlobInfo
from tests.fixtures.factories import Tenant, record_upload

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sweep_url(emulators: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """functions/sweep served as Cloud Run would; the jobs topic exists so requeues publish."""
    from google.api_core.exceptions import AlreadyExists

    settings = get_settings()
    publisher, _ = pubsub_clients(settings)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=f"projects/{settings.gcp_project}/topics/{settings.jobs_topic}")
    port = free_port()
    command = [sys.executable, "-m", "functions_framework"]
    command += ["--source", str(PROJECT_ROOT / "functions/sweep/main.py"), "--target", "sweep"]
    command += ["--signature-type", "http", "--host", "127.0.0.1", "--port", str(port)]
    log_dir = tmp_path_factory.mktemp("sweep-logs")
    child = spawn(
        "sweep",
        command,
        port=port,
        log_path=log_dir / "sweep.log",
        env={"PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"},
    )
    try:
        child.wait_ready(60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        child.stop()


def blob(tenant: Tenant, name: str, generation: int = 1) -> BlobInfo:
    """An object as the trigger saw it; the sweep never downloads it."""
    bucket = get_settings().bucket
    return BlobInfo(bucket, f"{tenant.project_id}/{name}", generation, 10, None, "text/plain")


def stored_job(job_id: uuid.UUID) -> IngestionJob:
    with transaction() as session:
        return session.get_one(IngestionJob, job_id)


def stored_document(document_id: uuid.UUID) -> Document:
    with transaction() as session:
        return session.get_one(Document, document_id)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, timeout=60, **kwargs)


def test_sweep_requeues_an_expired_lease_and_fails_a_job_out_of_attempts(
    sweep_url: str, tenant: Tenant
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    attempts = get_settings().max_delivery_attempts
    _, stale_id = record_upload(
        tenant,
        blob(tenant, "stale.txt"),
        document_status="processing",
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=long_ago,
        published_at=long_ago,
    )
    exhausted_doc, exhausted_id = record_upload(
        tenant,
        blob(tenant, "exhausted.txt"),
        document_status="processing",
        status=JobStatus.RUNNING,
        attempts=attempts,
        started_at=long_ago,
        published_at=long_ago,
    )

    response = post(sweep_url, json={"overdue_minutes": 60})

    assert response.status_code == 200, response.text
    figures = response.json()
    assert figures["requeued"] >= 1 and figures["failed"] >= 1
    assert figures["overdue_minutes"] == 60
    stale = stored_job(stale_id)
    # Re-queued and published again; a worker may already have picked the message up.
    assert not (stale.status is JobStatus.RUNNING and stale.started_at == long_ago)
    exhausted = stored_job(exhausted_id)
    assert exhausted.status is JobStatus.FAILED
    assert exhausted.error_message and exhausted.error_message.startswith("gave up after")
    assert stored_document(exhausted_doc).status is DocumentStatus.FAILED


def test_old_unfinished_job_is_counted_overdue_and_repeated_sweeps_agree(
    sweep_url: str, tenant: Tenant
) -> None:
    now = datetime.now(UTC)
    # Queued two hours ago and handed to Pub/Sub just now: nothing for the sweep to redo.
    record_upload(
        tenant,
        blob(tenant, "slow.txt"),
        status=JobStatus.QUEUED,
        attempts=1,
        created_at=now - timedelta(hours=2),
        published_at=now,
    )

    first = post(sweep_url, json={"overdue_minutes": 60})
    again = httpx.get(sweep_url, params={"overdue_minutes": "60"}, timeout=60)
    narrower = post(sweep_url, params={"overdue_minutes": "180"})

    for response in (first, again, narrower):
        assert response.status_code == 200, response.text
    assert first.json()["overdue_jobs"] >= 1
    assert first.json()["oldest_overdue_seconds"] >= 2 * 3600 - 60
    assert again.json()["overdue_jobs"] == first.json()["overdue_jobs"]
    assert narrower.json()["overdue_jobs"] < first.json()["overdue_jobs"]
    # Counted per team too: the per-team alert's samples.
    [mine] = [t for t in first.json()["overdue_teams"] if t["team_id"] == str(tenant.team_id)]
    assert mine["overdue_jobs"] == 1 and mine["queued"] == 1
    assert mine["oldest_queued_seconds"] >= 2 * 3600 - 60


def test_no_body_means_the_default_window(sweep_url: str, database_url: str) -> None:
    response = post(sweep_url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["overdue_minutes"] == DEFAULT_OVERDUE_MINUTES
    assert set(body) == {
        "requeued",
        "failed",
        "republished",
        "overdue_minutes",
        "overdue_jobs",
        "oldest_overdue_seconds",
        "indexes_built",
        "indexes_dropped",
        "indexes_pending",
        "indexes_too_big",
        "released",
        "overdue_teams",
    }


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        (
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "malformed_json",
        ),
        ({"json": [30]}, 400, "malformed_json"),
        ({"json": {"overdue_minutes": "thirty"}}, 422, "invalid_overdue_minutes"),
        ({"json": {"overdue_minutes": 2.5}}, 422, "invalid_overdue_minutes"),
        ({"json": {"overdue_minutes": True}}, 422, "invalid_overdue_minutes"),
        ({"json": {"overdue_minutes": 0}}, 422, "invalid_overdue_minutes"),
        ({"json": {"overdue_minutes": MAX_OVERDUE_MINUTES + 1}}, 422, "invalid_overdue_minutes"),
        ({"params": {"overdue_minutes": "-5"}}, 422, "invalid_overdue_minutes"),
    ],
)
def test_bad_input_gets_a_json_error_and_sweeps_nothing(
    sweep_url: str, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = post(sweep_url, **request_kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "overdue_minutes" in response.json()["error"]["message"] or status == 400


def test_other_methods_are_refused_with_json(sweep_url: str) -> None:
    response = httpx.delete(sweep_url, timeout=60)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_overdue_count_leaves_out_finished_superseded_and_young_jobs(
    database_url: str, tenant: Tenant
) -> None:
    """Counted against a clock in 2000, so only this test's rows are old enough to matter."""
    now = datetime(2000, 1, 1, 12, tzinfo=UTC)
    old, young = now - timedelta(hours=3), now - timedelta(minutes=10)
    record_upload(tenant, blob(tenant, "queued.txt"), status=JobStatus.QUEUED, created_at=old)
    record_upload(
        tenant,
        blob(tenant, "running.txt"),
        status=JobStatus.RUNNING,
        attempts=1,
        created_at=old - timedelta(hours=1),
        started_at=old,
    )
    record_upload(tenant, blob(tenant, "done.txt"), status=JobStatus.SUCCEEDED, created_at=old)
    record_upload(tenant, blob(tenant, "young.txt"), status=JobStatus.QUEUED, created_at=young)
    # Overwritten while queued: the first generation's job is superseded, the second's counts.
    record_upload(tenant, blob(tenant, "twice.txt", 1), status=JobStatus.QUEUED, created_at=old)
    record_upload(tenant, blob(tenant, "twice.txt", 2), status=JobStatus.QUEUED, created_at=old)

    overdue = count_overdue_jobs(timedelta(hours=1), now=now)

    assert overdue.count == 3
    assert overdue.oldest_age_seconds == 4 * 3600
    assert count_overdue_jobs(timedelta(hours=5), now=now).count == 0
