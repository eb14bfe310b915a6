"""Indexes of its own for every project searched through HNSW (the sweep keeps them).

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

Filtered questions walk a project's graph for the matching chunks only, and HNSW's cost grows
with the tuples it must return before enough pass the filter (80 candidates from a filter
matching 20% of the project: ~400 tuples, ~35 us each). So each big project's inline vectors
also get an IVFFlat index on their halfvec (`lists` = sqrt(chunks), rebuilt when the project
has grown or shrunk past twice that): a filtered search probes sqrt(lists) lists in order of
their centre's distance and ranks their members in one pass (the 20% filter's vector arm 1.7x
faster, recall@10 0.995-0.997 at 1M chunks). Its key is an expression of its own, so Postgres
reaches it only from a statement that asks for it (`common/query/retrieval.py`, filtered plans).

The keyword arm reads a GIN index's posting lists, and the table-wide one's span every tenant:
a big project's question paid for the other 87% of the table (the bitmap index scan took
2.6 ms at 1M chunks to find 167 rows, 4 of them the project's). So each big project also gets a
GIN index of its own chunks' tsvectors, which Postgres picks for its questions as it picks the
graph (0.19 ms for the same terms; whole hybrid search 15.5 -> 11.4 ms p50 unfiltered, 22.2 ->
18.4 with a 20% filter, the same results; 2.5 s to build for 134,072 chunks).

A project whose vectors live in an embedding space's table (a model switch's) gets the same
partial index on that table, with the space's operator class, for each space it keeps vectors
in (active, pending, previous: a rollback is instant, so its way back stays indexed); its
inline graph goes once it keeps none there.

`sync_project_indexes` builds what is missing (CONCURRENTLY: writers are never blocked; at most
`max_builds` per call so a sweep stays short), drops the indexes of projects that are gone or
shrank below half the threshold (so a project near it does not flap), and rebuilds an index a
crashed build left invalid. A session advisory lock per index keeps concurrent sweeps from
building the same one. Safe to run repeatedly and concurrently.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import ProgrammingError

from common.platform.db import get_engine, sqlstate
from common.platform.index_names import (
    INLINE_TABLE,
    PREFIXES,
    gin_index_name,
    index_name,
    ivf_index_name,
    project_of,
)
from common.platform.models import DocumentChunk
from common.platform.spaces import TABLE_PREFIX as SPACE_TABLE_PREFIX
from common.platform.spaces import EmbeddingSpace

logger = logging.getLogger(__name__)

UNDEFINED_TABLE = "42P01"
TABLE_INDEX = "ix_document_chunks_embedding_hnsw"
BUILD_MEMORY = "512MB"  # maintenance_work_mem for one build: a 130,000-chunk graph fits
# A build's expected time per chunk: 0.21 ms measured (134,072 chunks in 28 s, six projects of
# 330,000 in 65 s, 2 cores), with a margin for a busier database.
BUILD_SECONDS_PER_CHUNK = 0.0003


def ivf_lists(chunks: int) -> int:
    return max(1, round(math.sqrt(chunks)))


def include_in_autogenerate(
    object_: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's include_object: project indexes and embedding spaces' tables (and their indexes)
    are data, not schema; never drop them."""
    if not reflected:
        return True
    name = name or ""
    if type_ == "index":
        return not name.startswith((*PREFIXES, f"ix_{SPACE_TABLE_PREFIX}"))
    return not (type_ == "table" and name.startswith(SPACE_TABLE_PREFIX))


@dataclass
class IndexSync:
    build_seconds: dict[str, float] = field(default_factory=dict)  # built, in build order
    dropped: list[str] = field(default_factory=list)
    pending: int = 0  # wanted but left for a later call (max_builds) or being built elsewhere
    too_big: list[str] = field(default_factory=list)  # over max_build_seconds: left to an operator

    @property
    def built(self) -> list[str]:
        return list(self.build_seconds)


@dataclass(frozen=True)
class _ProjectIndex:
    """One index of one project's rows: the HNSW graph of its vectors in one table (the inline
    ones, or a space's); with `ivf_dimensions`, the inline vectors' IVFFlat index (of their
    halfvecs at that dimension); with `keywords`, its chunks' GIN index."""

    project_id: uuid.UUID
    table: str
    opclass: str
    ivf_dimensions: int | None = None
    keywords: bool = False

    @property
    def build_order(self) -> int:
        """A project's graph first (every question uses it), its GIN, then its IVFFlat index
        (filtered questions only)."""
        return 2 if self.ivf_dimensions is not None else int(self.keywords)


@dataclass(frozen=True)
class _Existing:
    valid: bool
    lists: int | None  # an IVFFlat index's


def _index_definition(target: _ProjectIndex, name: str, chunks: int) -> str:
    """The inline table-wide index's method and parameters (a space's table-wide index has the
    same), with the vectors' operator class, for one project's rows; or its IVFFlat or GIN
    index."""
    # The id is a UUID we format ourselves and the table a space's name from our own rows: safe
    # to inline (CREATE INDEX takes no parameters).
    where = f"WHERE project_id = '{target.project_id}'"
    if target.keywords:
        return (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target.table} "
            f"USING gin (content_tsv {target.opclass}) {where}"
        )
    if target.ivf_dimensions is not None:
        halfvec = f"halfvec({target.ivf_dimensions})"
        return (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target.table} "
            f"USING ivfflat ((CAST(embedding AS {halfvec})) halfvec_cosine_ops) "
            f"WITH (lists = {ivf_lists(chunks)}) {where}"
        )
    options = _table_index_options()
    with_ = ", ".join(f"{key} = {int(value)}" for key, value in options["with"].items())
    return (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target.table} "
        f"USING {options['using']} (embedding {target.opclass}) WITH ({with_}) {where}"
    )


