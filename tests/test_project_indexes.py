"""Per-project indexes (HNSW graphs, keyword GIN, IVFFlat): built for projects searched through
HNSW, used by their queries, dropped when the project is gone, rebuilt when a build was left
invalid, ignored by autogenerate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, select, text
from typer.testing import CliRunner

from common.cli.main import app
from common.ingestion.project_indexes import include_in_autogenerate, sync_project_indexes
from common.platform.config import get_settings
from common.platform.db import get_engine, transaction
from common.platform.index_names import gin_index_name, index_name, ivf_index_name
from common.platform.models import Base, Document, Project
from common.platform.spaces import EmbeddingSpace, ensure_space
from common.query.retrieval import explain_search, search, vector_literal
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import insert_document

DIM = 384
TOPIC_SIZE = 10


def _topics(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """TOPIC_SIZE vectors tight around each of `count` centres: each centre's top 10 is defined."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, DIM)).astype(np.float32)
    members = np.repeat(centres, TOPIC_SIZE, axis=0)
    members += 0.15 * rng.normal(size=members.shape).astype(np.float32)
    return members.astype(np.float32), centres


def _fill(tenant: Tenant, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), 100):
        part = vectors[start : start + 100]
        texts = [f"chunk {start + i}" for i in range(len(part))]
        insert_document(tenant, f"part {start}", texts, part)


@pytest.fixture
def big_and_small(database_url: str) -> Iterator[tuple[Tenant, Tenant, np.ndarray]]:
    big, small = make_tenant("indexed"), make_tenant("unindexed")
    vectors, centres = _topics(60, seed=3)  # 600 chunks
    _fill(big, vectors)
    _fill(small, vectors[:100])
    with transaction() as session:
        session.execute(text("ANALYZE document_chunks"))
    yield big, small, centres
    ours = {big.project_id, small.project_id}
    with transaction() as session:  # the documents (and the project index with the sync)
        session.execute(delete(Document).where(Document.project_id.in_([big.project_id])))
    sync_project_indexes(min_chunks=300, projects=ours)


def _index_names() -> set[str]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_chunks_hnsw_project_%'")
        )
        return {str(row[0]) for row in rows}


def _plan(
    project_id: uuid.UUID,
    vector: np.ndarray,
    *,
    documents: list[uuid.UUID] | None = None,
    space: EmbeddingSpace | None = None,
    question: str = "",
) -> str:
    with transaction() as session:
        session.execute(text("SET LOCAL enable_sort = off"))  # rule out the exact plan
        return explain_search(
            session,
            project_id=project_id,
            query_vector=vector,
            question=question,
            top_k=10,
            ef_search=100,
            exact_max_chunks=0,
            document_ids=documents,
            space=space,
        )


def _top10(
    project_id: uuid.UUID,
    vector: np.ndarray,
    exact_max_chunks: int,
    *,
    documents: list[uuid.UUID] | None = None,
    space: EmbeddingSpace | None = None,
) -> set[uuid.UUID]:
    """The dense arm's top 10: through an index (`exact_max_chunks` 0) or ranked exactly."""
    with transaction() as session:
        found = search(
            session,
            project_id=project_id,
            query_vector=vector,
            question="",
            top_k=10,
            ef_search=100,
            exact_max_chunks=exact_max_chunks,
            document_ids=documents,
            arms="dense",
            space=space,
        )
    if documents is not None:
        assert {chunk.document_id for chunk in found} <= set(documents)
    return {chunk.chunk_id for chunk in found}


def _invalidate(name: str) -> None:
    """What a build killed half-way leaves behind."""
    with transaction() as session:
        session.execute(
            text(
                "UPDATE pg_index SET indisvalid = false "
                "WHERE indexrelid = CAST(CAST(:name AS text) AS regclass)"
            ),
            {"name": name},
        )


