"""A document's chunk write racing a model switch's flip, each interleaving forced in-process.

The worker runs the same `run_job` chunk_embed calls, paused at a chosen line while the switch
moves on in this thread; the local model is the project's first space and the Vertex AI
stand-in's gemini-embedding-001 (768) the one it switches to. The rule under test: a ready
document always has its vectors in the active space, so a question never misses it while a
re-embedding job is still to come.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from google.api_core.exceptions import AlreadyExists
from sqlalchemy import select

from common.ingestion import embedding_switch, jobs
from common.ingestion.jobs import JobOutcome, run_job
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.events import JobMessage
from common.platform.messaging import pubsub_clients
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus
from common.platform.spaces import EmbeddingSpace, ensure_space, project_spaces
from tests.fixtures.factories import Tenant
from tests.test_jobs import Queued, queue_upload

pytestmark = pytest.mark.timeout(300)

FIRST = " ".join(f"The harbour crane {n} lifts containers off the night ferry." for n in range(40))
SECOND = " ".join(f"The orchard ships crate {n} of cider apples each autumn." for n in range(40))


@pytest.fixture(autouse=True)
def _switchable(emulators: dict[str, str], tenant: Tenant) -> Iterator[None]:
    """Objects in the real GCS emulator; the switch publishes its jobs to the real Pub/Sub
    emulator's topic, which these tests run themselves (so does the stack's chunk_embed when
    an earlier test started it: every step below allows for that). Afterwards the project
    goes back to the local model and drops the switch's space, as other tests expect of it."""
    settings = get_settings()
    publisher, _ = pubsub_clients(settings)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=f"projects/{settings.gcp_project}/topics/{settings.jobs_topic}")
    yield
    with transaction() as session:
        if project_spaces(session, tenant.project_id, settings).active.table is not None:
            embedding_switch.rollback(session, tenant.project_id, settings)
    with transaction() as session:
        embedding_switch.finish(session, tenant.project_id, settings)


class Pause:
    """Holds the worker thread after `target` returns, until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
        self.reached, self.released = threading.Event(), threading.Event()
        original: Callable[..., Any] = getattr(jobs, target)

        def paused(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            self.reached.set()
            assert self.released.wait(120), "the test never released the worker"
            return result

        monkeypatch.setattr(jobs, target, paused)


class Worker(threading.Thread):
    def __init__(self, message: JobMessage) -> None:
        super().__init__(daemon=True)
        self.message = message
        self.outcome: JobOutcome | BaseException | None = None

    def run(self) -> None:
        try:
            self.outcome = run_job(self.message)
        except BaseException as error:  # reported by the test
            self.outcome = error


@contextmanager
def running(message: JobMessage, *pauses: Pause) -> Iterator[Worker]:
    """`message` run in a thread, joined on the way out (its pauses released, should a failed
    assertion have left them held)."""
    worker = Worker(message)
    worker.start()
    try:
        yield worker
    finally:
        for pause in pauses:
            pause.released.set()
        worker.join(120)


def _switch_to(tenant: Tenant) -> EmbeddingSpace:
    with transaction() as session:
        space = ensure_space(session, "gemini-embedding-001", 768, get_settings())
        embedding_switch.start(session, tenant.project_id, space, get_settings())
    return space


def _active(tenant: Tenant) -> EmbeddingSpace:
    with transaction() as session:
        return project_spaces(session, tenant.project_id, get_settings()).active


def _reembedding(queued: Queued, space: EmbeddingSpace) -> JobMessage:
    """The message of the switch's job re-embedding `queued`'s document for `space`."""
    with transaction() as session:
        job = session.scalars(
            select(IngestionJob).where(
                IngestionJob.document_id == queued.document_id, IngestionJob.space_id == space.id
            )
        ).one()
        return JobMessage(
            job.id, job.document_id, queued.blob.bucket, queued.blob.name, job.generation, None
        )


def _job_status(message: JobMessage) -> JobStatus:
    with transaction() as session:
        return session.get_one(IngestionJob, message.job_id).status


def _run_until_done(message: JobMessage, timeout: float = 60) -> None:
    """Run a job here; the stack's own chunk_embed may own it (then wait for it to finish)."""
    deadline = time.monotonic() + timeout
    while True:
        run_job(message)
        status = _job_status(message)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            assert status is JobStatus.SUCCEEDED
            return
        assert time.monotonic() < deadline, f"job {message.job_id} is still {status}"
        time.sleep(0.2)


