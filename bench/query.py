"""Query latency and search quality: 100,000 chunks in 100 projects, or a million in a thousand.

1. An embedded Postgres of its own (fresh folder), migrated; chunks with clustered vectors
   loaded with COPY (`--skew even`: one small project, one big, the rest even; `--skew zipf`:
   project k holds a share ~1/k, documents interleaved across projects, see bench/query_data);
   the HNSW and GIN indexes built afterwards (times printed).
2. SQL level, per project size class: the service's hybrid search as served against the same
   search with index scans disabled (exact vector arm: the baseline), p50/p95/p99; the plan of
   the served vector arm; served recall@10 (the service's dense arm against exact search); and
   recall@10 of the filtered HNSW scan forced on, for comparison.
3. HTTP level, per class: retrieve-mode queries through the served function
   (functions-framework) at concurrency 1 and 8: p50/p95/p99, throughput, and the share of
   server time spent in SQL and in embedding the question (from the `Server-Timing` header).
4. `--filter`: filtered questions in the biggest project (filters keeping 50% down to 0.05% of
   its chunks, and list filters): recall@10 against an exact filtered scan, SQL percentiles,
   the plan; and unfiltered search before and after filters were wired (bench/query_filter).

Ends with one JSON line of the figures.
Run: uv run --extra local python -m bench.query [--chunks 100000] [--queries 200]
     uv run --extra local python -m bench.query --chunks 1000000 --projects 1000 --skew zipf \
         --data-dir /tmp/bench-query-1m --keep-data     (a second run reuses the loaded data)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import text

from bench.query_data import Corpus, Project, load, restore, sample_vectors, save
from common.query.api.context import parse_server_timing


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _question(corpus: Corpus, rng: random.Random) -> str:
    return " ".join(rng.choices(corpus.vocabulary, k=8))


# --- SQL level --------------------------------------------------------------------------------
def _settings() -> Any:
    from common.platform.config import get_settings

    return get_settings()


def _top10(project: Project, vector: np.ndarray, sql: str, setup: tuple[str, ...] = ()) -> set[Any]:
    from common.platform.db import transaction
    from common.query.retrieval import vector_literal

    with transaction() as session:
        for statement in setup:
            session.execute(text(statement))
        rows = session.execute(text(sql), {"p": project.id, "q": vector_literal(vector)}).all()
    return {row[0] for row in rows}


def exact_top10(project: Project, vector: np.ndarray) -> set[Any]:
    """The true 10 nearest chunks of the project: an ORDER BY expression no index can serve."""
    return _top10(
        project,
        vector,
        "SELECT id FROM document_chunks WHERE project_id = :p "
        "ORDER BY (embedding <=> CAST(:q AS vector)) + 0 LIMIT 10",
    )


def forced_hnsw_top10(project: Project, vector: np.ndarray) -> set[Any]:
    """The filtered HNSW scan with pgvector's defaults (max_scan_tuples 20,000), forced on."""
    return _top10(
        project,
        vector,
        "WITH arm AS MATERIALIZED (SELECT id, embedding <=> CAST(:q AS vector) AS d "
        "FROM document_chunks WHERE project_id = :p "
        "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 80) "
        "SELECT id FROM arm ORDER BY d LIMIT 10",
        setup=(
            "SET LOCAL hnsw.iterative_scan = relaxed_order",
            f"SET LOCAL hnsw.ef_search = {_settings().hnsw_ef_search}",
            "SET LOCAL enable_sort = off",
        ),
    )


def served_top10(project: Project, vector: np.ndarray) -> set[Any]:
    """The service's own vector arm, as it serves a query (its plan and settings)."""
    from common.platform.db import transaction
    from common.query.retrieval import search

    with transaction() as session:
        found = search(
            session,
            project_id=project.id,
            query_vector=vector,
            question="",
            top_k=10,
            ef_search=_settings().hnsw_ef_search,
            exact_max_chunks=_settings().exact_search_max_chunks,
            arms="dense",
        )
    return {chunk.chunk_id for chunk in found}


