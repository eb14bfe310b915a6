"""The documents API over real HTTP: listing with cursors, status and last job, get, delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from common.platform.config import Settings
from common.platform.db import transaction
from common.platform.models import Document, DocumentChunk, DocumentStatus, IngestionJob, JobStatus
from common.platform.storage import build_blob_store
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import QueryApi, insert_document

BUCKET = "query-docs-test"


def _auth(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


@pytest.fixture
def library(database_url: str) -> tuple[Tenant, list[uuid.UUID]]:
    """Five documents with distinct creation times (newest last in the returned list)."""
    tenant = make_tenant("docs")
    ids = []
    statuses = [DocumentStatus.READY, DocumentStatus.FAILED, DocumentStatus.READY,
                DocumentStatus.PROCESSING, DocumentStatus.READY]  # fmt: skip
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for number, status in enumerate(statuses):
        document_id, _ = insert_document(
            tenant, f"doc {number}", [f"Text {number}."], status=status
        )
        with transaction() as session:
            session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(created_at=base + timedelta(minutes=number))
            )
        ids.append(document_id)
    with transaction() as session:
        session.add_all(
            [
                IngestionJob(document_id=ids[1], generation=1, status=JobStatus.SUCCEEDED),
                IngestionJob(
                    document_id=ids[1],
                    generation=2,
                    status=JobStatus.FAILED,
                    error_message="the PDF is encrypted",
                    attempts=1,
                ),
            ]
        )
        session.execute(
            update(Document)
            .where(Document.id == ids[1])
            .values(error_message="the PDF is encrypted")
        )
    return tenant, ids


def test_listing_pages_through_every_document_newest_first(
    query_api: QueryApi, library: tuple[Tenant, list[uuid.UUID]]
) -> None:
    tenant, ids = library
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = query_api.client.get(
            f"/v1/projects/{tenant.project_id}/documents", params=params, headers=_auth(tenant)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["documents"]) <= 2
        seen += [d["id"] for d in page["documents"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(i) for i in reversed(ids)]


def test_listing_shows_status_error_and_last_job(
    query_api: QueryApi, library: tuple[Tenant, list[uuid.UUID]]
) -> None:
    tenant, ids = library
    response = query_api.client.get(
        f"/v1/projects/{tenant.project_id}/documents",
        params={"status": "failed"},
        headers=_auth(tenant),
    )
    assert response.status_code == 200, response.text
    documents = response.json()["documents"]
    assert [d["id"] for d in documents] == [str(ids[1])]
    failed = documents[0]
    assert failed["status"] == "failed"
    assert failed["error_message"] == "the PDF is encrypted"
    assert failed["last_job"]["status"] == "failed"
    assert failed["last_job"]["error_message"] == "the PDF is encrypted"
    assert failed["chunk_count"] == 1
    assert failed["embedding_model"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"status": "lost"}, "status"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_listing_parameters_are_validated(
    query_api: QueryApi, library: tuple[Tenant, list[uuid.UUID]], params: dict[str, str], field: str
) -> None:
    tenant, _ = library
    response = query_api.client.get(
        f"/v1/projects/{tenant.project_id}/documents", params=params, headers=_auth(tenant)
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(f"{field}:")


def test_get_document_is_scoped_to_the_team(
    query_api: QueryApi, library: tuple[Tenant, list[uuid.UUID]]
) -> None:
    tenant, ids = library
    mine = query_api.client.get(f"/v1/documents/{ids[1]}", headers=_auth(tenant))
    assert mine.status_code == 200, mine.text
    assert mine.json()["last_job"]["status"] == "failed"
    stranger = make_tenant("stranger")
    for document_id in (ids[1], uuid.uuid4()):
        response = query_api.client.get(f"/v1/documents/{document_id}", headers=_auth(stranger))
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "document not found"}}


def _chunk_count(document_id: uuid.UUID) -> int:
    with transaction() as session:
        return int(
            session.scalar(select(func.count()).where(DocumentChunk.document_id == document_id))
            or 0
        )


def test_delete_removes_object_chunks_and_row_only_for_the_owner(
    query_api: QueryApi, database_url: str
) -> None:
    store = build_blob_store(Settings(storage_emulator_host=query_api.storage_host))
    store.ensure_bucket(BUCKET)
    tenant = make_tenant("delete")
    name = f"{tenant.project_id}/manual.txt"
    store.upload(BUCKET, name, b"The manual.", "text/plain")
    document_id, _ = insert_document(
        tenant, "manual", ["The manual.", "Page two."], gcs_uri=f"gs://{BUCKET}/{name}"
    )
    stranger = make_tenant("stranger")
    refused = query_api.client.delete(f"/v1/documents/{document_id}", headers=_auth(stranger))
    assert refused.status_code == 404
    assert store.stat(BUCKET, name) is not None and _chunk_count(document_id) == 2

    response = query_api.client.delete(f"/v1/documents/{document_id}", headers=_auth(tenant))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": str(document_id), "deleted": True, "object_deleted": True}
    assert store.stat(BUCKET, name) is None
    assert _chunk_count(document_id) == 0
    gone = query_api.client.get(f"/v1/documents/{document_id}", headers=_auth(tenant))
    assert gone.status_code == 404
    again = query_api.client.delete(f"/v1/documents/{document_id}", headers=_auth(tenant))
    assert again.status_code == 404


def test_delete_of_a_document_whose_object_is_already_gone(
    query_api: QueryApi, database_url: str
) -> None:
    tenant = make_tenant("gone")
    document_id, _ = insert_document(
        tenant, "orphan", ["Orphan."], gcs_uri=f"gs://{BUCKET}/{tenant.project_id}/never.txt"
    )
    build_blob_store(Settings(storage_emulator_host=query_api.storage_host)).ensure_bucket(BUCKET)
    response = query_api.client.delete(f"/v1/documents/{document_id}", headers=_auth(tenant))
    assert response.status_code == 200, response.text
    assert response.json()["object_deleted"] is False
    assert _chunk_count(document_id) == 0


def test_documents_need_a_key(query_api: QueryApi) -> None:
    response = query_api.client.get(f"/v1/documents/{uuid.uuid4()}")
    assert response.status_code == 401
    assert isinstance(response, httpx.Response)
