"""The chunk_embed worker in-process: duplicate, concurrent and superseded deliveries.

Rows are created as the trigger would, objects live in the real GCS emulator, and the worker
runs the same `run_job` the function calls, so interleavings can be forced deterministically.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from common.db import transaction
from common.errors import TransientError
from common.events import JobMessage
from common.jobs import JobOutcome, run_job
from common.models import Document, DocumentChunk, DocumentStatus, IngestionJob, JobStatus
from common.storage import BlobInfo, get_blob_store
from tests.fixtures.factories import Tenant

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
    with transaction() as session:
        document = session.scalar(
            select(Document).where(Document.gcs_uri == f"gs://{blob.bucket}/{blob.name}")
        )
        if document is None:
            document = Document(
                team_id=tenant.team_id,
                project_id=tenant.project_id,
                title=name,
                gcs_uri=f"gs://{blob.bucket}/{blob.name}",
                mime_type="text/plain",
            )
            session.add(document)
        document.generation = blob.generation
        document.size_bytes = blob.size
        document.content_hash = blob.md5_hex
        session.flush()
        job = IngestionJob(document_id=document.id, generation=blob.generation)
        session.add(job)
        session.flush()
        return Queued(blob, document.id, job.id)


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