def recall_at_10(corpus: Corpus, projects: list[Project], queries: int) -> tuple[float, float]:
    """Recall@10 of the served vector arm and of the forced filtered HNSW scan, on the same
    questions against one exact answer each (the exact scan is the costly part)."""
    rng = np.random.default_rng(3)
    served = forced = 0
    for number in range(queries):
        project = projects[number % len(projects)]
        vector = sample_vectors(rng, corpus.centroids, project.topics, 1)[0]
        truth = exact_top10(project, vector)
        served += len(served_top10(project, vector) & truth)
        forced += len(forced_hnsw_top10(project, vector) & truth)
    return served / (10 * queries), forced / (10 * queries)


def _timed_search(project: Project, vector: np.ndarray, question: str, *, exact: bool) -> float:
    from common.platform.db import transaction
    from common.query.retrieval import search

    started = time.perf_counter()
    with transaction() as session:
        if exact:  # HNSW is only ever an index scan; bitmap scans still serve project_id
            session.execute(text("SET LOCAL enable_indexscan = off"))
        search(
            session,
            project_id=project.id,
            query_vector=vector,
            question=question,
            top_k=10,
            ef_search=_settings().hnsw_ef_search,
            exact_max_chunks=_settings().exact_search_max_chunks,
        )
    return (time.perf_counter() - started) * 1000


def served_plan(project: Project, vector: np.ndarray) -> str:
    """How the service's vector arm runs for this project: an HNSW index or an exact scan."""
    from common.platform.db import transaction
    from common.query.retrieval import explain_search

    with transaction() as session:
        plan = explain_search(
            session,
            project_id=project.id,
            query_vector=vector,
            question="",
            top_k=10,
            ef_search=_settings().hnsw_ef_search,
            exact_max_chunks=_settings().exact_search_max_chunks,
        )
    if "ix_chunks_hnsw_project_" in plan:
        return "own-hnsw"  # the project's own graph (common/ingestion/project_indexes.py)
    return "hnsw" if "embedding_hnsw" in plan else "exact"


def sql_class(corpus: Corpus, projects: list[Project], queries: int) -> dict[str, Any]:
    """Hybrid search as served vs. the exact baseline, on the same queries, plus recall."""
    rng = np.random.default_rng(len(projects[0].topics) + projects[0].size)
    words = random.Random(projects[0].size)
    served: list[float] = []
    exact: list[float] = []
    for number in range(queries):
        project = projects[number % len(projects)]
        vector = sample_vectors(rng, corpus.centroids, project.topics, 1)[0]
        question = _question(corpus, words)
        # Alternate which runs first, so warm caches favour neither.
        for exact_first in (number % 2 == 0, number % 2 == 1):
            timed = _timed_search(project, vector, question, exact=exact_first)
            (exact if exact_first else served).append(timed)
    plans = sorted(
        {served_plan(p, sample_vectors(rng, corpus.centroids, p.topics, 1)[0]) for p in projects}
    )
    recall_served, recall_forced = recall_at_10(
        corpus,
        projects,
        max(100, 10 * len(projects)),  # per-query recall varies widely
    )
    return {
        "projects": len(projects),
        "chunks_min": min(p.size for p in projects),
        "chunks_max": max(p.size for p in projects),
        "plan": "+".join(plans),
        "served_p50_ms": percentile(served, 50),
        "served_p95_ms": percentile(served, 95),
        "served_p99_ms": percentile(served, 99),
        "exact_p50_ms": percentile(exact, 50),
        "exact_p95_ms": percentile(exact, 95),
        "served_vs_exact_p50": percentile(served, 50) / percentile(exact, 50),
        "recall_at_10_served": recall_served,
        "recall_at_10_forced_hnsw": recall_forced,
    }


# Size classes of the zipf shape (upper bounds, chunks) and how many projects each samples.
ZIPF_CLASSES = (("<1k", 1_000), ("1k-5k", 5_000), ("5k-20k", 20_000), ("20k-100k", 100_000))
PROJECTS_PER_CLASS = 5


