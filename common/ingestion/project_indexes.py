"""An HNSW index of its own for every project searched through HNSW (the sweep keeps them).

A filtered scan of the one table-wide HNSW index walks other tenants' vectors and drops them:
at a million chunks a 134,000-chunk tenant got recall@10 0.81-0.96 from it, depending on the
questions, and a 22,000-64,000-chunk one 0.95, because the graph near a question is mostly
someone else's. The same tenant's vectors in a graph of their own: recall@10 1.000 at
ef_search 100 in 1.3 ms (bench/query.py --skew zipf). So a project above
`exact_search_max_chunks` (smaller ones are ranked exactly, recall 1.0) gets a partial index
`WHERE project_id = '<id>'` with the table index's own method and parameters; Postgres picks it
for that project's queries by itself (the statement's project_id is a bound value, planned with
it). Its vectors are then kept in two graphs: a big tenant's writes cost about twice the HNSW
upkeep.

`sync_project_indexes` builds what is missing (CONCURRENTLY: writers are never blocked; at most
`max_builds` per call so a sweep stays short), drops the indexes of projects that are gone or
shrank below half the threshold (so a project near it does not flap), and rebuilds an index a
crashed build left invalid. A session advisory lock per index keeps concurrent sweeps from
building the same one. Safe to run repeatedly and concurrently.
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text

from common.platform.db import get_engine
from common.platform.models import DocumentChunk
from common.platform.spaces import TABLE_PREFIX as SPACE_TABLE_PREFIX

logger = logging.getLogger(__name__)

PREFIX = "ix_chunks_hnsw_project_"
TABLE_INDEX = "ix_document_chunks_embedding_hnsw"
BUILD_MEMORY = "512MB"  # maintenance_work_mem for one build: a 130,000-chunk graph fits
# A build's expected time per chunk: 0.21 ms measured (134,072 chunks in 28 s, six projects of
# 330,000 in 65 s, 2 cores), with a margin for a busier database.
BUILD_SECONDS_PER_CHUNK = 0.0003


def index_name(project_id: uuid.UUID) -> str:
    """`ix_chunks_hnsw_project_<32 hex>`: 55 characters, under Postgres' 63."""
    return PREFIX + project_id.hex


def include_in_autogenerate(
    object_: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's include_object: project indexes and embedding spaces' tables (and their indexes)
    are data, not schema; never drop them."""
    if not reflected:
        return True
    name = name or ""
    if type_ == "index":
        return not name.startswith((PREFIX, f"ix_{SPACE_TABLE_PREFIX}"))
    return not (type_ == "table" and name.startswith(SPACE_TABLE_PREFIX))


def project_of(name: str) -> uuid.UUID | None:
    if not name.startswith(PREFIX):
        return None
    try:
        return uuid.UUID(hex=name.removeprefix(PREFIX))
    except ValueError:
        return None


@dataclass
class IndexSync:
    build_seconds: dict[str, float] = field(default_factory=dict)  # built, in build order
    dropped: list[str] = field(default_factory=list)
    pending: int = 0  # wanted but left for a later call (max_builds) or being built elsewhere
    too_big: list[str] = field(default_factory=list)  # over max_build_seconds: left to an operator

    @property
    def built(self) -> list[str]:
        return list(self.build_seconds)


def _index_definition(project_id: uuid.UUID, name: str) -> str:
    """The table-wide index's method, operator class and parameters, for one project's rows."""
    index = next(i for i in DocumentChunk.__table__.indexes if i.name == TABLE_INDEX)  # type: ignore[attr-defined]
    options = index.dialect_options["postgresql"]
    with_ = ", ".join(f"{key} = {int(value)}" for key, value in options["with"].items())
    opclass = options["ops"]["embedding"]
    # The id is a UUID we format ourselves: safe to inline (CREATE INDEX takes no parameters).
    return (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON document_chunks "
        f"USING {options['using']} (embedding {opclass}) WITH ({with_}) "
        f"WHERE project_id = '{project_id}'"
    )


def _existing(connection: Connection) -> dict[str, bool]:
    """Project indexes on the table: name -> valid."""
    rows = connection.execute(
        text(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST('document_chunks' AS regclass) "
            "AND c.relname LIKE :prefix"
        ),
        {"prefix": PREFIX + "%"},
    ).all()
    return {str(row.relname): bool(row.indisvalid) for row in rows}


def _project_sizes(connection: Connection) -> dict[uuid.UUID, int]:
    rows = connection.execute(
        text(
            "SELECT project_id, sum(chunk_count) AS chunks FROM documents "
            "WHERE status <> 'failed' GROUP BY project_id"
        )
    ).all()
    return {row.project_id: int(row.chunks or 0) for row in rows}


@contextmanager
def _locked(connection: Connection, name: str) -> Iterator[bool]:
    """Whether this session holds the index's advisory lock (held until the block ends)."""
    key = {"k": zlib.crc32(name.encode())}
    held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), key).scalar_one())
    try:
        yield held
    finally:
        if held:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), key)


