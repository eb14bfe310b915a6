"""The chunk_embed worker in-process: duplicate, concurrent and superseded deliveries.

Rows are created as the trigger would, objects live in the real GCS emulator, and the worker
runs the same `run_job` the function calls, so interleavings can be forced deterministically.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from common.ingestion.jobs import JobOutcome, run_job
from common.platform.db import transaction
from common.platform.errors import TransientError
from common.platform.events import JobMessage
from common.platform.models import Document, DocumentChunk, DocumentStatus, IngestionJob, JobStatus
from common.platform.storage import BlobInfo, get_blob_store
from tests.fixtures.factories import Tenant, record_upload
from tests.fixtures.model_standins import ModelStandin

TEXT = " ".join(
    f"Sentence {i} explains concurrency control in ingestion pipelines." for i in range(120)
)


@dataclass
class Queued:
    blob: BlobInfo
    document_id: uuid.UUID
    job_id: uuid.UUID

    @property
    def message(self) -> JobMessage:
        return JobMessage(
            self.job_id,
            self.document_id,
            self.blob.bucket,
            self.blob.name,
            self.blob.generation,
            None,
        )


def queue_upload(emulators: dict[str, str], tenant: Tenant, name: str, data: bytes) -> Queued:
    blob = get_blob_store().upload(
        emulators["AI_INFRA_BUCKET"], f"{tenant.project_id}/{name}", data, "text/plain"
    )
    document_id, job_id = record_upload(tenant, blob)
    return Queued(blob, document_id, job_id)


def chunk_count(document_id: uuid.UUID) -> int:
    with transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(DocumentChunk)
                .where(DocumentChunk.document_id == document_id)
            )
            or 0
        )


def job(job_id: uuid.UUID) -> IngestionJob:
    with transaction() as session:
        return session.get_one(IngestionJob, job_id)


def test_redelivered_message_for_a_finished_job_changes_nothing(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = queue_upload(emulators, tenant, "twice.txt", TEXT.encode())
    assert run_job(queued.message) is JobOutcome.SUCCEEDED
    first = job(queued.job_id)
    count = chunk_count(queued.document_id)
    assert run_job(queued.message) is JobOutcome.SKIPPED
    again = job(queued.job_id)
    assert (again.finished_at, again.attempts) == (first.finished_at, first.attempts)
    assert chunk_count(queued.document_id) == count == first.chunks_created


def test_concurrent_deliveries_write_the_chunks_once(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = queue_upload(emulators, tenant, "race.txt", TEXT.encode())
    outcomes: list[object] = []
    barrier = threading.Barrier(3)

    def deliver() -> None:
        barrier.wait()
        try:
            outcomes.append(run_job(queued.message))
        except TransientError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(JobOutcome.SUCCEEDED) == 1, outcomes
    assert all(
        o is JobOutcome.SKIPPED or isinstance(o, TransientError)
        for o in outcomes
        if o is not JobOutcome.SUCCEEDED
    )
    finished = job(queued.job_id)
    assert finished.status is JobStatus.SUCCEEDED and finished.attempts == 1
    assert chunk_count(queued.document_id) == finished.chunks_created
    # The deliveries that backed off are redelivered later and find the job done.
    assert run_job(queued.message) is JobOutcome.SKIPPED


def test_job_of_an_overwritten_generation_is_skipped(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    old = queue_upload(emulators, tenant, "moving.txt", b"The old text of the file.")
    new = queue_upload(emulators, tenant, "moving.txt", b"The new text of the file.")
    assert run_job(old.message) is JobOutcome.SKIPPED
    assert job(old.job_id).status is JobStatus.FAILED
    assert "superseded" in (job(old.job_id).error_message or "")
    assert run_job(new.message) is JobOutcome.SUCCEEDED
    with transaction() as session:
        document = session.get_one(Document, new.document_id)
        contents = session.scalars(
            select(DocumentChunk.content).where(DocumentChunk.document_id == new.document_id)
        ).all()
    assert (
        document.status is DocumentStatus.READY and document.ready_generation == new.blob.generation
    )
    assert contents == ["The new text of the file."]


def test_message_for_a_deleted_document_is_acknowledged(
    emulators: dict[str, str], tenant: Tenant
) -> None:
    queued = queue_upload(emulators, tenant, "deleted.txt", b"Soon gone.")
    with transaction() as session:
        session.delete(session.get_one(Document, queued.document_id))
    assert run_job(queued.message) is JobOutcome.SKIPPED


def test_reprocessing_replaces_chunks_atomically(emulators: dict[str, str], tenant: Tenant) -> None:
    queued = queue_upload(emulators, tenant, "again.txt", TEXT.encode())
    assert run_job(queued.message) is JobOutcome.SUCCEEDED
    before = chunk_count(queued.document_id)
    with transaction() as session:
        stored = session.get_one(IngestionJob, queued.job_id)
        stored.status = JobStatus.QUEUED
    assert run_job(queued.message) is JobOutcome.SUCCEEDED
    assert chunk_count(queued.document_id) == before
    with transaction() as session:
        indexes = session.scalars(
            select(DocumentChunk.chunk_index).where(DocumentChunk.document_id == queued.document_id)
        ).all()
    assert sorted(indexes) == list(range(before))


@pytest.fixture(autouse=True)
def _needs_emulators(emulators: dict[str, str]) -> None:
    """Every test here talks to the real GCS emulator."""


@pytest.fixture
def vertex_embeddings(
    vertex_standin: ModelStandin, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModelStandin]:
    """Embed through google-genai against the Vertex stand-in, at the database's 384 dims."""
    from common.platform.config import get_settings

    environment = {
        "AI_INFRA_EMBEDDING_PROVIDER": "vertex",
        "AI_INFRA_EMBEDDING_MODEL": "gemini-embedding-001",
        "AI_INFRA_EMBEDDING_DIM": "384",
        "AI_INFRA_VERTEX_BASE_URL": vertex_standin.base_url,
        "AI_INFRA_VERTEX_ACCESS_TOKEN": vertex_standin.env()["AI_INFRA_VERTEX_ACCESS_TOKEN"],
        "AI_INFRA_MODEL_MAX_RETRIES": "1",
        "AI_INFRA_MODEL_RETRY_BASE_SECONDS": "0",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield vertex_standin
    monkeypatch.undo()
    get_settings.cache_clear()


def test_transient_model_failure_is_retried_then_succeeds(
    emulators: dict[str, str], tenant: Tenant, vertex_embeddings: ModelStandin
) -> None:
    queued = queue_upload(emulators, tenant, "flaky.txt", TEXT.encode())
    vertex_embeddings.fail_next(2, status=503)  # the first try and its one in-client retry
    with pytest.raises(TransientError):
        run_job(queued.message)
    waiting = job(queued.job_id)
    assert waiting.status is JobStatus.QUEUED and waiting.attempts == 1
    assert "attempt 1 failed: ModelUnavailableError" in (waiting.error_message or "")
    assert run_job(queued.message) is JobOutcome.SUCCEEDED  # the redelivery
    done = job(queued.job_id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2
    assert done.embedding_model == "gemini-embedding-001" and done.error_message is None
    assert chunk_count(queued.document_id) == done.chunks_created


def test_last_attempt_fails_the_job_and_dead_letters_the_message(
    emulators: dict[str, str], tenant: Tenant, vertex_embeddings: ModelStandin
) -> None:
    from google.api_core.exceptions import AlreadyExists

    from common.platform.config import get_settings
    from common.platform.messaging import pubsub_clients

    settings = get_settings()
    publisher, subscriber = pubsub_clients(settings)
    topic = f"projects/{settings.gcp_project}/topics/{settings.dead_letter_topic}"
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=topic)
    inspection = f"projects/{settings.gcp_project}/subscriptions/inspect-{uuid.uuid4().hex[:8]}"
    subscriber.create_subscription(name=inspection, topic=topic)

    queued = queue_upload(emulators, tenant, "always-429.txt", TEXT.encode())
    vertex_embeddings.fail_next(1000, status=429, retry_after=0)
    for _ in range(settings.max_delivery_attempts - 1):
        with pytest.raises(TransientError):
            run_job(queued.message)
    assert run_job(queued.message) is JobOutcome.GAVE_UP
    failed = job(queued.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error_message is not None
    assert failed.error_message.startswith(
        f"gave up after {settings.max_delivery_attempts} attempts: ModelRateLimitedError"
    )
    with transaction() as session:
        assert session.get_one(Document, queued.document_id).status is DocumentStatus.FAILED
    deadline = time.monotonic() + 30
    found: list[Any] = []
    while time.monotonic() < deadline and not found:
        response = subscriber.pull(subscription=inspection, max_messages=10, timeout=5)
        found = [
            m for m in response.received_messages if str(queued.job_id).encode() in m.message.data
        ]
    assert found, "the message is in the dead-letter topic"
    assert run_job(queued.message) is JobOutcome.SKIPPED  # a later redelivery is harmless


def test_a_refused_model_request_fails_at_once_instead_of_retrying(
    emulators: dict[str, str], tenant: Tenant, vertex_embeddings: ModelStandin
) -> None:
    queued = queue_upload(emulators, tenant, "refused.txt", TEXT.encode())
    vertex_embeddings.fail_next(1, status=403)
    assert run_job(queued.message) is JobOutcome.FAILED
    failed = job(queued.job_id)
    assert failed.status is JobStatus.FAILED and failed.attempts == 1
    assert "refused" in (failed.error_message or "") and "403" in (failed.error_message or "")
    assert len(vertex_embeddings.requests) == 1, "no retries"
