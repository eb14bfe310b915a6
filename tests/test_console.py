"""The console over HTTP: its files and headers, the API routes it needs, uploads from a browser.

The browser itself drives the console in tests/test_console_browser.py; these tests check what
the server promises: a strict Content-Security-Policy on every console file, a fixed set of
files (nothing else under /console reaches the disk), small assets, the files inside the
function archive, `GET /v1/projects` and `POST /v1/documents/{id}/reprocess` scoped by team,
and the local upload gateway answering a browser's CORS preflight.
"""

from __future__ import annotations

import re
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from common.localstack.processes import free_port
from common.localstack.upload_gateway import UploadGateway
from common.platform import packaging
from common.platform.config import Settings
from common.platform.db import transaction
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus
from common.query.console import serve
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import QueryApi, insert_document

ASSET_BUDGET_BYTES = 200_000
EXPECTED_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' http://127.0.0.1:9; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)


def console_files() -> list[Path]:
    return sorted(p for p in serve.ASSET_DIR.iterdir() if p.is_file())


def test_console_page_is_served_with_a_strict_policy(query_api: QueryApi) -> None:
    for path in ("/console", "/console/", "/console/index.html"):
        response = query_api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == EXPECTED_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "x-request-id" in response.headers
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert '<script type="module" src="/console/app.js">' in response.text


def test_every_file_the_page_names_is_served_with_its_type(query_api: QueryApi) -> None:
    """No inline script or style: everything the page loads is a file of this origin."""
    page = query_api.client.get("/console").text
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"
    named = set(re.findall(r'(?:src|href)="/console/([^"]+)"', page))
    imported: set[str] = set()
    for path in console_files():
        if path.suffix == ".js":
            imported |= set(re.findall(r'from "\./([a-z]+\.js)"', path.read_text()))
    assert {"app.js", "console.css"} <= named
    types = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
    for name in sorted(named | imported | {serve.FORMATS_ASSET}):
        response = query_api.client.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(types[Path(name).suffix]), name
        assert response.headers["x-content-type-options"] == "nosniff"
    served_js = {p.name for p in console_files() if p.suffix == ".js"}
    assert served_js == imported | {"app.js"}, "every module is used, every used one exists"


def test_console_assets_stay_under_200_kb(query_api: QueryApi) -> None:
    total = sum(len(query_api.client.get(f"/console/{name}").content) for name in serve.assets())
    on_disk = sum(p.stat().st_size for p in console_files())
    print(f"console assets: {total} bytes served, {on_disk} on disk")
    assert total < ASSET_BUDGET_BYTES
    assert on_disk < ASSET_BUDGET_BYTES


