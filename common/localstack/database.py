"""Which Postgres a local command uses: the running dev stack's, or the embedded one started for it.

Local mode without `AI_INFRA_DATABASE_URL` names no database, so the `ai-infra` commands and
`alembic` come here: a running `ai-infra dev` lends its settings (dev.json); otherwise the
embedded Postgres in the local data folder (same data and pgvector build as `ai-infra dev`) runs
for the length of the block and stops afterwards (unless another process holds it too).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.platform.config import Mode, Settings, get_settings

URL_VARIABLE = "AI_INFRA_DATABASE_URL"


@dataclass(frozen=True)
class LocalDatabase:
    """A local database for one block: its SQLAlchemy URL and the settings that go with it."""

    url: str
    # The `AI_INFRA_*` variables to use it with: a running stack's whole set, or just the URL.
    environment: dict[str, str]
    # "dev stack" or "embedded" (started for this block).
    source: str


@contextmanager
def local_database(data_dir: Path) -> Iterator[LocalDatabase]:
    """The running dev stack's database in `data_dir`, else the embedded one for this block."""
    from common.localstack.state import running_stack_environment

    environment = running_stack_environment(data_dir)
    if environment is not None and environment.get(URL_VARIABLE):
        yield LocalDatabase(environment[URL_VARIABLE], environment, "dev stack")
        return

    from common.localstack import embedded_pg
    from common.platform.db import reset_engine

    with warnings.catch_warnings():
        # Its lock folder falls back to /tmp where XDG_RUNTIME_DIR is unset (root in containers).
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        server = embedded_pg.start(data_dir / "pg")
    try:
        yield LocalDatabase(server.url, {URL_VARIABLE: server.url}, "embedded")
    finally:
        # No pooled connection may outlive the server.
        reset_engine()
        server.stop()


def names_a_database(settings: Settings) -> bool:
    """Whether the settings say where the database is (a URL, or Cloud SQL in cloud mode)."""
    return settings.mode is Mode.CLOUD or bool(settings.database_url)


@contextmanager
def database_settings() -> Iterator[Settings]:
    """The settings with a database: as they are, or a local database's applied for the block.

    For standalone processes (alembic); the CLI switches its own environment in `connect`.
    Raises ConfigError when the settings are invalid (cloud mode without its database settings).
    """
    settings = get_settings()
    if names_a_database(settings):
        yield settings
        return
    with local_database(settings.local_data_dir) as database, _environment(database.environment):
        yield get_settings()


@contextmanager
def _environment(environment: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def psql_executable() -> str | None:
    """The embedded server's psql (same version as the server), else one on PATH."""
    try:
        import pgserver
    except ImportError:  # pragma: no cover - depends on the install
        return shutil.which("psql")
    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    return str(bundled) if bundled.exists() else shutil.which("psql")
