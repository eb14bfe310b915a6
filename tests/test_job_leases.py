"""Leases: a crashed worker costs its job one attempt, never the message's delivery budget.

Reproduces what made a killed worker fail a good document in the cloud (every redelivery met
the 540 s lease, answered "retry later" and spent a delivery attempt until Pub/Sub
dead-lettered the message), then checks a live worker's heartbeat keeps its job and a dead
one's job is taken over as soon as its lease runs out.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest

from common.ingestion.jobs import JobOutcome, run_job
from common.ingestion.lease import LeaseKeeper, LeaseLostError, renew
from common.ingestion.sweeper import handle_dead_letter, sweep_stuck_jobs
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus
from tests.fixtures.factories import Tenant
from tests.test_jobs import TEXT, Queued, chunk_count, job, queue_upload


@pytest.fixture(autouse=True)
def jobs_topic(emulators: dict[str, str]) -> None:
    """The sweep publishes job messages; nothing consumes them here (run_job is called)."""
    from google.api_core.exceptions import AlreadyExists

    from common.platform.messaging import pubsub_clients

    settings = get_settings()
    publisher, _ = pubsub_clients(settings)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=f"projects/{settings.gcp_project}/topics/{settings.jobs_topic}")


def crashed_mid_job(emulators: dict[str, str], tenant: Tenant, name: str) -> Queued:
    """The rows a worker killed while embedding leaves: running, attempt 1, a fresh lease."""
    queued = queue_upload(emulators, tenant, name, TEXT.encode())
    set_job(
        queued,
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=datetime.now(UTC),
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    return queued


def set_job(queued: Queued, **fields: object) -> None:
    with transaction() as session:
        row = session.get_one(IngestionJob, queued.job_id)
        for key, value in fields.items():
            setattr(row, key, value)


def finished(queued: Queued, timeout: float = 60.0) -> IngestionJob:
    """The job once it ended (a subscribed worker may be the one finishing it)."""
    deadline = time.monotonic() + timeout
    while True:
        row = job(queued.job_id)
        if row.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) or time.monotonic() > deadline:
            return row
        time.sleep(0.2)


def document_status(queued: Queued) -> DocumentStatus:
    with transaction() as session:
        return session.get_one(Document, queued.document_id).status


def test_redeliveries_while_the_lease_runs_spend_no_attempt_and_the_sweep_resumes_the_job(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = crashed_mid_job(emulators, tenant, "crashed.txt")
    # Pub/Sub redelivers the crashed push as often as its policy allows: each is acknowledged.
    for _ in range(get_settings().max_delivery_attempts + 2):
        assert run_job(queued.message) is JobOutcome.SKIPPED
    waiting = job(queued.job_id)
    assert waiting.status is JobStatus.RUNNING and waiting.attempts == 1
    assert document_status(queued) is not DocumentStatus.FAILED

    set_job(queued, lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))  # no heartbeat
    assert sweep_stuck_jobs().requeued >= 1
    # The republished message reaches whichever worker is subscribed, or this delivery.
    assert run_job(queued.message) in (JobOutcome.SUCCEEDED, JobOutcome.SKIPPED)
    done = finished(queued)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2
    assert chunk_count(queued.document_id) == done.chunks_created


def test_a_redelivery_takes_over_a_job_whose_lease_ran_out(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = crashed_mid_job(emulators, tenant, "taken-over.txt")
    set_job(queued, lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert run_job(queued.message) is JobOutcome.SUCCEEDED
    assert job(queued.job_id).attempts == 2


def test_a_heartbeat_keeps_a_slow_worker_its_job_and_stopping_it_frees_the_job(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = crashed_mid_job(emulators, tenant, "slow.txt")
    lease = 0.9
    set_job(queued, lease_expires_at=datetime.now(UTC) + timedelta(seconds=lease))
    with LeaseKeeper(queued.job_id, 1, lease) as keeper:
        time.sleep(lease * 3)  # three leases long: only renewals keep it
        sweep_stuck_jobs()
        alive = job(queued.job_id)
        assert alive.status is JobStatus.RUNNING and alive.attempts == 1
        assert alive.lease_expires_at is not None and alive.lease_expires_at > datetime.now(UTC)
        assert not keeper.lost
    time.sleep(lease + 0.2)  # the worker is gone: its lease runs out
    sweep_stuck_jobs()
    taken = job(queued.job_id)  # re-queued (and perhaps already claimed by a new attempt)
    assert taken.status is JobStatus.QUEUED or taken.attempts == 2


def test_a_worker_whose_job_was_taken_over_notices_and_drops_its_work(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = crashed_mid_job(emulators, tenant, "robbed.txt")
    assert renew(queued.job_id, 1, 30)
    set_job(queued, attempts=2)  # another delivery took the job over
    assert not renew(queued.job_id, 1, 30)
    keeper = LeaseKeeper(queued.job_id, 1, 0.3)
    with keeper:
        time.sleep(0.5)
    assert keeper.lost
    try:
        keeper.check()
    except LeaseLostError:
        pass
    else:
        raise AssertionError("a lost lease must stop the attempt")


def test_a_dead_letter_costs_one_attempt_and_publishes_the_job_again(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = queue_upload(emulators, tenant, "unreachable.txt", TEXT.encode())
    assert handle_dead_letter(queued.message)
    assert job(queued.job_id).published_at is not None  # handed to Pub/Sub again
    assert run_job(queued.message) in (JobOutcome.SUCCEEDED, JobOutcome.SKIPPED)
    done = finished(queued)
    assert done.status is JobStatus.SUCCEEDED
    assert done.attempts == 2  # the dead letter counted one, the successful run the other


def test_a_queued_job_of_an_overwritten_generation_is_closed_by_the_sweep(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    old = queue_upload(emulators, tenant, "moved.txt", b"The first text of the file.")
    set_job(old, created_at=datetime.now(UTC) - timedelta(hours=1), published_at=None)
    newer = queue_upload(emulators, tenant, "moved.txt", b"The second text of the file.")
    assert newer.document_id == old.document_id
    sweep_stuck_jobs()
    closed = job(old.job_id)
    assert closed.status is JobStatus.FAILED
    assert (closed.error_message or "").startswith("superseded by generation")
    assert job(newer.job_id).status is JobStatus.QUEUED


def test_after_a_broker_restart_every_queued_job_is_published_again_at_once(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = queue_upload(emulators, tenant, "lost-message.txt", TEXT.encode())
    published = datetime.now(UTC) - timedelta(seconds=5)
    set_job(queued, published_at=published, created_at=published)
    sweep_stuck_jobs()
    assert job(queued.job_id).published_at == published  # recent: left to the broker
    sweep_stuck_jobs(republish_after=timedelta(0))  # the broker lost every message
    republished = job(queued.job_id).published_at
    assert republished is not None and republished > published