def test_a_project_above_the_threshold_gets_its_own_index_and_its_queries_use_it(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    big, small, centres = big_and_small
    ours = {big.project_id, small.project_id}
    first = sync_project_indexes(min_chunks=300, max_builds=5, projects=ours)
    assert index_name(big.project_id) in first.built
    assert index_name(small.project_id) not in _index_names()
    assert sync_project_indexes(min_chunks=300, projects=ours).built == []  # nothing left to do

    assert index_name(big.project_id) in _plan(big.project_id, centres[0])
    assert index_name(big.project_id) not in _plan(small.project_id, centres[0])
    for centre in centres[:5]:  # through the project's own graph: the true top 10
        assert _top10(big.project_id, centre, 0) == _top10(big.project_id, centre, 10**9)


def _keyword_top10(
    project_id: uuid.UUID, question: str, *, without: str | None = None
) -> list[tuple[uuid.UUID, float]]:
    """The keyword arm's ranking (with `without` dropped for the statement's transaction)."""
    with transaction() as session:
        if without is not None:
            session.execute(text(f"DROP INDEX {without}"))
        found = search(
            session,
            project_id=project_id,
            query_vector=np.zeros(DIM, dtype=np.float32),
            question=question,
            top_k=10,
            ef_search=100,
            arms="keyword",
        )
        session.rollback()
    return [(chunk.chunk_id, round(chunk.rrf_score, 9)) for chunk in found]


def test_a_big_projects_keyword_arm_reads_its_own_gin_index_with_the_same_results(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    """The table-wide GIN index's posting lists span every tenant; the project's own has only
    its chunks (and ranks them the same)."""
    big, small, centres = big_and_small
    sync_project_indexes(min_chunks=300, max_builds=5, projects={big.project_id, small.project_id})
    own = gin_index_name(big.project_id)
    for question in ("chunk 123", "450 or 7", "542"):
        assert own in _plan(big.project_id, centres[0], question=question)
        assert own not in _plan(small.project_id, centres[0], question=question)
        ranked = _keyword_top10(big.project_id, question)
        assert ranked and ranked == _keyword_top10(big.project_id, question, without=own)
    with get_engine().connect() as connection:
        names = connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE indexname = ANY(:names)"),
            {"names": [own, gin_index_name(small.project_id)]},
        ).scalars()
        assert list(names) == [own]


def test_the_index_of_a_deleted_project_is_dropped(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    big, small, _ = big_and_small
    ours = {big.project_id, small.project_id}
    sync_project_indexes(min_chunks=300, projects=ours)
    assert index_name(big.project_id) in _index_names()
    with transaction() as session:
        session.execute(delete(Document).where(Document.project_id == big.project_id))
    result = sync_project_indexes(min_chunks=300, projects=ours)
    assert result.dropped == [index_name(big.project_id)]
    assert index_name(big.project_id) not in _index_names()


def test_an_index_left_invalid_by_a_crashed_build_is_rebuilt(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    big, small, _ = big_and_small
    ours = {big.project_id, small.project_id}
    name = index_name(big.project_id)
    sync_project_indexes(min_chunks=300, projects=ours)
    _invalidate(name)
    result = sync_project_indexes(min_chunks=300, projects=ours)
    assert result.dropped == [name] and result.built == [name]
    with get_engine().connect() as connection:
        valid = connection.execute(
            text(
                "SELECT indisvalid FROM pg_index "
                "WHERE indexrelid = CAST(CAST(:name AS text) AS regclass)"
            ),
            {"name": name},
        ).scalar_one()
    assert valid


def test_autogenerate_leaves_project_indexes_alone(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    big, small, _ = big_and_small
    sync_project_indexes(min_chunks=300, projects={big.project_id, small.project_id})
    assert _index_names()
    with get_engine().connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": include_in_autogenerate}
        )
        assert compare_metadata(context, Base.metadata) == []
        unfiltered = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert unfiltered  # without the filter, autogenerate would drop them


def test_a_build_too_long_for_the_sweep_is_left_to_the_operator_command(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    """The sweep never starts a build it cannot finish (it would loop on invalid indexes);
    `ai-infra db index-projects` builds it with no deadline."""
    big, small, _ = big_and_small
    ours = {big.project_id, small.project_id}
    result = sync_project_indexes(min_chunks=300, projects=ours, max_build_seconds=0.01)
    wanted = [index_name(big.project_id), gin_index_name(big.project_id)]
    wanted.append(ivf_index_name(big.project_id))
    assert result.too_big == wanted and result.built == []
    assert index_name(big.project_id) not in _index_names()

    cli = CliRunner().invoke(
        app,
        ["--json", "db", "index-projects", "--min-chunks", "300", "--project", str(big.project_id)],
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["built"] == wanted
    assert index_name(big.project_id) in _index_names()


def _space_index_names(table: str) -> set[str]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table}
        )
        return {str(row[0]) for row in rows}


def _keep(tenant: Tenant, active: uuid.UUID | None, previous: uuid.UUID | None) -> None:
    """The project's spaces as a switch leaves them (active None: the inline vectors)."""
    with transaction() as session:
        project = session.get_one(Project, tenant.project_id)
        project.active_space_id, project.previous_space_id = active, previous


@pytest.fixture
def switched(database_url: str) -> Iterator[tuple[Tenant, EmbeddingSpace, np.ndarray]]:
    """A 600-chunk project whose vectors moved to a 1,536-d space's table by a finished switch."""
    tenant = make_tenant("space-indexed")
    with transaction() as session:
        space = ensure_space(session, "gemini-embedding-001", 1536, get_settings())
    assert space.table is not None and space.vector_type == "vector"
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(60, 1536)).astype(np.float32)
    vectors = np.repeat(centres, TOPIC_SIZE, axis=0)
    vectors += 0.15 * rng.normal(size=vectors.shape).astype(np.float32)
    inline, _ = _topics(60, seed=3)
    for start in range(0, len(vectors), 100):
        texts = [f"chunk {start + i}" for i in range(100)]
        _, chunk_ids = insert_document(tenant, f"part {start}", texts, inline[start : start + 100])
        with transaction() as session:
            session.execute(
                text(
                    f"INSERT INTO {space.table} (chunk_id, project_id, embedding) "
                    "SELECT unnest(CAST(:ids AS uuid[])), :p, "
                    "CAST(unnest(CAST(:vectors AS text[])) AS vector)"
                ),
                {
                    "ids": chunk_ids,
                    "p": tenant.project_id,
                    "vectors": [vector_literal(v) for v in vectors[start : start + 100]],
                },
            )
    _keep(tenant, space.id, None)
    with transaction() as session:
        session.execute(text(f"ANALYZE {space.table}"))
    yield tenant, space, centres
    _keep(tenant, None, None)
    with transaction() as session:
        session.execute(delete(Document).where(Document.project_id == tenant.project_id))
    sync_project_indexes(min_chunks=300, projects={tenant.project_id})


def test_a_project_in_a_space_gets_its_graph_in_the_spaces_table_while_it_keeps_vectors_there(
    switched: tuple[Tenant, EmbeddingSpace, np.ndarray],
) -> None:
    tenant, space, centres = switched
    assert space.table is not None
    ours = {tenant.project_id}
    own = index_name(tenant.project_id, space.table)
    assert own != index_name(tenant.project_id) and len(own) <= 63
    built = sync_project_indexes(min_chunks=300, max_builds=5, projects=ours).built
    assert built == [own, gin_index_name(tenant.project_id)], (
        "the space's graph and the keywords' index only: the project keeps no inline vectors"
    )
    assert own in _space_index_names(space.table)

    for centre in centres[:5]:
        assert own in _plan(tenant.project_id, centre, space=space)
        found, exact = (_top10(tenant.project_id, centre, n, space=space) for n in (0, 10**9))
        assert found == exact

    _keep(tenant, None, space.id)  # rolled back: the space is the way back, the inline active
    assert sync_project_indexes(min_chunks=300, max_builds=5, projects=ours).built == [
        index_name(tenant.project_id),
        ivf_index_name(tenant.project_id),
    ]
    assert own in _space_index_names(space.table)
    _keep(tenant, None, None)  # finished: no vectors kept in the space
    assert sync_project_indexes(min_chunks=300, projects=ours).dropped == [own]
    assert own not in _space_index_names(space.table)


def _ivf_lists(name: str) -> int | None:
    with get_engine().connect() as connection:
        return connection.execute(
            text(
                "SELECT CAST(o.option_value AS int) FROM pg_class c "
                "CROSS JOIN LATERAL pg_options_to_table(c.reloptions) o "
                "WHERE c.relname = :name AND o.option_name = 'lists'"
            ),
            {"name": name},
        ).scalar()


def test_a_narrowed_search_ranks_through_the_projects_ivf_index_or_its_graph_without_it(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    big, _, centres = big_and_small
    ivf = ivf_index_name(big.project_id)
    sync_project_indexes(min_chunks=300, max_builds=5, projects={big.project_id})
    assert _ivf_lists(ivf) == 24  # sqrt(600)
    with transaction() as session:
        parts = list(
            session.scalars(
                select(Document.id)
                .where(Document.project_id == big.project_id)
                .order_by(Document.title)
            )
        )
    documents = parts[:2]  # parts 0 and 100: topics 0-19, a third of the project
    assert ivf in _plan(big.project_id, centres[0], documents=documents)
    assert ivf not in _plan(big.project_id, centres[0])  # unfiltered: the graph
    half = _plan(big.project_id, centres[0], documents=parts[:3])  # past IVF_MAX_SHARE
    assert ivf not in half and index_name(big.project_id) in half
    for centre in centres[:20:2]:
        found, exact = (_top10(big.project_id, centre, n, documents=documents) for n in (0, 10**9))
        assert found == exact

    _invalidate(ivf)  # the graph serves instead
    plan = _plan(big.project_id, centres[0], documents=documents)
    assert ivf not in plan and index_name(big.project_id) in plan
    assert sync_project_indexes(min_chunks=300, projects={big.project_id}).built == [ivf]


def test_an_ivf_index_sized_for_another_project_size_is_rebuilt(
    big_and_small: tuple[Tenant, Tenant, np.ndarray],
) -> None:
    big, _, _ = big_and_small
    ivf = ivf_index_name(big.project_id)
    with transaction() as session:
        session.execute(  # what a 10,000-chunk project got (100 lists)
            text(
                f"CREATE INDEX {ivf} ON document_chunks USING ivfflat "
                "((CAST(embedding AS halfvec(384))) halfvec_cosine_ops) WITH (lists = 100) "
                f"WHERE project_id = '{big.project_id}'"
            )
        )
    result = sync_project_indexes(min_chunks=300, max_builds=5, projects={big.project_id})
    assert ivf in result.dropped and ivf in result.built
    assert _ivf_lists(ivf) == 24
