"""The query function over real HTTP: auth, validation, errors, request ids, health, OpenAPI."""

from __future__ import annotations

import json
import re
import socket
import uuid

import httpx
import pytest
from openapi_spec_validator import validate
from sqlalchemy import update

from common.platform.db import transaction
from common.platform.models import ApiKey, ApiKeyStatus
from common.query.api import ROUTES
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import Corpus, QueryApi

QUESTION = {"question": "What is part XK-4471B?", "mode": "retrieve"}


def _error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    if code is not None:
        assert body["error"]["code"] == code
    assert response.headers["x-request-id"]
    return str(body["error"]["message"])


def test_missing_malformed_and_unknown_keys_are_401(query_api: QueryApi, corpus: Corpus) -> None:
    project = corpus.tenant.project_id
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer aik_not-a-real-key"},
    ):
        response = query_api.client.post(
            f"/v1/projects/{project}/query", json=QUESTION, headers=headers
        )
        _error(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(query_api: QueryApi, database_url: str) -> None:
    tenant = make_tenant("revoked")
    assert query_api.post_query(tenant.project_id, QUESTION, tenant.api_key).status_code == 200
    with transaction() as session:
        key = session.get(ApiKey, tenant.api_key_id)
        assert key is not None and key.last_used_at is not None, "a used key records its use"
    with transaction() as session:
        session.execute(
            update(ApiKey).where(ApiKey.id == tenant.api_key_id).values(status=ApiKeyStatus.REVOKED)
        )
    _error(query_api.post_query(tenant.project_id, QUESTION, tenant.api_key), 401)


def test_another_teams_project_is_404_like_a_missing_one(
    query_api: QueryApi, corpus: Corpus
) -> None:
    """Same status, code and message: the response never hints that the project exists."""
    theirs = query_api.post_query(corpus.other.project_id, QUESTION, corpus.tenant.api_key)
    missing = query_api.post_query(uuid.uuid4(), QUESTION, corpus.tenant.api_key)
    assert _error(theirs, 404, "not_found") == _error(missing, 404, "not_found")
    listing = query_api.client.get(
        f"/v1/projects/{corpus.other.project_id}/documents",
        headers={"Authorization": f"Bearer {corpus.tenant.api_key}"},
    )
    _error(listing, 404, "not_found")


def test_results_only_ever_come_from_the_callers_project(
    query_api: QueryApi, corpus: Corpus
) -> None:
    """Both projects hold the same facts; each key sees only its own project's chunks."""
    for tenant, own in ((corpus.tenant, corpus.chunk_ids), (corpus.other, corpus.other_chunk_ids)):
        for mode in ("retrieve", "answer"):
            response = query_api.post_query(
                tenant.project_id,
                {"question": "What is part XK-4471B?", "mode": mode, "top_k": 50},
                tenant.api_key,
            )
            assert response.status_code == 200, response.text
            cited = {uuid.UUID(c["chunk_id"]) for c in response.json()["citations"]}
            assert cited, mode
            assert cited <= own


def _post_raw(
    query_api: QueryApi,
    tenant: Tenant,
    content: bytes,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = {"Authorization": f"Bearer {tenant.api_key}", **(headers or {})}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return query_api.client.post(
        f"/v1/projects/{tenant.project_id}/query", content=content, headers=all_headers
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "x" * 4001}, "question"),
        ({"question": 42}, "question"),
        ({"question": "q", "top_k": 0}, "top_k"),
        ({"question": "q", "top_k": 51}, "top_k"),
        ({"question": "q", "top_k": "5"}, "top_k"),
        ({"question": "q", "top_k": 2.5}, "top_k"),
        ({"question": "q", "min_score": -0.1}, "min_score"),
        ({"question": "q", "min_score": 1.5}, "min_score"),
        ({"question": "q", "mode": "summarise"}, "mode"),
        ({"question": "q", "system_prompt": ""}, "system_prompt"),
        ({"question": "q", "system_prompt": "s" * 8001}, "system_prompt"),
        ({"question": "q", "temperature": 2.5}, "temperature"),
        ({"question": "q", "temperature": -1}, "temperature"),
        ({"question": "q", "max_output_tokens": 0}, "max_output_tokens"),
        ({"question": "q", "max_output_tokens": 100000}, "max_output_tokens"),
        ({"question": "q", "document_ids": []}, "document_ids"),
        ({"question": "q", "document_ids": ["not-a-uuid"]}, "document_ids.0"),
        ({"question": "q", "document_ids": [str(uuid.uuid4())] * 101}, "document_ids"),
        ({"question": "q", "stream": "yes"}, "stream"),
        ({"question": "q", "stream": True, "mode": "retrieve"}, "stream"),
        ({"question": "q", "colour": "blue"}, "colour"),
        ([{"question": "q"}], "body"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    query_api: QueryApi, corpus: Corpus, body: object, field: str
) -> None:
    response = _post_raw(query_api, corpus.tenant, json.dumps(body).encode())
    message = _error(response, 422, "validation_error")
    assert message.startswith(f"{field}:") or f"; {field}:" in message, message


def test_validation_message_never_echoes_the_values(query_api: QueryApi, corpus: Corpus) -> None:
    body = {"question": "q", "top_k": "secret-looking-value"}
    message = _error(_post_raw(query_api, corpus.tenant, json.dumps(body).encode()), 422)
    assert "secret-looking-value" not in message


@pytest.mark.parametrize("content", [b"{", b"not json", b"", b'{"question": "q",}', b"\xff\xfe"])
def test_malformed_json_is_400(query_api: QueryApi, corpus: Corpus, content: bytes) -> None:
    _error(_post_raw(query_api, corpus.tenant, content), 400, "invalid_json")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(
    query_api: QueryApi, corpus: Corpus, content_type: str | None
) -> None:
    response = _post_raw(query_api, corpus.tenant, json.dumps(QUESTION).encode(), content_type)
    _error(response, 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(query_api: QueryApi, corpus: Corpus) -> None:
    content = json.dumps(QUESTION).encode()
    response = _post_raw(query_api, corpus.tenant, content, "application/json; charset=utf-8")
    assert response.status_code == 200, response.text


def test_oversized_body_is_413(query_api: QueryApi, corpus: Corpus) -> None:
    """Declared by Content-Length, and streamed without one (chunked)."""
    content = json.dumps({"question": "q", "system_prompt": "x" * 70_000}).encode()
    _error(_post_raw(query_api, corpus.tenant, content), 413, "payload_too_large")

    def chunks():
        for start in range(0, len(content), 8192):
            yield content[start : start + 8192]

    chunked = query_api.client.post(
        f"/v1/projects/{corpus.tenant.project_id}/query",
        content=chunks(),
        headers={
            "Authorization": f"Bearer {corpus.tenant.api_key}",
            "Content-Type": "application/json",
        },
    )
    _error(chunked, 413, "payload_too_large")


def test_unknown_route_is_404_and_wrong_method_is_405(query_api: QueryApi, corpus: Corpus) -> None:
    _error(query_api.client.get("/v2/nothing"), 404, "not_found")
    wrong = query_api.client.get(f"/v1/projects/{corpus.tenant.project_id}/query")
    _error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"
    document = query_api.client.put(f"/v1/documents/{uuid.uuid4()}")
    _error(document, 405)
    assert document.headers["allow"] == "DELETE, GET, PATCH"


def test_path_ids_that_are_not_uuids_are_404(query_api: QueryApi, corpus: Corpus) -> None:
    response = query_api.post_query("not-a-uuid", QUESTION, corpus.tenant.api_key)  # type: ignore[arg-type]
    _error(response, 404, "not_found")


def test_request_id_is_echoed_when_well_formed_and_generated_otherwise(
    query_api: QueryApi, corpus: Corpus
) -> None:
    mine = "req-1234.abcd_EF"
    ok = query_api.post_query(
        corpus.tenant.project_id, QUESTION, corpus.tenant.api_key, headers={"X-Request-ID": mine}
    )
    assert ok.headers["x-request-id"] == mine
    assert ok.json()["request_id"] == mine
    for bad in ("short", "has space in it", "x" * 129, "semi;colon;value"):
        response = query_api.client.get("/healthz", headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"] != bad
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    error = query_api.client.get("/nowhere", headers={"X-Request-ID": mine})
    assert error.headers["x-request-id"] == mine


@pytest.mark.parametrize("path", ["/healthz", "/v1/health"])
def test_health_reports_database_and_schema(query_api: QueryApi, path: str) -> None:
    response = query_api.client.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["schema_revision"]


def test_openapi_document_validates_and_lists_exactly_the_served_routes(
    query_api: QueryApi,
) -> None:
    response = query_api.client.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    listed = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert listed == {(route.method, route.template) for route in ROUTES}
    # Every listed operation is really served: not a 404 for an unknown route, nor a 405.
    for method, path in listed:
        concrete = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)
        response = query_api.client.request(method, concrete)
        assert response.status_code not in (405,), (method, path)
        if response.status_code == 404:
            assert "no route" not in response.json()["error"]["message"], (method, path)
    query = document["paths"]["/v1/projects/{project_id}/query"]["post"]
    assert {"200", "401", "404", "413", "415", "422", "429"} <= set(query["responses"])
    schema = document["components"]["schemas"]["QueryRequest"]
    assert schema["properties"]["top_k"]["anyOf"][0]["maximum"] == 50


UNSTORABLE = "must not contain NUL"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"question": "a\\u0000b"}', "question"),
        (b'{"question": "q", "system_prompt": "be\\u0000brief"}', "system_prompt"),
        (b'{"question": "a\\ud800b"}', "question"),  # a lone surrogate: valid JSON syntax
        (b'{"question": "q", "system_prompt": "\\udc00"}', "system_prompt"),
        (b'{"question": "q", "document_ids": ["\\ud800"]}', "document_ids.0"),
    ],
)
def test_nul_and_lone_surrogates_are_422_naming_the_field(
    query_api: QueryApi, corpus: Corpus, content: bytes, field: str
) -> None:
    """Postgres text cannot hold NUL and UTF-8 cannot encode a lone surrogate: refused up front."""
    message = _error(_post_raw(query_api, corpus.tenant, content), 422, "validation_error")
    assert message.startswith(f"{field}:") or f"; {field}:" in message, message