def test_console_scripts_never_parse_strings_as_html() -> None:
    """Untrusted text is set with textContent / text nodes only (Trusted Types enforce it)."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser|eval\(|new Function"
    )
    for path in console_files():
        if path.suffix == ".js":
            assert not forbidden.search(path.read_text()), path.name


def test_unknown_console_paths_are_404_and_other_methods_405(query_api: QueryApi) -> None:
    for path in ("/console/nope.js", "/console/../pyproject.toml", "/console/assets/app.js"):
        response = query_api.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    response = query_api.client.post("/console", content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_an_unchanged_asset_is_revalidated_with_304(query_api: QueryApi) -> None:
    first = query_api.client.get("/console/app.js")
    again = query_api.client.get(
        "/console/app.js", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["content-security-policy"] == first.headers["content-security-policy"]


def test_uploads_may_connect_to_gcs_in_the_cloud_and_the_gateway_locally() -> None:
    cloud = serve.content_security_policy(Settings(signed_url_endpoint=None))
    assert "connect-src 'self' https://storage.googleapis.com;" in cloud
    local = serve.content_security_policy(
        Settings(signed_url_endpoint="http://127.0.0.1:9024/some/path")
    )
    assert "connect-src 'self' http://127.0.0.1:9024;" in local


def test_formats_asset_follows_the_table_of_formats() -> None:
    import json

    document = json.loads(serve.formats_document())
    assert document["extensions"][".pdf"] == "application/pdf"
    assert document["extensions"][".jpg"] == "image/jpeg"
    assert document["extensions"][".md"] == "text/markdown"
    assert "application/pdf" in document["types"]


def test_the_function_archive_carries_the_console(tmp_path: Path) -> None:
    archive = packaging.build_source_archive(tmp_path)
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        for path in console_files():
            member = f"common/query/console/assets/{path.name}"
            assert member in names
            assert zipped.read(member) == path.read_bytes()
    assert "common/query/console/serve.py" in names


def _headers(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def test_projects_lists_the_teams_own_projects_with_document_counts(
    query_api: QueryApi, database_url: str
) -> None:
    tenant = make_tenant("console")
    other = make_tenant("console-other")
    insert_document(tenant, "Ready one", ["Kites fly best in steady wind."])
    insert_document(tenant, "Broken one", ["Nothing useful."], status=DocumentStatus.FAILED)
    insert_document(other, "Not yours", ["Secret of the other team."])
    response = query_api.client.get("/v1/projects", headers=_headers(tenant))
    assert response.status_code == 200, response.text
    assert response.headers["ratelimit-policy"].startswith('"per-key";q=')
    projects = response.json()["projects"]
    assert [p["id"] for p in projects] == [str(tenant.project_id)]
    counts = projects[0]["documents"]
    assert counts == {"total": 2, "uploaded": 0, "processing": 0, "ready": 1, "failed": 1}
    assert query_api.client.get("/v1/projects").status_code == 401
    refused = query_api.client.get("/v1/projects?limit=5", headers=_headers(tenant))
    assert refused.status_code == 422


def test_reprocess_queues_the_documents_file_again_for_its_own_team_only(
    query_api: QueryApi, database_url: str
) -> None:
    tenant = make_tenant("reprocess")
    other = make_tenant("reprocess-other")
    document_id, _ = insert_document(
        tenant, "Failed scan", ["Unreadable."], status=DocumentStatus.FAILED
    )
    with transaction() as session:
        document = session.get_one(Document, document_id)
        document.generation = 7
        document.error_message = "could not read page 1"
    path = f"/v1/documents/{document_id}/reprocess"
    assert query_api.client.post(path, headers=_headers(other)).status_code == 404
    missing = f"/v1/documents/{uuid.uuid4()}/reprocess"
    assert query_api.client.post(missing, headers=_headers(tenant)).status_code == 404
    response = query_api.client.post(path, headers=_headers(tenant))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["document_id"] == str(document_id) and body["status"] == "uploaded"
    with transaction() as session:
        document = session.get_one(Document, document_id)
        job = session.get_one(IngestionJob, uuid.UUID(body["job_id"]))
        assert document.status is DocumentStatus.UPLOADED
        assert document.error_message is None
        assert job.status is JobStatus.QUEUED and job.generation == 7
        assert job.published_at is not None


def test_upload_gateway_answers_a_browsers_cors_preflight(tmp_path: Path) -> None:
    gateway = UploadGateway(free_port(), "http://127.0.0.1:9/")
    gateway.start()
    try:
        preflight = {
            "Origin": "http://127.0.0.1:8080",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type,x-goog-content-length-range",
        }
        allowed = httpx.options(f"{gateway.url}/bucket/p/report.pdf", headers=preflight)
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "*"
        assert allowed.headers["access-control-allow-methods"] == "PUT"
        assert allowed.headers["access-control-allow-headers"] == (
            "content-type, x-goog-content-length-range"
        )
        refused = httpx.options(
            f"{gateway.url}/bucket/p/report.pdf",
            headers={**preflight, "Access-Control-Request-Headers": "authorization"},
        )
        assert refused.status_code == 403
        unsigned = httpx.put(f"{gateway.url}/bucket/p/report.pdf", content=b"%PDF")
        assert unsigned.status_code == 403  # the signature is still checked
        assert unsigned.headers["access-control-allow-origin"] == "*"
    finally:
        gateway.stop()


def test_dev_banner_prints_the_console_url(capsys: pytest.CaptureFixture[str]) -> None:
    from common.cli.dev import DevPorts, _banner

    _banner(DevPorts(query=18080), Path("inbox"), {"project_id": "p", "api_key": "k"})
    assert "http://127.0.0.1:18080/console" in capsys.readouterr().out
