"""Signed uploads over real HTTP: the URL, the client's PUT, the finalize event, `ready`."""

from __future__ import annotations

import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from common.platform.signed_urls import (
    LocalUploadSigner,
    SignatureError,
    verify_local_put,
)
from common.platform.storage import get_blob_store
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.intake import IntakeApi, wait_until_settled
from tests.fixtures.stack import STACK_SETTINGS

MAX_FILE_BYTES = int(STACK_SETTINGS["AI_INFRA_MAX_FILE_BYTES"])
NOTES = b"# Pump notes\n\nThe bilge pump of the Marta runs at 12 bar and is serviced each May.\n"


def _auth(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def _ticket(api: IntakeApi, tenant: Tenant, **body: object) -> httpx.Response:
    return api.client.post(
        f"/v1/projects/{tenant.project_id}/uploads", json=body, headers=_auth(tenant)
    )


def _document_for(api: IntakeApi, tenant: Tenant, gcs_uri: str, timeout: float = 30) -> str:
    """The id of the document the finalize event creates for the object (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = api.client.get(
            f"/v1/projects/{tenant.project_id}/documents", headers=_auth(tenant)
        )
        for document in listing.json()["documents"]:
            if document["gcs_uri"] == gcs_uri:
                return str(document["id"])
        time.sleep(0.1)
    raise AssertionError(f"no document for {gcs_uri}\n{api.logs()}")


def test_signed_upload_put_is_ingested_to_ready(intake_api: IntakeApi) -> None:
    tenant = make_tenant("upload")
    response = _ticket(
        intake_api,
        tenant,
        filename="manuals/pump notes.md",
        content_type="text/markdown",
        size=len(NOTES),
    )
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["method"] == "PUT"
    assert ticket["document_path"] == "manuals/pump notes.md"
    name = f"{tenant.project_id}/manuals/pump notes.md"
    assert ticket["object"] == f"gs://{STACK_SETTINGS['AI_INFRA_BUCKET']}/{name}"
    assert ticket["headers"]["Content-Type"] == "text/markdown"
    expires = datetime.fromisoformat(ticket["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    assert "X-Goog-Signature=" in ticket["upload_url"]
    assert get_blob_store().stat(STACK_SETTINGS["AI_INFRA_BUCKET"], name) is None

    put = httpx.put(ticket["upload_url"], content=NOTES, headers=ticket["headers"], timeout=30)
    assert put.status_code == 200, put.text

    document_id = _document_for(intake_api, tenant, ticket["object"])
    document = wait_until_settled(intake_api, tenant.api_key, document_id)
    assert document["status"] == "ready", document
    assert document["source_type"] == "upload"
    assert document["title"] == "pump notes.md"
    assert document["chunk_count"] >= 1  # type: ignore[operator]
    answer = intake_api.client.post(
        f"/v1/projects/{tenant.project_id}/query",
        json={"question": "At what pressure does the bilge pump run?", "mode": "retrieve"},
        headers=_auth(tenant),
    )
    assert answer.status_code == 200, answer.text
    assert "12 bar" in answer.json()["citations"][0]["snippet"]


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("../escape.pdf", "'..'"),
        ("reports/../../escape.pdf", "'..'"),
        ("/etc/passwd.txt", "relative"),
        ("bell\x07.txt", "control characters"),
        ("line\nbreak.txt", "control characters"),
        ("rtl\u202etxt.pdf", "control characters"),
        ("folder\\file.txt", "use /"),
        ("a//b.txt", "empty"),
        ("x" * 300 + ".txt", "longer than"),
        ("_sources/url/forged", "reserved"),
    ],
)
def test_bad_filenames_are_refused_before_any_url_is_issued(
    intake_api: IntakeApi, filename: str, reason: str
) -> None:
    tenant = make_tenant("badname")
    response = _ticket(intake_api, tenant, filename=filename, content_type="text/plain", size=10)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_filename"
    assert reason in error["message"]
    assert "upload_url" not in response.text


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"content_type": "video/mp4", "size": 10}, "unsupported_type", "content_type"),
        ({"content_type": "application/zip", "size": 10}, "unsupported_type", "content_type"),
        (
            {"content_type": "text/plain\r\nX-Evil: 1", "size": 10},
            "validation_error",
            "content_type",
        ),
        ({"content_type": "text/plain", "size": MAX_FILE_BYTES + 1}, "file_too_large", "size"),
        ({"content_type": "text/plain", "size": 0}, "validation_error", "size"),
        ({"content_type": "text/plain"}, "validation_error", "size"),
    ],
)
def test_bad_types_and_sizes_are_refused_before_any_url_is_issued(
    intake_api: IntakeApi, body: dict[str, object], code: str, field: str
) -> None:
    tenant = make_tenant("badtype")
    response = _ticket(intake_api, tenant, filename="report.txt", **body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"].split(":")[0]) == (code, field)


def test_a_put_outside_the_signed_terms_is_refused_and_stores_nothing(
    intake_api: IntakeApi,
) -> None:
    tenant = make_tenant("terms")
    ticket = _ticket(
        intake_api, tenant, filename="terms.txt", content_type="text/plain", size=20
    ).json()
    bucket = STACK_SETTINGS["AI_INFRA_BUCKET"]
    url, headers = ticket["upload_url"], ticket["headers"]
    wrong_type = httpx.put(url, content=b"short", headers={**headers, "Content-Type": "text/html"})
    assert wrong_type.status_code == 403
    assert "SignatureDoesNotMatch" in wrong_type.text
    other_name = url.replace("terms.txt", "other.txt")
    assert httpx.put(other_name, content=b"short", headers=headers).status_code == 403
    widened = {**headers, "x-goog-content-length-range": "0,999999"}
    assert httpx.put(url, content=b"short", headers=widened).status_code == 403
    too_big = httpx.put(url, content=b"y" * 21, headers=headers)
    assert too_big.status_code == 400
    assert "EntityTooLarge" in too_big.text
    unsigned = url.split("?")[0]
    assert httpx.put(unsigned, content=b"short", headers=headers).status_code == 403
    assert get_blob_store().stat(bucket, f"{tenant.project_id}/terms.txt") is None


def test_an_expired_upload_url_is_refused() -> None:
    signed = LocalUploadSigner("http://127.0.0.1:1").sign_put(
        "bucket", "p/file.txt", "text/plain", 10, timedelta(minutes=1)
    )
    parts = urllib.parse.urlsplit(signed.url)
    headers = {k.lower(): v for k, v in signed.headers.items()} | {"host": parts.netloc}
    verify_local_put(parts.path, parts.query, headers)
    later = datetime.now(UTC) + timedelta(minutes=2)
    with pytest.raises(SignatureError, match="expired"):
        verify_local_put(parts.path, parts.query, headers, now=later)


def test_another_teams_project_is_not_found_on_the_new_routes(intake_api: IntakeApi) -> None:
    mine, theirs = make_tenant("mine"), make_tenant("theirs")
    for path, body in (
        ("uploads", {"filename": "a.txt", "content_type": "text/plain", "size": 5}),
        ("documents", {"title": "Note", "text": "Some text."}),
        ("documents", {"url": "http://127.0.0.1:9/page.html"}),
    ):
        response = intake_api.client.post(
            f"/v1/projects/{theirs.project_id}/{path}", json=body, headers=_auth(mine)
        )
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    bucket = STACK_SETTINGS["AI_INFRA_BUCKET"]
    assert get_blob_store().stat(bucket, f"{theirs.project_id}/a.txt") is None
