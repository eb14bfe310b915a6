"""Fair ingestion on the real stack: deferred jobs all finish, none runs twice at once, a capped
team never exceeds its limit, and a redelivery storm of a deferred job spends no attempt.

The suite runs with a large `AI_INFRA_INGEST_CAPACITY` (tests/conftest.py), so the limits here
are the teams' own (`teams.max_running_jobs`, read on every claim); the shared capacity and the
fair share are decided by the same `admits` (tests/test_scheduling.py), and bench/fairness.py
measures them end to end. A worker killed while jobs wait: tests/test_dev_stack.py.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from common.ingestion.sweeper import sweep_stuck_jobs
from common.platform.db import transaction
from common.platform.events import JobMessage
from common.platform.models import DocumentStatus, IngestionJob, JobStatus, Team
from common.platform.storage import BlobInfo
from common.query.usage import team_usage
from tests.fixtures.factories import Tenant, make_tenant, record_upload
from tests.fixtures.stack import IngestionStack
from tests.test_cli import cli_json
from tests.test_ingestion import finalize, jobs_of, upload, wait_for_document

pytestmark = pytest.mark.timeout(300)


def _cap(tenant: Tenant, jobs: int | None) -> None:
    with transaction() as session:
        session.get_one(Team, tenant.team_id).max_running_jobs = jobs


def _text(n: int) -> bytes:
    return " ".join(f"Report {n} line {k} about the harbour crane." for k in range(60)).encode()


def _most_at_once(jobs: list[IngestionJob]) -> int:
    """The most jobs whose [started_at, finished_at] overlap at one instant."""
    edges = sorted(
        [(job.started_at, 1) for job in jobs if job.started_at]
        + [(job.finished_at, -1) for job in jobs if job.finished_at],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_a_capped_team_runs_at_most_its_limit_and_every_deferred_job_finishes_once(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    _cap(tenant, 2)
    blobs = _pushed_at_once(ingestion_stack, tenant, "bulk", 8)
    other = make_tenant("not-starved")
    small = upload(ingestion_stack, other, "one.txt", _text(99), "text/plain")
    finalize(ingestion_stack, small)
    jobs = _jobs_once_ready(ingestion_stack, tenant, blobs)
    assert [job.attempts for job in jobs] == [1] * 8, "a deferral spends no attempt"
    assert sum(job.deferrals for job in jobs) > 0, "the cap held some back"
    assert all(job.deferred_at is None for job in jobs)
    assert _most_at_once(jobs) <= 2
    [small_job] = jobs_of(
        wait_for_document(ingestion_stack, other, small, {DocumentStatus.READY}).id
    )
    assert small_job.attempts == 1 and small_job.deferrals == 0, "the other team never waited"
    _cap(tenant, None)


def test_a_worker_whose_job_finishes_runs_the_deferred_job_itself_without_a_new_message(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    """The handoff: the freed slot's worker claims the fairest deferred job in place (no Pub/Sub
    round trip), admitted as a delivery would be, so the cap still holds."""
    _cap(tenant, 1)
    jobs = _jobs_once_ready(
        ingestion_stack, tenant, _pushed_at_once(ingestion_stack, tenant, "queue", 3)
    )
    deferred = [job for job in jobs if job.deferrals]
    assert len(deferred) == 2, "one ran, two waited for the team's one slot"
    assert [job.attempts for job in jobs] == [1] * 3
    assert _most_at_once(jobs) == 1
    # Released jobs are published again; these were taken over by the finishing worker.
    assert all(job.published_at is None for job in deferred)
    _cap(tenant, None)


def _pushed_at_once(
    stack: IngestionStack, tenant: Tenant, folder: str, count: int
) -> list[BlobInfo]:
    """`count` uploads whose job messages all reach the worker at once, as a bulk upload's do."""
    blobs = [
        upload(stack, tenant, f"{folder}/{n}.txt", _text(n), "text/plain") for n in range(count)
    ]
    messages = [_message(tenant, blob) for blob in blobs]
    with ThreadPoolExecutor(len(messages)) as pool:
        answers = list(pool.map(lambda message: _push(stack, message), messages))
    assert all(answer.status_code == 200 for answer in answers)
    return blobs


def _jobs_once_ready(
    stack: IngestionStack, tenant: Tenant, blobs: list[BlobInfo]
) -> list[IngestionJob]:
    documents = [wait_for_document(stack, tenant, blob, {DocumentStatus.READY}) for blob in blobs]
    return [job for document in documents for job in jobs_of(document.id)]


def _message(tenant: Tenant, blob: BlobInfo) -> JobMessage:
    document_id, job_id = record_upload(tenant, blob)
    return JobMessage(job_id, document_id, blob.bucket, blob.name, blob.generation, None)


def _push(stack: IngestionStack, message: JobMessage) -> httpx.Response:
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(message.to_payload()).encode()).decode(),
            "attributes": {},
            "messageId": uuid.uuid4().hex,
            "publishTime": "2026-12-03T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/ingest-jobs",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-id": body["message"]["messageId"],  # type: ignore[index]
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/ingest-jobs",
        "Content-Type": "application/json",
    }
    return httpx.post(stack.chunk_embed_url, headers=headers, content=json.dumps(body), timeout=60)


def test_a_redelivery_storm_of_a_deferred_job_spends_no_attempt_and_it_runs_once_released(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    _cap(tenant, 1)
    # The team's one slot is held by a job whose worker is alive (a live lease).
    holder = upload(ingestion_stack, tenant, "holder.txt", _text(1), "text/plain")
    _, holder_job = record_upload(
        tenant,
        holder,
        document_status="processing",
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=datetime.now(UTC),
        lease_expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    message = _message(
        tenant, upload(ingestion_stack, tenant, "stormed.txt", _text(2), "text/plain")
    )
    job_id = message.job_id
    for _ in range(20):  # far more deliveries than the 5 attempts a job has
        assert _push(ingestion_stack, message).status_code == 200
    with transaction() as session:
        waiting = session.get_one(IngestionJob, job_id)
        assert waiting.status is JobStatus.QUEUED and waiting.attempts == 0
        assert waiting.deferrals == 20 and waiting.deferred_at is not None
    # What the operator and the team see meanwhile.
    [mine] = [q for q in cli_json("jobs", "status") if q["team_id"] == str(tenant.team_id)]
    assert (mine["queued"], mine["deferred"], mine["running"]) == (0, 1, 1)
    assert mine["oldest_queued_seconds"] is not None
    with transaction() as session:
        seen = team_usage(session, tenant.team_id, date.today(), date.today()).ingestion
    assert (seen.deferred, seen.running) == (1, 1)
    with transaction() as session:
        # The holder ends (its worker finished): the sweep hands its slot to the deferred job.
        finished = session.get_one(IngestionJob, holder_job)
        finished.status, finished.finished_at = JobStatus.SUCCEEDED, datetime.now(UTC)
    assert sweep_stuck_jobs().released >= 1
    deadline = time.monotonic() + 120
    while True:
        with transaction() as session:
            done = session.get_one(IngestionJob, job_id)
        if done.status is JobStatus.SUCCEEDED or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    _cap(tenant, None)