def size_classes(corpus: Corpus, skew: str) -> dict[str, list[Project]]:
    if skew == "even":
        regular = [p for p in corpus.projects if p not in (corpus.small, corpus.big)]
        return {"small": [corpus.small], "regular": regular, "big": [corpus.big]}
    classes: dict[str, list[Project]] = {}
    lower = 0
    bounds = [*ZIPF_CLASSES, (">=100k", None)]
    for name, upper in bounds:
        members = sorted(
            (p for p in corpus.projects if p.size >= lower and (upper is None or p.size < upper)),
            key=lambda p: p.size,
        )
        if members:  # spread the sample over the class's range of sizes
            step = max(1, len(members) // PROJECTS_PER_CLASS)
            classes[name] = members[::step][:PROJECTS_PER_CLASS]
        lower = upper or 0
    return classes


def sql_figures(classes: dict[str, list[Project]], corpus: Corpus, queries: int) -> dict[str, Any]:
    return {"classes": {name: sql_class(corpus, ps, queries) for name, ps in classes.items()}}


# --- HTTP level -------------------------------------------------------------------------------
def http_figures(
    url: str, corpus: Corpus, projects: list[Project], concurrency: int, count: int
) -> dict[str, float]:
    rng = random.Random(concurrency)
    work = []
    for _ in range(count):
        project = rng.choice(projects)
        work.append((project, _question(corpus, rng)))
    latencies: list[float] = []
    phases: list[dict[str, float]] = []
    with httpx.Client(base_url=url, timeout=60) as client:

        def one(item: tuple[Project, str]) -> None:
            project, question = item
            started = time.perf_counter()
            response = client.post(
                f"/v1/projects/{project.id}/query",
                json={"question": question, "mode": "retrieve", "top_k": 10},
                headers={"Authorization": f"Bearer {project.api_key}"},
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"query failed: {response.status_code} {response.text}")
            phases.append(parse_server_timing(response.headers["server-timing"]))

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, work))
        elapsed = time.perf_counter() - started
    total = sum(p.get("total", 0.0) for p in phases)
    return {
        "concurrency": concurrency,
        "queries": count,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "throughput_qps": count / elapsed,
        "sql_share": sum(p.get("sql", 0.0) for p in phases) / total,
        "embed_share": sum(p.get("embed", 0.0) for p in phases) / total,
    }


def serve(database_url: str, log_dir: Path, concurrency: int) -> tuple[Any, str]:
    from common.localstack.functions import start_function
    from common.localstack.processes import free_port

    port = free_port()
    env = {
        "AI_INFRA_DATABASE_URL": database_url,
        "AI_INFRA_DB_POOL_SIZE": str(concurrency),
        "AI_INFRA_LOG_LEVEL": "WARNING",
        "THREADS": str(max(8, concurrency)),
    }
    child = start_function("query", port=port, env=env, log_dir=log_dir)
    return child, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--skew", choices=("even", "zipf"), default="even")
    parser.add_argument("--small-project", type=int, default=100, help="--skew even")
    parser.add_argument("--big-project", type=int, default=20_000, help="--skew even")
    parser.add_argument("--queries", type=int, default=200, help="HTTP queries per concurrency")
    parser.add_argument("--sql-queries", type=int, default=40, help="per project class")
    parser.add_argument(
        "--filter", action="store_true", help="also measure filtered search (bench/query_filter)"
    )
    parser.add_argument(
        "--filter-queries", type=int, default=200, help="--filter: questions per filter class"
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep --data-dir; a later run with the same folder reuses the loaded corpus",
    )
    args = parser.parse_args()
    if args.skew == "even" and args.small_project + args.big_project >= args.chunks:
        parser.error("--skew even needs --chunks above --small-project + --big-project")

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ai-infra-bench-query-"))
    corpus = restore(data_dir) if args.keep_data else None
    if corpus is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    from common.localstack import embedded_pg

    server = embedded_pg.start(data_dir / "pg", database="ai_infra_bench")
    child = None
    filtered: dict[str, Any] | None = None
    try:
        os.environ["AI_INFRA_DATABASE_URL"] = server.url
        from common.platform import migrate
        from common.platform.config import get_settings
        from common.platform.db import get_engine, reset_engine

        get_settings.cache_clear()
        reset_engine()
        migrate.upgrade()
        if corpus is None:
            corpus = load(
                get_engine(),
                chunks=args.chunks,
                projects=args.projects,
                small_size=args.small_project,
                big_size=args.big_project,
                model=get_settings().resolved_embedding_model,
                skew=args.skew,
            )
        # What the sweep does in the service: a graph of its own for each project searched
        # through HNSW (common/ingestion/project_indexes.py), timed with the load.
        from common.ingestion.project_indexes import sync_project_indexes

        built = sync_project_indexes(
            min_chunks=get_settings().exact_search_max_chunks, max_builds=len(corpus.projects)
        )
        if built.built:
            key = f"project indexes ({len(built.built)})"
            corpus.index_seconds[key] = sum(built.build_seconds.values())
        if args.filter:
            from bench.query_filter import apply_attributes

            corpus.index_seconds.update(apply_attributes(get_engine(), corpus.big))
        if args.keep_data:
            save(corpus, data_dir)
        classes = size_classes(corpus, args.skew)
        sql = sql_figures(classes, corpus, args.sql_queries)
        if args.filter:
            from bench.query_filter import filter_figures

            filtered = filter_figures(corpus, classes, args.filter_queries)
        child, url = serve(server.url, data_dir / "logs", 8)
        http_figures(url, corpus, corpus.projects, 4, 16)  # warm-up: model load, pools, caches
        runs = {
            name: [http_figures(url, corpus, projects, c, args.queries) for c in (1, 8)]
            for name, projects in classes.items()
        }
    finally:
        if child is not None:
            child.stop()
        reset_engine()
        server.stop()
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    report(args, corpus, sql, runs, filtered)


