"""Every format through every way in, on the real stack: a signed upload of each sample file ends
ready, and a question about its one fact retrieves it first, with the citation naming the right
place (slide, sheet and rows, record, OCR'd page); URL sources and the inbox take the same types.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from common.platform.formats import ACCEPTED_TYPES, sniff_mime_type
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.intake import IntakeApi, wait_until_settled
from tests.format_samples import Sample, samples

pytestmark = pytest.mark.timeout(600)
SAMPLES = samples()


def _auth(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def _upload(api: IntakeApi, tenant: Tenant, sample: Sample) -> str:
    """The signed-upload path a browser or SDK takes; returns the document id."""
    ticket = api.client.post(
        f"/v1/projects/{tenant.project_id}/uploads",
        json={
            "filename": f"samples/{sample.filename}",
            "content_type": sample.content_type,
            "size": len(sample.data),
        },
        headers=_auth(tenant),
    )
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    put = httpx.put(body["upload_url"], content=sample.data, headers=body["headers"], timeout=30)
    assert put.status_code == 200, put.text
    return _document_id(api, tenant, body["object"])


def _document_id(api: IntakeApi, tenant: Tenant, gcs_uri: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = api.client.get(
            f"/v1/projects/{tenant.project_id}/documents", headers=_auth(tenant)
        )
        for document in listing.json()["documents"]:
            if document["gcs_uri"] == gcs_uri:
                return str(document["id"])
        time.sleep(0.2)
    raise AssertionError(f"no document for {gcs_uri}\n{api.logs()}")


def _ask(api: IntakeApi, tenant: Tenant, question: str) -> list[dict[str, Any]]:
    response = api.client.post(
        f"/v1/projects/{tenant.project_id}/query",
        json={"question": question, "mode": "retrieve", "top_k": 3},
        headers=_auth(tenant),
    )
    assert response.status_code == 200, response.text
    citations: list[dict[str, Any]] = response.json()["citations"]
    return citations


def test_every_sample_name_is_an_accepted_type_for_the_inbox_and_the_cli() -> None:
    for sample in SAMPLES:
        assert sniff_mime_type(sample.filename, None) in ACCEPTED_TYPES, sample.filename
        assert sample.content_type in ACCEPTED_TYPES


def test_every_format_uploaded_is_ready_and_answers_its_question_with_its_place(
    intake_api: IntakeApi,
) -> None:
    tenant = make_tenant("formats")
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda sample: _upload(intake_api, tenant, sample), SAMPLES))
    documents = {
        sample.filename: wait_until_settled(intake_api, tenant.api_key, document_id, 300)
        for sample, document_id in zip(SAMPLES, ids, strict=True)
    }
    failed = {
        name: doc["error_message"] for name, doc in documents.items() if doc["status"] != "ready"
    }
    assert not failed, failed
    titles = {
        document_id: sample.filename for sample, document_id in zip(SAMPLES, ids, strict=True)
    }
    wrong = []
    for sample in SAMPLES:
        top = _ask(intake_api, tenant, sample.question)[0]
        found = (titles[top["document_id"]], sample.answer in top["snippet"], top["location"])
        if found != (sample.filename, True, sample.location):
            wrong.append((sample.filename, sample.location, found, top["snippet"][:200]))
    assert not wrong, "\n".join(map(str, wrong))


def test_a_url_source_of_a_binary_format_is_fetched_and_read(intake_api: IntakeApi) -> None:
    tenant = make_tenant("url-formats")
    deck = next(sample for sample in SAMPLES if sample.filename == "deck.pptx")
    # Served as many servers serve office files: a generic type, the path naming the format.
    path = f"/files/{uuid.uuid4().hex}.pptx"
    intake_api.pages.files[path] = ("application/octet-stream", deck.data)
    response = intake_api.client.post(
        f"/v1/projects/{tenant.project_id}/documents",
        json={"url": intake_api.pages.url(path), "title": "Fleet review"},
        headers=_auth(tenant),
    )
    assert response.status_code == 202, response.text
    document = wait_until_settled(intake_api, tenant.api_key, response.json()["document_id"])
    assert document["status"] == "ready", document
    assert document["mime_type"] == deck.content_type
    [top, *_] = _ask(intake_api, tenant, deck.question)
    assert deck.answer in top["snippet"] and top["location"] == deck.location
