"""End to end: objects in the GCS emulator + Eventarc-style events -> ready, citable chunks.

Real parts only: embedded Postgres, GCS emulator, Pub/Sub emulator pushing to chunk_embed, both
functions served by functions-framework over HTTP.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from common.localstack.eventarc import DELETED, FINALIZED, send_storage_event
from common.platform.db import transaction
from common.platform.events import JobMessage
from common.platform.models import Document, DocumentChunk, DocumentStatus, IngestionJob, JobStatus
from common.platform.storage import BlobInfo, get_blob_store
from tests import pdfs
from tests.fixtures.factories import Tenant, record_upload
from tests.fixtures.stack import IngestionStack

pytestmark = pytest.mark.timeout(300)
DEADLINE_SECONDS = 240.0


def upload(stack: IngestionStack, tenant: Tenant, path: str, data: bytes, mime: str) -> BlobInfo:
    return get_blob_store().upload(stack.bucket, f"{tenant.project_id}/{path}", data, mime)


def finalize(stack: IngestionStack, blob: BlobInfo, **kwargs: Any) -> httpx.Response:
    response = send_storage_event(stack.trigger_url, FINALIZED, blob, **kwargs)
    assert response.status_code == 200, response.text
    return response


def document_for(tenant: Tenant, blob: BlobInfo) -> Document | None:
    with transaction() as session:
        return session.scalar(
            select(Document).where(
                Document.project_id == tenant.project_id,
                Document.gcs_uri == blob.gcs_uri,
            )
        )


def wait_for_document(
    stack: IngestionStack, tenant: Tenant, blob: BlobInfo, statuses: set[DocumentStatus]
) -> Document:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        document = document_for(tenant, blob)
        if (
            document is not None
            and document.status in statuses
            and document.generation == blob.generation
            and (
                document.status is not DocumentStatus.READY
                or document.ready_generation == blob.generation
            )
        ):
            return document
        time.sleep(0.2)
    raise AssertionError(f"document never reached {statuses}; logs:\n{stack.logs()}")


def jobs_of(document_id: uuid.UUID) -> list[IngestionJob]:
    with transaction() as session:
        return list(
            session.scalars(
                select(IngestionJob)
                .where(IngestionJob.document_id == document_id)
                .order_by(IngestionJob.created_at)
            )
        )


def chunks_of(document_id: uuid.UUID) -> list[DocumentChunk]:
    with transaction() as session:
        return list(
            session.scalars(
                select(DocumentChunk)
                .where(DocumentChunk.document_id == document_id)
                .order_by(DocumentChunk.chunk_index)
            )
        )


def test_uploaded_pdf_becomes_ready_with_chunks_citing_their_pages(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    pages = [pdfs.page_text(n, words=120) for n in range(1, 5)]
    blob = upload(
        ingestion_stack, tenant, "reports/q3 report.pdf", pdfs.make_pdf(pages), "application/pdf"
    )
    finalize(ingestion_stack, blob)

    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    assert document.title == "q3 report.pdf"
    assert document.mime_type == "application/pdf"
    assert document.source_type.value == "upload"
    assert document.size_bytes == blob.size and document.content_hash == blob.md5_hex
    [job] = jobs_of(document.id)
    chunks = chunks_of(document.id)
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 1
    assert job.chunks_created == len(chunks) == document.chunk_count > 0
    assert job.embedding_model == document.embedding_model == "all-MiniLM-L6-v2"
    assert job.started_at is not None and job.finished_at is not None
    for chunk in chunks:
        assert chunk.project_id == tenant.project_id
        assert 1 <= chunk.page_start <= chunk.page_end <= 4  # type: ignore[operator]
        assert 0 < chunk.token_count <= 256
        assert chunk.char_end > chunk.char_start
        # Every sentence names its page: a chunk's text only mentions pages it spans.
        for page in range(1, 5):
            if f"Page {page} sentence" in chunk.content:
                assert chunk.page_start <= page <= chunk.page_end  # type: ignore[operator]
    assert {c.page_start for c in chunks} >= {1, 2, 3, 4}


def test_structured_mode_event_is_accepted(ingestion_stack: IngestionStack, tenant: Tenant) -> None:
    blob = upload(
        ingestion_stack,
        tenant,
        "notes.md",
        b"# Title\n\nSome *markdown* body text.",
        "text/markdown",
    )
    finalize(ingestion_stack, blob, mode="structured")
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    assert "markdown body text" in chunks_of(document.id)[0].content


def test_duplicate_finalize_events_create_one_job_and_one_message(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    blob = upload(
        ingestion_stack,
        tenant,
        "dup.txt",
        b"Duplicate events must not duplicate work.",
        "text/plain",
    )
    event_id = uuid.uuid4().hex
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: finalize(ingestion_stack, blob, event_id=event_id), range(4)))
    finalize(ingestion_stack, blob, event_id=event_id)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempts == 1, "one message means the worker claimed the job once"
    assert len(chunks_of(document.id)) == job.chunks_created


def test_unknown_project_malformed_names_and_folders_are_acknowledged(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    store = get_blob_store()
    names = [
        f"{uuid.uuid4()}/orphan.txt",  # unknown project
        "not-a-project/file.txt",  # malformed project id
        "no-slash.txt",
        f"{tenant.project_id}/folder/",  # folder placeholder
    ]
    for name in names:
        blob = store.upload(ingestion_stack.bucket, name, b"text", "text/plain")
        finalize(ingestion_stack, blob)
    with transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.project_id == tenant.project_id)
        )
    assert count == 0
    response = httpx.post(
        ingestion_stack.trigger_url,
        headers={
            "ce-specversion": "1.0",
            "ce-id": "x",
            "ce-source": "//storage",
            "ce-type": FINALIZED,
            "Content-Type": "application/json",
        },
        content=b'{"bucket": "b"}',
    )
    assert response.status_code == 200, "a malformed payload is acknowledged, never retried"


def test_overwrite_keeps_document_and_stale_events_change_nothing(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    first = upload(
        ingestion_stack,
        tenant,
        "policy.txt",
        b"Version one says the fee is ten euros.",
        "text/plain",
    )
    finalize(ingestion_stack, first)
    wait_for_document(ingestion_stack, tenant, first, {DocumentStatus.READY})
    second = upload(
        ingestion_stack,
        tenant,
        "policy.txt",
        b"Version two says the fee is twelve euros.",
        "text/plain",
    )
    finalize(ingestion_stack, second)
    # Overwriting fires a delete for the old generation, and a late finalize of it may arrive.
    assert send_storage_event(ingestion_stack.trigger_url, DELETED, first).status_code == 200
    finalize(ingestion_stack, first)
    document = wait_for_document(ingestion_stack, tenant, second, {DocumentStatus.READY})
    assert [c.content for c in chunks_of(document.id)] == [
        "Version two says the fee is twelve euros."
    ]
    assert {job.generation for job in jobs_of(document.id)} == {first.generation, second.generation}


def test_delete_of_current_generation_removes_document_and_chunks(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    blob = upload(ingestion_stack, tenant, "gone.txt", b"This file will be deleted.", "text/plain")
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    assert get_blob_store().delete(ingestion_stack.bucket, blob.name)
    for _ in range(2):  # delivered twice
        assert send_storage_event(ingestion_stack.trigger_url, DELETED, blob).status_code == 200
    assert document_for(tenant, blob) is None
    assert chunks_of(document.id) == []
    # A finalize that arrives after the delete does not resurrect the document.
    finalize(ingestion_stack, blob)
    assert document_for(tenant, blob) is None


def test_identical_reupload_reuses_chunks_without_reembedding(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    data = b"Identical content uploaded twice is embedded once."
    first = upload(ingestion_stack, tenant, "same.txt", data, "text/plain")
    finalize(ingestion_stack, first)
    document = wait_for_document(ingestion_stack, tenant, first, {DocumentStatus.READY})
    before = [c.id for c in chunks_of(document.id)]
    second = upload(ingestion_stack, tenant, "same.txt", data, "text/plain")
    finalize(ingestion_stack, second)
    document = wait_for_document(ingestion_stack, tenant, second, {DocumentStatus.READY})
    assert [c.id for c in chunks_of(document.id)] == before
    jobs = jobs_of(document.id)
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    assert jobs[1].attempts == 0, "no worker ran for the unchanged generation"


BAD_FILES: list[tuple[str, bytes, str, str]] = [
    ("corrupt.pdf", pdfs.make_corrupt_pdf(), "application/pdf", "pdf"),
    ("locked.pdf", pdfs.make_encrypted_pdf(["secret text"]), "application/pdf", "encrypted"),
    ("empty.txt", b"", "text/plain", "empty"),
    ("scan.pdf", pdfs.make_textless_pdf(2), "application/pdf", "no extractable text"),
    ("archive.zip", b"PK\x03\x04" + b"\x00" * 64, "application/zip", "unsupported"),
    ("huge.txt", b"word " * (450 * 1024), "text/plain", "too large"),
]


@pytest.mark.parametrize(
    ("path", "data", "mime", "expected"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_files_fail_once_with_a_readable_error(
    ingestion_stack: IngestionStack,
    tenant: Tenant,
    path: str,
    data: bytes,
    mime: str,
    expected: str,
) -> None:
    blob = upload(ingestion_stack, tenant, path, data, mime)
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.FAILED})
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1, "a bad file is never retried"
    assert job.error_message and expected in job.error_message.lower()
    assert document.error_message == job.error_message
    assert chunks_of(document.id) == []


def test_text_markdown_and_html_files_become_ready(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    files = {
        "plain.txt": (
            b"Plain text about the orange harbour crane.",
            "text/plain",
            "orange harbour crane",
        ),
        "guide.md": (
            b"# Guide\n\n* **Bold** step about the violet lighthouse.",
            "text/markdown",
            "violet lighthouse",
        ),
        "page.html": (
            b"<html><head><script>var hidden = 1;</script><style>p{}</style></head>"
            b"<body><p>Visible text about the green observatory.</p></body></html>",
            "text/html",
            "green observatory",
        ),
    }
    for path, (data, mime, phrase) in files.items():
        blob = upload(ingestion_stack, tenant, path, data, mime)
        finalize(ingestion_stack, blob)
        document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
        text = " ".join(c.content for c in chunks_of(document.id))
        assert phrase in text
        assert "hidden" not in text and "**" not in text


def test_chunks_carry_title_and_heading_path_as_context_but_cite_the_text(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    from common.ingestion.extract import extract_text

    files = {
        "manual.md": (
            b"# Boiler manual\n\n## Maintenance\n\n### Pressure valve\n\n"
            b"Open it twice a year and check the seal.",
            "text/markdown",
        ),
        "manual.html": (
            b"<html><body><h1>Boiler manual \xc2\xb6</h1><h2>Maintenance</h2><h3></h3>"
            b"<h3>Pressure valve</h3><p>Open it twice a year and check the seal.</p>"
            b"</body></html>",
            "text/html",
        ),
    }
    for path, (data, mime) in files.items():
        blob = upload(ingestion_stack, tenant, path, data, mime)
        finalize(ingestion_stack, blob)
        document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
        extracted = extract_text(data, mime_type=mime, filename=path, max_pages=10)
        (chunk,) = chunks_of(document.id)
        assert chunk.context == "manual > Boiler manual > Maintenance > Pressure valve"
        assert chunk.content == extracted.text[chunk.char_start : chunk.char_end]
        assert "\ufdd0" not in chunk.content and chunk.content.startswith("Boiler manual")
        with transaction() as session:  # the context is full-text indexed with the content
            found = session.scalar(
                select(func.count())
                .select_from(DocumentChunk)
                .where(
                    DocumentChunk.id == chunk.id,
                    DocumentChunk.content_tsv.op("@@")(func.plainto_tsquery("english", "manual")),
                )
            )
        assert found == 1


def test_chunk_offsets_slice_the_extracted_text(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    from common.ingestion.extract import extract_text

    data = pdfs.make_pdf([pdfs.page_text(n, words=200) for n in range(1, 4)])
    blob = upload(ingestion_stack, tenant, "offsets.pdf", data, "application/pdf")
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    extracted = extract_text(
        data, mime_type="application/pdf", filename="offsets.pdf", max_pages=100
    )
    for chunk in chunks_of(document.id):
        assert extracted.text[chunk.char_start : chunk.char_end] == chunk.content
        first_page = next(
            p
            for p in extracted.pages
            if p.char_start <= chunk.char_start < max(p.char_end, p.char_start + 1)
        )
        assert chunk.page_start == first_page.number


def test_pdf_overwrite_replaces_its_chunks(ingestion_stack: IngestionStack, tenant: Tenant) -> None:
    first = upload(
        ingestion_stack,
        tenant,
        "manual.pdf",
        pdfs.make_pdf(["Old manual text about turbines."] * 2),
        "application/pdf",
    )
    finalize(ingestion_stack, first)
    document = wait_for_document(ingestion_stack, tenant, first, {DocumentStatus.READY})
    second = upload(
        ingestion_stack,
        tenant,
        "manual.pdf",
        pdfs.make_pdf(["New manual text about windmills."]),
        "application/pdf",
    )
    finalize(ingestion_stack, second)
    document = wait_for_document(ingestion_stack, tenant, second, {DocumentStatus.READY})
    text = " ".join(c.content for c in chunks_of(document.id))
    assert "windmills" in text and "turbines" not in text


def test_job_message_as_binary_mode_cloudevent_is_processed(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    """Eventarc delivers Pub/Sub messages as binary-mode CloudEvents (the emulator push differs)."""
    import base64
    import json

    blob = get_blob_store().upload(
        ingestion_stack.bucket,
        f"{tenant.project_id}/direct.txt",
        b"Delivered by Eventarc.",
        "text/plain",
    )
    document_id, job_id = record_upload(tenant, blob)
    payload = JobMessage(job_id, document_id, blob.bucket, blob.name, blob.generation, None)
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(payload.to_payload()).encode()).decode(),
            "attributes": {},
            "messageId": "42",
            "publishTime": "2026-11-25T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/eventarc-sub",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "42",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/ingest-jobs",
        "Content-Type": "application/json",
    }
    response = httpx.post(
        ingestion_stack.chunk_embed_url, headers=headers, content=json.dumps(body), timeout=120
    )
    assert response.status_code == 200, response.text
    [stored] = jobs_of(document_id)
    assert stored.status is JobStatus.SUCCEEDED and stored.chunks_created == 1


def test_a_job_whose_worker_died_ends_failed_through_the_dead_letter_topic(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    from datetime import UTC, datetime

    from common.ingestion.sweeper import WORKER_DIED
    from common.platform.config import get_settings
    from common.platform.messaging import get_publisher

    blob = upload(
        ingestion_stack,
        tenant,
        "killer.txt",
        b"This file's worker is killed every time.",
        "text/plain",
    )
    attempts = get_settings().max_delivery_attempts
    # What a worker killed on its last attempt leaves behind.
    document_id, job_id = record_upload(
        tenant,
        blob,
        document_status="processing",
        status=JobStatus.RUNNING,
        attempts=attempts,
        started_at=datetime.now(UTC),
    )
    message = JobMessage(job_id, document_id, blob.bucket, blob.name, blob.generation, None)
    get_publisher().publish(get_settings().dead_letter_topic, message.to_payload(), {})
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        [stored] = jobs_of(document_id)
        if stored.status is JobStatus.FAILED:
            break
        time.sleep(0.2)
    assert stored.status is JobStatus.FAILED, ingestion_stack.logs()
    assert stored.error_message == f"gave up after {attempts} attempts: {WORKER_DIED}"
    assert document_for(tenant, blob).status is DocumentStatus.FAILED  # type: ignore[union-attr]


def test_sweep_requeues_a_job_whose_lease_expired(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    from datetime import UTC, datetime, timedelta

    from common.ingestion.sweeper import sweep_stuck_jobs

    blob = upload(
        ingestion_stack, tenant, "stale.txt", b"A worker took this job and vanished.", "text/plain"
    )
    record_upload(
        tenant,
        blob,
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=datetime.now(UTC) - timedelta(hours=1),
    )
    report = sweep_stuck_jobs()
    assert report.requeued >= 1
    ready = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    [stored] = jobs_of(ready.id)
    assert stored.status is JobStatus.SUCCEEDED and stored.attempts == 2


def test_a_failed_overwrite_drops_the_stale_chunks(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    good = upload(
        ingestion_stack, tenant, "notes.pdf", pdfs.make_pdf(["Good notes."]), "application/pdf"
    )
    finalize(ingestion_stack, good)
    wait_for_document(ingestion_stack, tenant, good, {DocumentStatus.READY})
    bad = upload(ingestion_stack, tenant, "notes.pdf", pdfs.make_corrupt_pdf(), "application/pdf")
    finalize(ingestion_stack, bad)
    document = wait_for_document(ingestion_stack, tenant, bad, {DocumentStatus.FAILED})
    assert chunks_of(document.id) == []
    assert document.chunk_count == 0 and document.ready_generation is None