def report(
    args: Any,
    corpus: Corpus,
    sql: dict[str, Any],
    runs: dict[str, list[dict[str, float]]],
    filtered: dict[str, Any] | None = None,
) -> None:
    sizes = sorted((p.size for p in corpus.projects), reverse=True)
    top = sum(sizes[: max(1, len(sizes) // 100)]) / sum(sizes)
    print(
        f"corpus: {sum(sizes)} chunks in {len(sizes)} projects ({args.skew}: largest "
        f"{sizes[0]}, smallest {sizes[-1]}, the top 1% of projects hold {100 * top:.0f}%); "
        f"vectors {corpus.centroids.shape[1]}-d"
    )
    builds = ", ".join(f"{k} {v:.1f}s" for k, v in corpus.index_seconds.items())
    print(f"load (COPY) {corpus.load_seconds:.1f}s; after the load: {builds}")
    print()
    print("SQL, in-process hybrid search (top_k=10) as served vs the exact-vector baseline")
    print(
        "  class     projects  chunks         plan   served p50/p95/p99 ms    exact p50/p95 ms"
        "  recall@10 served / forced HNSW"
    )
    for name, row in sql["classes"].items():
        print(
            f"  {name:9} {row['projects']:8d}  {row['chunks_min']:6d}-{row['chunks_max']:<7d} "
            f"{row['plan']:10} {row['served_p50_ms']:6.1f} {row['served_p95_ms']:6.1f} "
            f"{row['served_p99_ms']:6.1f}   {row['exact_p50_ms']:8.1f} {row['exact_p95_ms']:8.1f}"
            f"   {row['recall_at_10_served']:6.3f} / {row['recall_at_10_forced_hnsw']:.3f}"
        )
    print()
    print(
        "HTTP retrieve mode  class     conc  queries  p50 ms  p95 ms  p99 ms    q/s  SQL%  embed%"
    )
    for name, pair in runs.items():
        for run in pair:
            print(
                f"{'':19} {name:9} {run['concurrency']:4d} {run['queries']:8d} "
                f"{run['p50_ms']:7.1f} {run['p95_ms']:7.1f} {run['p99_ms']:7.1f} "
                f"{run['throughput_qps']:6.1f} {100 * run['sql_share']:5.1f} "
                f"{100 * run['embed_share']:6.1f}"
            )
    everything = [run for pair in runs.values() for run in pair]
    ratio = sum(r["throughput_qps"] for r in everything if r["concurrency"] == 8) / sum(
        r["throughput_qps"] for r in everything if r["concurrency"] == 1
    )
    print(f"  throughput ratio concurrency 8 / 1: {ratio:.2f} (on {os.cpu_count()} cores)")
    if filtered is not None:
        from bench.query_filter import report as report_filtered

        report_filtered(filtered, _settings().exact_search_max_chunks)

    def rounded(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return round(value, 4) if isinstance(value, float) else value

    figures = {
        "chunks": sum(sizes),
        "projects": len(sizes),
        "skew": args.skew,
        "load_seconds": corpus.load_seconds,
        "index_seconds": corpus.index_seconds,
        **sql,
        "http": runs,
        "throughput_ratio_c8_c1": ratio,
        "cpu_count": os.cpu_count(),
        **({"filter": filtered} if filtered is not None else {}),
    }
    print(json.dumps(rounded(figures)))


if __name__ == "__main__":
    main()