def _wait_until_active(tenant: Tenant, space: EmbeddingSpace, timeout: float = 30) -> None:
    """The flip follows a job's write in a transaction of its own: when the stack's worker ran
    the last job, its status can read succeeded a moment before the flip commits."""
    deadline = time.monotonic() + timeout
    while _active(tenant) != space:
        assert time.monotonic() < deadline, f"still not flipped to {space.label}"
        time.sleep(0.1)


def _unsearchable(tenant: Tenant) -> list[uuid.UUID]:
    """Ready documents lacking a vector in the active space: questions would miss them."""
    with transaction() as session:
        active = project_spaces(session, tenant.project_id, get_settings()).active
        return embedding_switch.missing_documents(session, tenant.project_id, active)


def _status(document_id: uuid.UUID) -> DocumentStatus:
    with transaction() as session:
        return session.get_one(Document, document_id).status


def test_a_document_finishing_after_a_flip_is_written_in_the_new_active_space(
    tenant: Tenant, emulators: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claimed and embedded before the switch started; written after it flipped."""
    first = queue_upload(emulators, tenant, "crane.txt", FIRST.encode())
    assert run_job(first.message) is JobOutcome.SUCCEEDED
    second = queue_upload(emulators, tenant, "orchard.txt", SECOND.encode())
    built = Pause(monkeypatch, "_build_chunks")
    with running(second.message, built) as worker:
        assert built.reached.wait(120)
        space = _switch_to(tenant)
        _run_until_done(_reembedding(first, space))  # the last job of the switch: it flips
        _wait_until_active(tenant, space)
        built.released.set()
    assert worker.outcome is JobOutcome.SUCCEEDED
    assert _status(second.document_id) is DocumentStatus.READY
    assert _unsearchable(tenant) == []
    with transaction() as session:
        left = session.scalars(
            select(IngestionJob.status).where(
                IngestionJob.document_id == second.document_id, IngestionJob.space_id.is_not(None)
            )
        ).all()
    assert left == [], "its vectors were written with the chunks, not left to a job"


def test_a_flip_waits_for_a_chunk_write_in_flight_and_then_for_its_reembedding(
    tenant: Tenant, emulators: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written while the switch's last job finishes: the flip must not pass it by."""
    first = queue_upload(emulators, tenant, "crane.txt", FIRST.encode())
    assert run_job(first.message) is JobOutcome.SUCCEEDED
    inline = _active(tenant)
    second = queue_upload(emulators, tenant, "orchard.txt", SECOND.encode())
    built = Pause(monkeypatch, "_build_chunks")
    written = Pause(monkeypatch, "write_result")  # inside the write's transaction
    with running(second.message, built, written) as worker:
        assert built.reached.wait(120)
        space = _switch_to(tenant)  # after the claim: the chunks are embedded inline only
        built.released.set()
        assert written.reached.wait(120)
        # The switch's last job ends (and checks for the flip) while the write is open.
        with running(_reembedding(first, space)) as last:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                assert _active(tenant) == inline, "flipped past a chunk write in flight"
                time.sleep(0.1)
            written.released.set()
        assert last.outcome in (JobOutcome.SUCCEEDED, JobOutcome.SKIPPED), last.outcome
    assert worker.outcome is JobOutcome.SUCCEEDED
    assert _status(second.document_id) is DocumentStatus.READY
    if _active(tenant) != inline:  # only once the second document's re-embedding ran (the stack's)
        assert _job_status(_reembedding(second, space)) is JobStatus.SUCCEEDED
    assert _unsearchable(tenant) == []
    _run_until_done(_reembedding(second, space))
    _wait_until_active(tenant, space)
    assert _unsearchable(tenant) == []
