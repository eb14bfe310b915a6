"""Session-wide real components: one embedded Postgres + pgvector per test session.

Every test gets isolation from fresh teams/projects (see `tests.fixtures.factories`), never from
mocks. Fixtures for the emulators and served functions live in `tests/fixtures/` and are
registered below.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.localstack import embedded_pg
from common.platform.config import get_settings
from common.platform.db import reset_engine

pytest_plugins = [
    "tests.fixtures.factories",
    "tests.fixtures.model_standins",
    "tests.fixtures.stack",
    "tests.fixtures.query",
    "tests.fixtures.intake",
]

TEST_DATABASE = "ai_infra_test"


@pytest.fixture(scope="session")
def embedded_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[embedded_pg.EmbeddedPostgres]:
    server = embedded_pg.start(tmp_path_factory.mktemp("pg"), database=TEST_DATABASE)
    yield server
    reset_engine()
    server.stop()


@pytest.fixture(scope="session")
def database_url(embedded_server: embedded_pg.EmbeddedPostgres) -> Iterator[str]:
    """A migrated database; its URL is exported so subprocesses (functions) share it."""
    from common.platform import migrate

    os.environ["AI_INFRA_DATABASE_URL"] = embedded_server.url
    # Fair scheduling caps how many jobs run at once over all teams: the suite's tests must not
    # wait on what others left running. Its own tests set teams' limits, or settings, themselves.
    os.environ.setdefault("AI_INFRA_INGEST_CAPACITY", "1000")
    get_settings.cache_clear()
    reset_engine()
    migrate.upgrade()
    yield embedded_server.url


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
