"""Attributes and filters over real HTTP: set with a signed upload, a URL/text source and PATCH;
listed and searched with filters; citations carry them; nothing is ever re-embedded."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.intake import IntakeApi, wait_until_settled


def _auth(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def _text_document(
    api: IntakeApi, tenant: Tenant, title: str, text: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    response = api.client.post(
        f"/v1/projects/{tenant.project_id}/documents",
        json={"title": title, "text": text, "metadata": metadata},
        headers=_auth(tenant),
    )
    assert response.status_code == 202, response.text
    return wait_until_settled(api, tenant.api_key, response.json()["document_id"])


def _patch(api: IntakeApi, tenant: Tenant, document_id: str, metadata: object) -> httpx.Response:
    return api.client.patch(
        f"/v1/documents/{document_id}", json={"metadata": metadata}, headers=_auth(tenant)
    )


def _query(api: IntakeApi, tenant: Tenant, body: dict[str, Any]) -> httpx.Response:
    return api.client.post(
        f"/v1/projects/{tenant.project_id}/query",
        json={"mode": "retrieve", "top_k": 10, **body},
        headers=_auth(tenant),
    )


def _listed(api: IntakeApi, tenant: Tenant, document_filter: object) -> set[str]:
    response = api.client.get(
        f"/v1/projects/{tenant.project_id}/documents",
        params={"filter": json.dumps(document_filter)},
        headers=_auth(tenant),
    )
    assert response.status_code == 200, response.text
    return {document["title"] for document in response.json()["documents"]}


def test_attributes_from_a_signed_upload_are_typed_and_filterable(intake_api: IntakeApi) -> None:
    tenant = make_tenant("meta-upload")
    data = b"The ferry timetable changes on the first of June."
    ticket = intake_api.client.post(
        f"/v1/projects/{tenant.project_id}/uploads",
        json={
            "filename": "timetables/ferry.txt",
            "content_type": "text/plain",
            "size": len(data),
            "metadata": {"route": "north", "year": 2026, "tags": ["ferry", "summer"]},
        },
        headers=_auth(tenant),
    )
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    assert body["headers"]["x-goog-meta-route"] == "north"
    unsigned = {k: v for k, v in body["headers"].items() if not k.startswith("x-goog-meta-")}
    refused = httpx.put(body["upload_url"], content=data, headers=unsigned, timeout=30)
    assert refused.status_code == 403, "the attributes are part of the signature"
    put = httpx.put(body["upload_url"], content=data, headers=body["headers"], timeout=30)
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + 60
    while True:
        listing = intake_api.client.get(
            f"/v1/projects/{tenant.project_id}/documents", headers=_auth(tenant)
        ).json()["documents"]
        if listing and listing[0]["status"] == "ready":
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.2)
    attributes = listing[0]["attributes"]
    assert {k: attributes[k] for k in ("route", "year", "tags")} == {
        "route": "north",
        "year": 2026,
        "tags": ["ferry", "summer"],
    }
    assert attributes["path"] == "timetables/ferry.txt"
    assert attributes["folder"] == "timetables" and attributes["file_type"] == "text"
    bad = intake_api.client.post(
        f"/v1/projects/{tenant.project_id}/uploads",
        json={
            "filename": "x.txt",
            "content_type": "text/plain",
            "size": 3,
            "metadata": {"year": "soon"},
        },
        headers=_auth(tenant),
    )
    assert bad.status_code == 422 and "metadata.year" in bad.json()["error"]["message"]


def test_patch_changes_attributes_without_reembedding_and_concurrent_patches_all_apply(
    intake_api: IntakeApi,
) -> None:
    tenant = make_tenant("meta-patch")
    document = _text_document(
        intake_api, tenant, "Lease", "The lease of hall B ends in 2027.", {"department": "legal"}
    )
    chunks_before = document["chunk_count"]
    patched = _patch(intake_api, tenant, str(document["id"]), {"year": 2025, "department": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["attributes"].get("year") == 2025
    assert "department" not in patched.json()["attributes"], "null removes the object's own"
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda n: _patch(intake_api, tenant, str(document["id"]), {f"k{n}": f"v{n}"}),
                range(6),
            )
        )
    assert all(answer.status_code == 200 for answer in answers)
    final = intake_api.client.get(f"/v1/documents/{document['id']}", headers=_auth(tenant)).json()
    assert {f"k{n}" for n in range(6)} <= set(final["attributes"]), "no patch was lost"
    assert final["chunk_count"] == chunks_before and final["last_job"]["attempts"] == 1
    conflict = _patch(intake_api, tenant, str(document["id"]), {"year": "next"})
    assert conflict.status_code == 422
    assert conflict.json()["error"]["message"].startswith("metadata.year: is a number")
    missing = _patch(intake_api, make_tenant("other"), str(document["id"]), {"a": "b"})
    assert missing.status_code == 404


def test_filtered_questions_and_listings_over_http(intake_api: IntakeApi) -> None:
    tenant = make_tenant("meta-filter")
    for title, department, year in (
        ("Legal lease 2025", "legal", 2025),
        ("Legal lease 2024", "legal", 2024),
        ("HR lease note", "hr", 2025),
    ):
        _text_document(
            intake_api,
            tenant,
            title,
            f"{title}: the lease of the harbour warehouse is renewed every year.",
            {"department": department, "year": year},
        )
    only = {
        "andAll": [
            {"equals": {"key": "department", "value": "legal"}},
            {"greaterThanOrEquals": {"key": "year", "value": 2025}},
        ]
    }
    assert _listed(intake_api, tenant, only) == {"Legal lease 2025"}
    answer = _query(intake_api, tenant, {"question": "When is the lease renewed?", "filter": only})
    assert answer.status_code == 200, answer.text
    citations = answer.json()["citations"]
    assert citations and {c["title"] for c in citations} == {"Legal lease 2025"}
    assert citations[0]["attributes"]["department"] == "legal"
    everything = _query(intake_api, tenant, {"question": "When is the lease renewed?"}).json()
    assert {c["title"] for c in everything["citations"]} == {
        "Legal lease 2025",
        "Legal lease 2024",
        "HR lease note",
    }
    bad = _query(
        intake_api,
        tenant,
        {"question": "x", "filter": {"andAll": [{"equals": {"key": "year", "value": "2025"}}]}},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["message"] == "filter.andAll[0].equals.value: must be a number"
    listing = intake_api.client.get(
        f"/v1/projects/{tenant.project_id}/documents",
        params={"filter": "{not json"},
        headers=_auth(tenant),
    )
    assert listing.status_code == 422 and listing.json()["error"]["code"] == "invalid_filter"