def sync_project_indexes(
    *,
    min_chunks: int,
    max_builds: int = 1,
    engine: Engine | None = None,
    projects: Collection[uuid.UUID] | None = None,
    max_build_seconds: float | None = None,
) -> IndexSync:
    """Build, drop and repair project indexes (see the module docstring); `projects` limits
    the work to those projects' indexes (the sweep passes None: all of them).

    A build expected to outlast `max_build_seconds` is not started: the sweep would be killed
    mid-build, leave an invalid index, drop it next run and start again, forever. It is
    reported (`too_big`, a warning) for `ai-infra db index-projects`, which has no deadline.
    """
    engine = engine or get_engine()
    result = IndexSync()
    # CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block.
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        # The pool's pre-ping left the driver inside a transaction: end it, or CONCURRENTLY
        # refuses to run ("cannot run inside a transaction block").
        connection.connection.driver_connection.rollback()  # type: ignore[union-attr]
        sizes = _project_sizes(connection)
        existing = _existing(connection)
        if projects is not None:
            sizes = {p: n for p, n in sizes.items() if p in projects}
            existing = {n: v for n, v in existing.items() if project_of(n) in projects}
        wanted = {index_name(p): p for p, chunks in sizes.items() if chunks > min_chunks}
        for name, valid in list(existing.items()):
            project = project_of(name)
            gone = project is None or sizes.get(project, 0) * 2 <= min_chunks
            if not gone and valid:
                continue
            with _locked(connection, name) as held:
                if held:
                    connection.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                    result.dropped.append(name)
                    existing.pop(name)
                    logger.info("project index dropped", extra={"index": name, "valid": valid})
        missing = [(name, p) for name, p in wanted.items() if name not in existing]
        for name, project in sorted(missing, key=lambda item: -sizes[item[1]]):  # biggest first
            expected = sizes[project] * BUILD_SECONDS_PER_CHUNK
            if max_build_seconds is not None and expected > max_build_seconds:
                result.too_big.append(name)
                logger.warning(
                    "project index too big to build in the sweep; run ai-infra db index-projects",
                    extra={"index": name, "chunks": sizes[project], "expected_seconds": expected},
                )
                continue
            if len(result.build_seconds) >= max_builds:
                result.pending += 1
                continue
            with _locked(connection, name) as held:
                if not held:  # another sweep is building it
                    result.pending += 1
                    continue
                # SET LOCAL needs a transaction, which CONCURRENTLY refuses: set, build, reset.
                connection.execute(text(f"SET maintenance_work_mem = '{BUILD_MEMORY}'"))
                started = time.perf_counter()
                try:
                    connection.execute(text(_index_definition(project, name)))
                finally:
                    connection.execute(text("RESET maintenance_work_mem"))
                seconds = time.perf_counter() - started
                result.build_seconds[name] = seconds
                logger.info(
                    "project index built",
                    extra={"index": name, "chunks": sizes[project], "seconds": round(seconds, 1)},
                )
    return result
