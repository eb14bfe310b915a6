"""Health and failure statuses of the served function when the database is not what it needs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.localstack import embedded_pg
from tests.fixtures.query import serve_query


def _served(database_url: str, log_dir: Path) -> Iterator[httpx.Client]:
    child, url = serve_query(log_dir, {"AI_INFRA_DATABASE_URL": database_url})
    client = httpx.Client(base_url=url, timeout=30)
    try:
        yield client
    finally:
        client.close()
        child.stop()


@pytest.fixture(scope="module")
def unmigrated(
    embedded_server: embedded_pg.EmbeddedPostgres,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:
    """The function pointed at an empty database on the same server (never migrated)."""
    name = f"unmigrated_{uuid.uuid4().hex[:8]}"
    embedded_server.server.psql(f"CREATE DATABASE {name}")
    url = embedded_pg.url_for(embedded_server.socket_dir, name)
    yield from _served(url, tmp_path_factory.mktemp("unmigrated"))


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The function pointed at a socket where no database listens."""
    missing = tmp_path_factory.mktemp("no-db")
    url = f"postgresql+pg8000://postgres@/nothing?unix_sock={missing}/.s.PGSQL.5432"
    yield from _served(url, tmp_path_factory.mktemp("unreachable"))


def test_healthz_is_503_when_the_schema_is_not_migrated(unmigrated: httpx.Client) -> None:
    response = unmigrated.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "schema_outdated"
    assert response.headers["x-request-id"]


def test_unexpected_failures_are_500_without_internals(unmigrated: httpx.Client) -> None:
    """A missing table is a bug or a misconfiguration: 500, and no SQL in the body."""
    response = unmigrated.post(
        f"/v1/projects/{uuid.uuid4()}/query",
        json={"question": "anything"},
        headers={"Authorization": "Bearer aik_whatever"},
    )
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal error"}}


def test_database_outage_is_503(unreachable: httpx.Client) -> None:
    health = unreachable.get("/healthz")
    assert health.status_code == 503
    assert health.json()["error"]["code"] == "unavailable"
    query = unreachable.post(
        f"/v1/projects/{uuid.uuid4()}/query",
        json={"question": "anything"},
        headers={"Authorization": "Bearer aik_whatever"},
    )
    assert query.status_code == 503
    assert "pg8000" not in query.text and "nothing" not in query.text


def test_openapi_needs_no_database(unreachable: httpx.Client) -> None:
    assert unreachable.get("/v1/openapi.json").status_code == 200