def _existing(connection: Connection) -> dict[str, _Existing]:
    """Project indexes, inline and in spaces' tables."""
    rows = connection.execute(
        text(
            "SELECT c.relname, i.indisvalid, (SELECT CAST(o.option_value AS int) "
            "FROM pg_options_to_table(c.reloptions) o WHERE o.option_name = 'lists') AS lists "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE EXISTS (SELECT FROM unnest(CAST(:prefixes AS text[])) AS p(prefix) "
            "WHERE starts_with(c.relname, p.prefix))"
        ),
        {"prefixes": list(PREFIXES)},
    ).all()
    return {str(row.relname): _Existing(bool(row.indisvalid), row.lists) for row in rows}


def _stale(index: _Existing, chunks: int) -> bool:
    """An IVFFlat index whose lists are off by more than 2x for the project's size now."""
    if index.lists is None:
        return False
    wanted = ivf_lists(chunks)
    return index.lists * 2 < wanted or index.lists > wanted * 2


def inline_dimensions(connection: Connection) -> int:
    """The inline vectors' dimension (pgvector keeps it as the column's type modifier)."""
    return int(
        connection.execute(
            text(
                "SELECT atttypmod FROM pg_attribute "
                "WHERE attrelid = CAST('document_chunks' AS regclass) AND attname = 'embedding'"
            )
        ).scalar_one()
    )


def _project_sizes(connection: Connection) -> dict[uuid.UUID, int]:
    rows = connection.execute(
        text(
            "SELECT project_id, sum(chunk_count) AS chunks FROM documents "
            "WHERE status <> 'failed' GROUP BY project_id"
        )
    ).all()
    return {row.project_id: int(row.chunks or 0) for row in rows}


# Every space a project keeps vectors in: active (none named: the inline one), pending, previous.
_GRAPHS = text(
    "SELECT p.id AS project_id, kept.slot, s.model, s.dimensions, s.table_name FROM projects p "
    "CROSS JOIN LATERAL unnest(ARRAY[p.active_space_id, p.pending_space_id, "
    "p.previous_space_id]) WITH ORDINALITY AS kept(space_id, slot) "
    "LEFT JOIN embedding_spaces s ON s.id = kept.space_id "
    "WHERE kept.space_id IS NOT NULL OR kept.slot = 1"
)


def _wanted_indexes(connection: Connection) -> dict[str, _ProjectIndex]:
    """Index name -> what it holds, for every project: its keywords' GIN, and a graph for
    every space it keeps vectors in (the inline vectors also an IVFFlat index)."""
    wanted: dict[str, _ProjectIndex] = {}
    dimensions = inline_dimensions(connection)
    for row in connection.execute(_GRAPHS):
        if row.slot == 1:  # the active space's row: every project has one
            wanted[gin_index_name(row.project_id)] = _ProjectIndex(
                row.project_id, INLINE_TABLE, "tsvector_ops", keywords=True
            )
        if row.table_name is None:  # the inline vectors, named or not
            graph = _ProjectIndex(row.project_id, INLINE_TABLE, _inline_opclass())
            wanted[ivf_index_name(row.project_id)] = _ProjectIndex(
                row.project_id, INLINE_TABLE, "halfvec_cosine_ops", dimensions
            )
        else:
            space = EmbeddingSpace(None, row.model, int(row.dimensions), row.table_name)
            graph = _ProjectIndex(row.project_id, row.table_name, space.ops)
        wanted[index_name(graph.project_id, graph.table)] = graph
    return wanted


def _inline_opclass() -> str:
    return str(_table_index_options()["ops"]["embedding"])


def _table_index_options() -> Any:
    """The inline table-wide HNSW index's options, as the model declares them."""
    index = next(i for i in DocumentChunk.__table__.indexes if i.name == TABLE_INDEX)  # type: ignore[attr-defined]
    return index.dialect_options["postgresql"]


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
        indexes = _wanted_indexes(connection)
        if projects is not None:
            sizes = {p: n for p, n in sizes.items() if p in projects}
            existing = {n: v for n, v in existing.items() if project_of(n) in projects}
            indexes = {n: g for n, g in indexes.items() if g.project_id in projects}
        wanted = {
            name: target
            for name, target in indexes.items()
            if sizes.get(target.project_id, 0) > min_chunks
        }
        for name, index in list(existing.items()):
            target = indexes.get(name)  # None: its project is gone or keeps no vectors there
            chunks = sizes.get(target.project_id, 0) if target is not None else 0
            gone = target is None or chunks * 2 <= min_chunks
            valid = index.valid and not _stale(index, chunks)
            if not gone and valid:
                continue
            with _locked(connection, name) as held:
                if held:
                    connection.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                    result.dropped.append(name)
                    existing.pop(name)
                    logger.info("project index dropped", extra={"index": name, "valid": valid})
        missing = [(name, g) for name, g in wanted.items() if name not in existing]
        # Biggest project first; each project's indexes in their `build_order`.
        for name, target in sorted(
            missing, key=lambda item: (-sizes[item[1].project_id], item[1].build_order)
        ):
            project = target.project_id
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
                    connection.execute(text(_index_definition(target, name, sizes[project])))
                except ProgrammingError as error:
                    if sqlstate(error) != UNDEFINED_TABLE:
                        raise
                    # `finish` dropped the space's table since it was read: nothing to index.
                    logger.info("space table gone before its project index", extra={"index": name})
                    continue
                finally:
                    connection.execute(text("RESET maintenance_work_mem"))
                seconds = time.perf_counter() - started
                result.build_seconds[name] = seconds
                logger.info(
                    "project index built",
                    extra={"index": name, "chunks": sizes[project], "seconds": round(seconds, 1)},
                )
    return result