def test_nul_in_the_documents_cursor_or_a_path_id_is_not_a_server_error(
    query_api: QueryApi, corpus: Corpus
) -> None:
    headers = {"Authorization": f"Bearer {corpus.tenant.api_key}"}
    listing = query_api.client.get(
        f"/v1/projects/{corpus.tenant.project_id}/documents?cursor=a%00b", headers=headers
    )
    assert _error(listing, 422, "validation_error").startswith(f"cursor: {UNSTORABLE}")
    _error(query_api.client.get("/v1/documents/%00", headers=headers), 404, "not_found")
    _error(query_api.client.get("/v1/projects/%00/documents", headers=headers), 404)


def test_a_key_with_nul_or_non_ascii_is_401(query_api: QueryApi, corpus: Corpus) -> None:
    """The app refuses such a key before any lookup; over HTTP the server may refuse NUL first."""
    import flask

    from common.query.api import handle

    path = f"/v1/projects/{corpus.tenant.project_id}/documents"
    for key in (f"{corpus.tenant.api_key}\x00", "a\x00b", "\x01"):
        with flask.Flask(__name__).test_request_context(
            path, headers={"Authorization": f"Bearer {key}"}
        ):
            response = handle(flask.request)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert json.loads(response.get_data())["error"]["code"] == "unauthenticated"
    latin = query_api.client.get(
        path, headers={b"Authorization": "Bearer \xe9t\xe9".encode("latin-1")}
    )
    _error(latin, 401, "unauthenticated")
    host, port = query_api.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\x00b\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        status_line = connection.makefile("rb").readline()
    assert status_line.split()[1] in (b"400", b"401"), status_line  # never a 500
