"""URL and manual sources over real HTTP: stored through the bucket, ingested, SSRF refused."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from common.platform.db import transaction
from common.platform.models import Document, DocumentChunk, IngestionJob, JobStatus
from common.platform.storage import get_blob_store
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.intake import IntakeApi, wait_until_settled
from tests.fixtures.stack import STACK_SETTINGS

BUCKET = STACK_SETTINGS["AI_INFRA_BUCKET"]
MAX_FILE_BYTES = int(STACK_SETTINGS["AI_INFRA_MAX_FILE_BYTES"])


def _auth(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def _post(client: httpx.Client, tenant: Tenant, body: dict[str, object]) -> httpx.Response:
    return client.post(
        f"/v1/projects/{tenant.project_id}/documents", json=body, headers=_auth(tenant)
    )


def _chunks(document_id: str) -> list[tuple[uuid.UUID, str]]:
    with transaction() as session:
        rows = session.execute(
            select(DocumentChunk.id, DocumentChunk.content)
            .where(DocumentChunk.document_id == uuid.UUID(document_id))
            .order_by(DocumentChunk.chunk_index)
        ).all()
    return [(row.id, row.content) for row in rows]


def _jobs(document_id: str) -> list[IngestionJob]:
    with transaction() as session:
        return list(
            session.scalars(
                select(IngestionJob)
                .where(IngestionJob.document_id == uuid.UUID(document_id))
                .order_by(IngestionJob.generation)
            )
        )


def test_url_source_is_fetched_stored_and_ingested_and_reposting_reuses_it(
    intake_api: IntakeApi,
) -> None:
    tenant = make_tenant("url")
    url = intake_api.pages.url("/page.html")
    response = _post(intake_api.client, tenant, {"url": url, "title": "Harbour tides"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ("uploaded", "processing", "ready")
    assert accepted["object"].startswith(f"gs://{BUCKET}/{tenant.project_id}/_sources/url/")
    name = accepted["object"].removeprefix(f"gs://{BUCKET}/")
    stored = get_blob_store().stat(BUCKET, name)
    assert stored is not None
    assert stored.metadata["source_type"] == "url"
    assert stored.metadata["source_url"] == url

    document = wait_until_settled(intake_api, tenant.api_key, accepted["document_id"])
    assert document["status"] == "ready", document
    assert (document["source_type"], document["source_url"]) == ("url", url)
    assert document["title"] == "Harbour tides"
    assert document["mime_type"] == "text/html"
    before = _chunks(accepted["document_id"])
    assert any("4.2 metres" in content for _, content in before)

    again = _post(intake_api.client, tenant, {"url": url, "title": "Harbour tides"})
    assert again.status_code == 202, again.text
    assert again.json()["document_id"] == accepted["document_id"]
    assert wait_until_settled(intake_api, tenant.api_key, accepted["document_id"])["status"] == (
        "ready"
    )
    jobs = _jobs(accepted["document_id"])
    assert len(jobs) == 2 and all(job.status is JobStatus.SUCCEEDED for job in jobs)
    assert _chunks(accepted["document_id"]) == before  # same rows: nothing was re-embedded


def test_changed_page_updates_the_same_document(intake_api: IntakeApi) -> None:
    tenant = make_tenant("url-change")
    url = intake_api.pages.url("/page.html?edition=2")
    intake_api.pages.versions.pop("/page.html", None)
    first = _post(intake_api.client, tenant, {"url": url}).json()
    assert wait_until_settled(intake_api, tenant.api_key, first["document_id"])["title"] == url
    intake_api.pages.versions["/page.html"] = "<p>The lock gates close at 18:40 daily.</p></body>"
    try:
        second = _post(intake_api.client, tenant, {"url": url}).json()
        assert second["document_id"] == first["document_id"]
        wait_until_settled(intake_api, tenant.api_key, second["document_id"])
        assert "18:40" in " ".join(content for _, content in _chunks(second["document_id"]))
    finally:
        intake_api.pages.versions.pop("/page.html", None)


def test_redirects_on_the_named_host_are_followed(intake_api: IntakeApi) -> None:
    tenant = make_tenant("url-redirect")
    target = intake_api.pages.url("/notes.md")
    url = intake_api.pages.url(f"/redirect?status=301&to={quote(target, safe='')}")
    response = _post(intake_api.client, tenant, {"url": url})
    assert response.status_code == 202, response.text
    document = wait_until_settled(intake_api, tenant.api_key, response.json()["document_id"])
    assert document["status"] == "ready"
    assert document["source_url"] == url
    assert "14 litres" in " ".join(c for _, c in _chunks(response.json()["document_id"]))


def test_manual_text_is_stored_and_ingested_and_reposting_the_title_updates_it(
    intake_api: IntakeApi,
) -> None:
    tenant = make_tenant("manual")
    body = {"title": "Ferry rules", "text": "# Ferry\n\nBicycles ride free on the 07:15 ferry."}
    response = _post(intake_api.client, tenant, {**body, "mime_type": "text/markdown"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert "/_sources/manual/" in accepted["object"]
    document = wait_until_settled(intake_api, tenant.api_key, accepted["document_id"])
    assert document["status"] == "ready", document
    assert (document["source_type"], document["source_url"]) == ("manual", None)
    assert (document["title"], document["mime_type"]) == ("Ferry rules", "text/markdown")

    changed = _post(intake_api.client, tenant, {**body, "text": "Dogs ride free on the ferry."})
    assert changed.json()["document_id"] == accepted["document_id"]
    wait_until_settled(intake_api, tenant.api_key, accepted["document_id"])
    assert "Dogs ride free" in " ".join(c for _, c in _chunks(accepted["document_id"]))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://127.9.9.9:8080/x", "loopback"),
        ("http://localhost/", "localhost resolves to a loopback address"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://169.254.169.254/computeMetadata/v1/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.0.0.8/", "private"),
        ("http://172.16.4.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://100.64.0.1/", "shared"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
    ],
)
def test_urls_that_reach_internal_addresses_are_refused(
    intake_api: IntakeApi, url: str, reason: str
) -> None:
    tenant = make_tenant("ssrf")
    response = _post(intake_api.strict, tenant, {"url": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "url_not_allowed", error
    assert reason in error["message"]


def test_the_local_page_server_itself_is_refused_by_default(intake_api: IntakeApi) -> None:
    tenant = make_tenant("ssrf-local")
    response = _post(intake_api.strict, tenant, {"url": intake_api.pages.url("/page.html")})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "url_not_allowed"


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("http://169.254.169.254/computeMetadata/v1/", "redirect to 169.254.169.254"),
        ("http://10.1.2.3/admin", "redirect to 10.1.2.3 is a private address"),
        ("http://[::ffff:10.1.2.3]/", "private"),
        ("LOOPBACK", "redirect to 127.0.0.1 is a loopback address"),
        ("http://localhost:1/", "redirect to localhost resolves to a loopback address"),
    ],
)
def test_redirects_to_internal_addresses_are_refused(
    intake_api: IntakeApi, to: str, reason: str
) -> None:
    """Even where loopback URLs are allowed, a redirect may not leave the named host and port."""
    if to == "LOOPBACK":  # another local service: the query function's own port
        to = str(intake_api.client.base_url).rstrip("/") + "/v1/health"
    tenant = make_tenant("ssrf-redirect")
    url = intake_api.pages.url(f"/redirect?to={quote(to, safe='')}")
    response = _post(intake_api.client, tenant, {"url": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "url_not_allowed", error
    assert reason in error["message"]


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        ({"url": "ftp://example.com/file.txt"}, "invalid_url", "only http and https"),
        ({"url": "file:///etc/passwd"}, "invalid_url", "only http and https"),
        ({"url": "http://user:pw@example.com/"}, "invalid_url", "credentials"),
        ({"url": "http:///nohost"}, "invalid_url", "no host"),
        ({"url": "http://no-such-host.invalid/"}, "fetch_failed", "does not resolve"),
        ({"url": "PAGES/missing"}, "fetch_failed", "answered 404"),
        ({"url": "PAGES/clip.mp4"}, "unsupported_type", "video/mp4"),
        ({"url": f"PAGES/big.txt?bytes={MAX_FILE_BYTES + 1}"}, "file_too_large", "file limit"),
        ({"url": "PAGES/page.html", "text": "both"}, "validation_error", "either url or text"),
        ({"text": "no title"}, "validation_error", "title"),
        ({"title": "blank", "text": "   "}, "validation_error", "blank"),
        ({"title": "t", "text": "x", "mime_type": "application/pdf"}, "validation_error", "mime"),
        ({}, "validation_error", "either url or text"),
    ],
)
def test_bad_sources_are_refused_naming_the_reason(
    intake_api: IntakeApi, body: dict[str, object], code: str, text: str
) -> None:
    tenant = make_tenant("bad-source")
    if isinstance(body.get("url"), str):
        body = {**body, "url": str(body["url"]).replace("PAGES", intake_api.pages.url(""))}
    response = _post(intake_api.client, tenant, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert text in error["message"]
    with transaction() as session:
        stored = session.scalar(select(Document.id).where(Document.project_id == tenant.project_id))
    assert stored is None
