"""bench/query.py --filter: filtered questions in the biggest project, and the unfiltered cost.

1. The biggest project's documents get attributes (an UPDATE after the load, timed; the types
   registered as the service would): `bucket` (a number, 0-9,999, spread by the documents'
   chunk counts in a seeded order, so `lessThan t` keeps ~t/10,000 of the project's chunks),
   `department` (a string: `legal` on ~5% of the chunks) and `tags` (a list: `contract` on ~2%,
   `review` on ~25%). Documents mix the project's topics, so a filter is unrelated to where the
   question's vector points: the matching chunks are a random share of the graph.
2. Per filter class: the documents the service matches (checked against the same predicate
   written by hand), their chunks, the plan it serves (exact or a graph), SQL p50/p95/p99 of
   the whole filtered hybrid search as served (the registry, read only when a name is new to
   the process, and the search's two round trips) and of the same questions unfiltered in the
   same project (alternating: the day's reference on a noisy machine), and recall@10 of the
   served dense arm against an exact scan of exactly the matching chunks (no index); any
   served chunk outside the matching documents is counted as a leak.
3. Unfiltered hybrid search with today's retrieval against the module as it was before filters
   were wired (read from git at BEFORE_COMMIT), alternating on the same questions and data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from bench.query_data import Corpus, Project, sample_vectors
from common.platform.attributes import CachedRegistry, known_types, register_types
from common.platform.config import get_settings
from common.platform.db import transaction
from common.query import retrieval
from common.query.filters import CompiledFilter, compile_filter

# The last commit before filters reached retrieval (d1d45d0 added `document_filter` and the
# documents' attributes to the final SELECT of every search).
BEFORE_COMMIT = "924373ff44e5ad6789ab1a5087b83e6bb6708c5b"
BUCKETS = 10_000


@dataclass(frozen=True)
class FilterClass:
    name: str
    share: float  # of the project's chunks, by design
    raw: dict[str, Any]  # the filter as a client sends it
    truth: str  # the same predicate over `documents d`, written by hand


def _below(share: float) -> FilterClass:
    return FilterClass(
        f"bucket < {share:.2%}".replace(".00%", "%"),
        share,
        {"lessThan": {"key": "bucket", "value": round(share * BUCKETS)}},
        f"CAST(d.attributes ->> 'bucket' AS numeric) < {round(share * BUCKETS)}",
    )


def _tag(tag: str, share: float) -> FilterClass:
    return FilterClass(
        f"tags has {tag}",
        share,
        {"listContains": {"key": "tags", "value": tag}},
        f"jsonb_exists(d.attributes -> 'tags', '{tag}')",
    )


FILTER_CLASSES = (
    _below(0.5),
    _below(0.2),  # just above the exact threshold at 1M: the most selective graph walk
    _below(0.05),
    _below(0.005),
    _below(0.0005),
    FilterClass(
        "department = legal",
        0.05,
        {"equals": {"key": "department", "value": "legal"}},
        "d.attributes ->> 'department' = 'legal'",
    ),
    _tag("contract", 0.02),
    _tag("review", 0.25),
)


# --- attributes ---------------------------------------------------------------------------------
def _starts(counts: list[int], seed: int) -> np.ndarray:
    """Each document's start in a seeded order, as a share of the chunks before it (0 <= x < 1):
    the documents starting below s hold about s of the chunks (the first one always counts)."""
    order = np.random.default_rng(seed).permutation(len(counts))
    before = np.cumsum([0] + [counts[i] for i in order[:-1]]) / max(1, sum(counts))
    starts = np.empty(len(counts))
    starts[order] = before
    return starts


def attributes_for(counts: list[int]) -> list[dict[str, Any]]:
    """Attributes of documents with these chunk counts (in a fixed order: by title, "doc N")."""
    bucket, department, contract, review = (_starts(counts, seed) for seed in (1, 2, 3, 4))
    rows = []
    for number in range(len(counts)):
        tags = ["contract"] if contract[number] < 0.02 else []
        tags += ["review"] if review[number] < 0.25 else []
        rows.append(
            {
                "bucket": int(bucket[number] * BUCKETS),
                "department": "legal"
                if department[number] < 0.05
                else ("engineering" if department[number] < 0.55 else "sales"),
                "tags": tags,
            }
        )
    return rows


_UPDATE = text(
    "UPDATE documents d SET attributes = CAST(v.a AS jsonb) "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:attributes AS text[])) AS v(id, a) WHERE d.id = v.id"
)


def apply_attributes(engine: Engine, project: Project) -> dict[str, float]:
    """Give the project's documents their attributes (once: a reused corpus has them); returns
    the seconds taken, by step, for the load report."""

    with transaction() as session:
        if "bucket" in known_types(session, project.id):
            return {}
        rows = session.execute(
            text("SELECT id, chunk_count FROM documents WHERE project_id = :p ORDER BY title"),
            {"p": project.id},
        ).all()
        started = time.perf_counter()
        register_types(
            session, project.id, {"bucket": 0, "department": "legal", "tags": ["contract"]}
        )
        values = attributes_for([int(row.chunk_count) for row in rows])
        session.execute(
            _UPDATE,
            {"ids": [row.id for row in rows], "attributes": [json.dumps(v) for v in values]},
        )
    updated = time.perf_counter() - started
    started = time.perf_counter()
    raw: Any = engine.raw_connection()
    try:  # VACUUM runs outside a transaction; the pool's pre-ping left one open
        raw.driver_connection.rollback()
        raw.driver_connection.autocommit = True
        raw.driver_connection.run("VACUUM ANALYZE documents")
    finally:
        raw.driver_connection.autocommit = False
        raw.close()
    return {
        f"attributes UPDATE ({len(rows)} documents)": updated,
        "VACUUM ANALYZE documents": time.perf_counter() - started,
    }


# --- filtered search ----------------------------------------------------------------------------
def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {f"p{q}_ms": float(np.percentile(array, q)) for q in (50, 95, 99)}


def _run[T](work: Callable[[Any], T]) -> tuple[T, float]:
    """The work in one transaction, and its milliseconds."""
    started = time.perf_counter()
    with transaction() as session:
        result = work(session)
    return result, (time.perf_counter() - started) * 1000


def _compiled(session: Any, project: Project, raw: dict[str, Any]) -> CompiledFilter:
    return compile_filter(raw, CachedRegistry(session, project.id))


def _filtered_search(
    project: Project, raw: dict[str, Any], vector: np.ndarray, question: str, arms: str = "hybrid"
) -> Callable[[Any], list[Any]]:
    """What the query service runs for a filtered question: the registry, the compiled filter,
    then the search (whose first round trip is `matching_documents`)."""

    def work(session: Any) -> list[Any]:
        return retrieval.search(
            session,
            project_id=project.id,
            query_vector=vector,
            question=question,
            top_k=10,
            ef_search=get_settings().hnsw_ef_search,
            exact_max_chunks=get_settings().exact_search_max_chunks,
            document_filter=_compiled(session, project, raw),
            arms=arms,
        )

    return work


def _exact_top10(project: Project, documents: list[uuid.UUID], vector: np.ndarray) -> set[Any]:
    """The true 10 nearest of exactly the matching chunks: an ORDER BY no index can serve."""

    with transaction() as session:
        rows = session.execute(
            text(
                "SELECT id FROM document_chunks WHERE project_id = :p "
                "AND document_id = ANY(CAST(:ids AS uuid[])) "
                "ORDER BY (embedding <=> CAST(:q AS vector)) + 0 LIMIT 10"
            ),
            {"p": project.id, "ids": documents, "q": retrieval.vector_literal(vector)},
        ).all()
    return {row[0] for row in rows}


def _plan(project: Project, raw: dict[str, Any], vector: np.ndarray) -> str:

    with transaction() as session:
        plan = retrieval.explain_search(
            session,
            project_id=project.id,
            query_vector=vector,
            question="",
            top_k=10,
            ef_search=get_settings().hnsw_ef_search,
            exact_max_chunks=get_settings().exact_search_max_chunks,
            document_filter=_compiled(session, project, raw),
        )
    if "ix_chunks_ivf_project_" in plan:
        return "own-ivf"  # the project's IVFFlat index (common/ingestion/project_indexes.py)
    if "ix_chunks_hnsw_project_" in plan:
        return "own-hnsw"
    return "hnsw" if "embedding_hnsw" in plan else "exact"


def _matching(project: Project, filter_class: FilterClass) -> tuple[list[uuid.UUID], bool, int]:
    """The documents the service matches, whether the hand-written predicate agrees, and their
    chunks."""

    with transaction() as session:
        served = retrieval.matching_documents(
            session, project.id, _compiled(session, project, filter_class.raw)
        )
        truth = session.scalars(
            text(
                "SELECT d.id FROM documents d WHERE d.project_id = :p AND d.status <> 'failed' "
                f"AND {filter_class.truth}"
            ),
            {"p": project.id},
        ).all()
        chunks = session.scalar(
            text(
                "SELECT count(*) FROM document_chunks WHERE document_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": list(truth)},
        )
    return list(truth), set(served) == set(truth), int(chunks or 0)


def filter_class_figures(
    corpus: Corpus, project: Project, filter_class: FilterClass, queries: int, words: Any
) -> dict[str, Any]:

    documents, agrees, chunks = _matching(project, filter_class)
    rng = np.random.default_rng(int(filter_class.share * BUCKETS))
    vectors = sample_vectors(rng, corpus.centroids, project.topics, queries)
    served: list[float] = []
    unfiltered: list[float] = []
    for number, vector in enumerate(vectors):
        question = " ".join(words.choices(corpus.vocabulary, k=8))
        filtered_run = _filtered_search(project, filter_class.raw, vector, question)
        unfiltered_run = _unfiltered(retrieval, project, vector, question)
        # Alternating which runs first: the same question unfiltered is the day's reference.
        for work in (filtered_run, unfiltered_run)[:: 1 if number % 2 == 0 else -1]:
            (served if work is filtered_run else unfiltered).append(_run(work)[1])
    found = expected = leaks = 0
    recall_queries = max(10, queries // 2)
    allowed = set(documents)
    for vector in vectors[:recall_queries]:
        truth = _exact_top10(project, documents, vector)
        results, _ = _run(_filtered_search(project, filter_class.raw, vector, "", "dense"))
        found += len({r.chunk_id for r in results} & truth)
        expected += len(truth)
        leaks += sum(r.document_id not in allowed for r in results)
    return {
        "share_designed": filter_class.share,
        "documents": len(documents),
        "chunks": chunks,
        "share": chunks / project.size,
        "filter_agrees": agrees,
        "plan": _plan(project, filter_class.raw, vectors[0]),
        **{f"sql_{k}": v for k, v in _percentiles(served).items()},
        **{f"unfiltered_{k}": v for k, v in _percentiles(unfiltered).items()},
        "recall_at_10": found / expected if expected else float("nan"),
        "recall_queries": recall_queries,
        "leaks": leaks,
    }


# --- unfiltered, before and after ---------------------------------------------------------------
def retrieval_before() -> types.ModuleType | None:
    """common/query/retrieval.py as of BEFORE_COMMIT, as a module of its own (None without git
    or that commit, as in a shallow clone)."""
    repository = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE_COMMIT}:common/query/retrieval.py"],
            cwd=repository,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("bench_retrieval_before")
    sys.modules[module.__name__] = module  # dataclasses resolve their module by name
    exec(compile(source, f"retrieval.py@{BEFORE_COMMIT[:7]}", "exec"), module.__dict__)
    return module


def unfiltered_figures(
    corpus: Corpus, classes: dict[str, list[Project]], queries: int, words: Any
) -> dict[str, Any]:
    """Today's hybrid search against the pre-filter module on the same questions, alternating
    which runs first; per size class p50/p95 and the median of the per-question ratios."""

    before = retrieval_before()
    if before is None:
        return {"unavailable": f"git show {BEFORE_COMMIT[:7]} failed (no git or a shallow clone)"}
    figures: dict[str, Any] = {}
    for name, projects in classes.items():
        rng = np.random.default_rng(len(name))
        times: dict[str, list[float]] = {"before": [], "after": []}
        for number in range(queries):
            project = projects[number % len(projects)]
            vector = sample_vectors(rng, corpus.centroids, project.topics, 1)[0]
            question = " ".join(words.choices(corpus.vocabulary, k=8))
            order = ("before", "after") if number % 2 == 0 else ("after", "before")
            for which in order:
                module = before if which == "before" else retrieval
                times[which].append(_run(_unfiltered(module, project, vector, question))[1])
        ratios = np.asarray(times["after"]) / np.asarray(times["before"])
        figures[name] = {
            **{f"before_{k}": v for k, v in _percentiles(times["before"]).items()},
            **{f"after_{k}": v for k, v in _percentiles(times["after"]).items()},
            "after_over_before_median": float(np.median(ratios)),
            "after_over_before_p95": _percentiles(times["after"])["p95_ms"]
            / _percentiles(times["before"])["p95_ms"],
        }
    return figures


def _unfiltered(
    module: Any, project: Project, vector: np.ndarray, question: str
) -> Callable[[Any], object]:
    def work(session: Any) -> object:
        return module.search(
            session,
            project_id=project.id,
            query_vector=vector,
            question=question,
            top_k=10,
            ef_search=get_settings().hnsw_ef_search,
            exact_max_chunks=get_settings().exact_search_max_chunks,
        )

    return work


def filter_figures(
    corpus: Corpus, classes: dict[str, list[Project]], queries: int
) -> dict[str, Any]:
    import random

    words = random.Random(17)
    project = corpus.big
    return {
        "project_chunks": project.size,
        "classes": {
            c.name: filter_class_figures(corpus, project, c, queries, words) for c in FILTER_CLASSES
        },
        "unfiltered": unfiltered_figures(corpus, classes, queries, words),
    }


def report(figures: dict[str, Any], exact_max_chunks: int) -> None:
    print()
    print(
        f"Filtered search in the biggest project ({figures['project_chunks']} chunks; exact "
        f"ranking up to {exact_max_chunks} matching chunks): SQL = registry (read when a name is "
        "new to the process) + hybrid search; unfiltered = the same questions without the "
        "filter, alternating"
    )
    print(
        "  filter                  docs   chunks  share    plan      SQL p50/p95/p99 ms    "
        "unfiltered p50/p95 ms  recall@10  leaks"
    )
    for name, row in figures["classes"].items():
        print(
            f"  {name:22} {row['documents']:5d} {row['chunks']:8d} {100 * row['share']:6.2f}% "
            f"{row['plan']:9} {row['sql_p50_ms']:6.1f} {row['sql_p95_ms']:6.1f} "
            f"{row['sql_p99_ms']:6.1f}   {row['unfiltered_p50_ms']:6.1f} "
            f"{row['unfiltered_p95_ms']:6.1f}           {row['recall_at_10']:.3f}  "
            f"{row['leaks']:5d}" + ("" if row["filter_agrees"] else "  MATCHED DOCUMENTS DIFFER")
        )
    unfiltered = figures["unfiltered"]
    print()
    if "unavailable" in unfiltered:
        print(f"Unfiltered before/after: {unfiltered['unavailable']}")
        return
    print(
        f"Unfiltered hybrid search, retrieval.py before filters ({BEFORE_COMMIT[:7]}) vs today, "
        "alternating"
    )
    print("  class      before p50/p95 ms   after p50/p95 ms   after/before median  p95")
    for name, row in unfiltered.items():
        print(
            f"  {name:9} {row['before_p50_ms']:8.1f} {row['before_p95_ms']:7.1f}  "
            f"{row['after_p50_ms']:8.1f} {row['after_p95_ms']:7.1f}   "
            f"{row['after_over_before_median']:12.3f}  {row['after_over_before_p95']:6.3f}"
        )
