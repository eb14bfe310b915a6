"""The engine and the one way to open a unit of work.

Cloud: the Cloud SQL Python Connector with pg8000 and IAM database authentication; the lazy
refresh strategy suits serverless (no background refresh while the CPU is throttled between
requests) and the pool stays small because every instance of every function holds one.
Local: a plain `postgresql+pg8000://` URL (the embedded Postgres or any other).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from common.platform.config import Settings, get_settings

if TYPE_CHECKING:
    from google.cloud.sql.connector import Connector

_lock = threading.Lock()
_engine: Engine | None = None
_sessionmaker: sessionmaker[Session] | None = None
_connector: Connector | None = None


# SQLSTATE classes of a server that is restarting or unreachable (not of a bad statement):
# 08 connection exception, 57P01-57P03 shutting down / crashed / "starting up" (57P03, answered
# to connections while a restarted Postgres replays its WAL).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def sqlstate(error: BaseException) -> str | None:
    """The server's SQLSTATE of a failed statement (pg8000 puts the error fields first)."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(error, DBAPIError):
        return None
    fields = error.orig.args[0] if error.orig is not None and error.orig.args else None
    return str(fields["C"]) if isinstance(fields, dict) and "C" in fields else None


def is_database_unavailable(error: BaseException) -> bool:
    """A connection-level failure worth waiting out or retrying, never an SQL bug."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    code = sqlstate(error)
    return code is not None and code.startswith(_UNAVAILABLE_SQLSTATES)


class SchemaMismatchError(RuntimeError):
    """The database was migrated for another embedding dimension than the configured model's."""


def build_engine(settings: Settings) -> Engine:
    """Build an engine for these settings (no connection is opened yet)."""
    from common.platform import pg8000_statements

    pg8000_statements.install()
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
    }
    if settings.database_url:
        return create_engine(settings.database_url, **pool)
    return create_engine("postgresql+pg8000://", creator=_cloud_sql_creator(settings), **pool)


def _cloud_sql_creator(settings: Settings) -> Any:
    from google.cloud.sql.connector import Connector, IPTypes, RefreshStrategy

    global _connector
    if _connector is None:
        _connector = Connector(refresh_strategy=RefreshStrategy.LAZY)
    connector = _connector
    instance = settings.db_instance_connection_name
    if instance is None:
        raise RuntimeError("AI_INFRA_DB_INSTANCE_CONNECTION_NAME is required without a URL")
    ip_type = IPTypes[settings.db_ip_type.name]

    def connect() -> Any:
        return connector.connect(
            instance,
            "pg8000",
            user=settings.db_iam_user,
            db=settings.db_name,
            enable_iam_auth=True,
            ip_type=ip_type,
        )

    return connect


def get_engine() -> Engine:
    """The process-wide engine, built lazily on first use (cheap cold starts)."""
    global _engine, _sessionmaker
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = build_engine(get_settings())
                _sessionmaker = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def reset_engine() -> None:
    """Dispose the engine (tests and the CLI switch databases with this)."""
    global _engine, _sessionmaker
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _sessionmaker = None


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commits when the block ends, rolls back if it raises."""
    get_engine()
    assert _sessionmaker is not None
    with _sessionmaker() as session, session.begin():
        yield session


def database_embedding_dimension(session: Session) -> int | None:
    """The dimension of `document_chunks.embedding` as migrated, or None before migration."""
    row = session.execute(
        text(
            "SELECT a.atttypmod FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relname = 'document_chunks' AND a.attname = 'embedding' "
            "AND pg_table_is_visible(c.oid)"
        )
    ).first()
    return int(row[0]) if row else None


def check_embedding_dimension(settings: Settings | None = None) -> None:
    """Fail clearly at start-up when the database and the configured model disagree on N."""
    settings = settings or get_settings()
    with transaction() as session:
        actual = database_embedding_dimension(session)
    expected = settings.resolved_embedding_dim
    if actual is not None and actual != expected:
        raise SchemaMismatchError(
            f"the database stores {actual}-dimensional embeddings but the configured model "
            f"{settings.resolved_embedding_model!r} produces {expected} "
            "(AI_INFRA_EMBEDDING_MODEL / AI_INFRA_EMBEDDING_DIM); use a database migrated "
            "for this model"
        )
