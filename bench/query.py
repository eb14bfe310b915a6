"""Query latency and search quality at 100,000 chunks across 100 projects.

1. An embedded Postgres of its own (fresh folder), migrated; 100,000 chunks with clustered
   vectors loaded with COPY; the HNSW and GIN indexes built afterwards (times printed).
2. SQL level, per project size (small 0.1% of the table, regular ~0.8%, big 20%): the service's
   hybrid search as planned against the same search with index scans disabled (exact vector
   arm: the baseline), the plan Postgres picks, and recall@10 of the vector arm against exact
   search, as planned and with the filtered HNSW scan forced on.
3. HTTP level: retrieve-mode queries through the served function (functions-framework) at
   concurrency 1 and 8: p50/p95/p99, throughput, and the share of server time spent in SQL
   and in embedding the question (from the `Server-Timing` header).

Ends with one JSON line of the figures.
Run: uv run --extra local python -m bench.query [--chunks 100000] [--queries 200]
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

from bench.query_data import Corpus, Project, load, sample_vectors


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _question(corpus: Corpus, rng: random.Random) -> str:
    return " ".join(rng.choices(corpus.vocabulary, k=8))


# --- SQL level --------------------------------------------------------------------------------
def _settings() -> Any:
    from common.platform.config import get_settings

    return get_settings()


def vector_arm(project: Project, vector: np.ndarray, *, mode: str) -> set[Any]:
    """The service's vector arm (40 candidates, re-sorted, top 10): as planned, with the HNSW
    index forced (`enable_sort = off` prices the exact plan out), or exact (an ORDER BY
    expression no index can serve)."""
    from common.platform.db import transaction
    from common.query.retrieval import configure_search, vector_literal

    distance = "embedding <=> CAST(:q AS vector)"
    order = f"({distance}) + 0" if mode == "exact" else distance
    with transaction() as session:
        configure_search(session, _settings().hnsw_ef_search)
        if mode == "hnsw":
            session.execute(text("SET LOCAL enable_sort = off"))
        rows = session.execute(
            text(
                f"WITH arm AS MATERIALIZED (SELECT id, {distance} AS d FROM document_chunks "
                f"WHERE project_id = :p ORDER BY {order} LIMIT 40) "
                "SELECT id FROM arm ORDER BY d LIMIT 10"
            ),
            {"p": project.id, "q": vector_literal(vector)},
        ).all()
    return {row[0] for row in rows}


def recall_at_10(corpus: Corpus, projects: list[Project], mode: str, queries: int) -> float:
    rng = np.random.default_rng(3)
    hits = 0
    for number in range(queries):
        project = projects[number % len(projects)]
        vector = sample_vectors(rng, corpus.centroids, project.topics, 1)[0]
        truth = vector_arm(project, vector, mode="exact")
        hits += len(vector_arm(project, vector, mode=mode) & truth)
    return hits / (10 * queries)


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
        )
    return (time.perf_counter() - started) * 1000


def planned_vector_arm(project: Project, vector: np.ndarray) -> str:
    from common.platform.db import transaction
    from common.query.retrieval import configure_search, vector_literal

    with transaction() as session:
        configure_search(session, _settings().hnsw_ef_search)
        plan = session.execute(
            text(
                "EXPLAIN SELECT id FROM document_chunks WHERE project_id = :p "
                "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 40"
            ),
            {"p": project.id, "q": vector_literal(vector)},
        ).all()
    return "hnsw" if "embedding_hnsw" in " ".join(row[0] for row in plan) else "exact"


def sql_class(corpus: Corpus, projects: list[Project], queries: int) -> dict[str, Any]:
    """Hybrid search as planned vs. the exact baseline, on the same queries, plus recall."""
    rng = np.random.default_rng(len(projects[0].topics) + projects[0].size)
    words = random.Random(projects[0].size)
    planned: list[float] = []
    exact: list[float] = []
    for number in range(queries):
        project = projects[number % len(projects)]
        vector = sample_vectors(rng, corpus.centroids, project.topics, 1)[0]
        question = _question(corpus, words)
        # Alternate which runs first, so warm caches favour neither.
        for exact_first in (number % 2 == 0, number % 2 == 1):
            timed = _timed_search(project, vector, question, exact=exact_first)
            (exact if exact_first else planned).append(timed)
    sample = sample_vectors(rng, corpus.centroids, projects[0].topics, 1)[0]
    return {
        "chunks": projects[0].size,
        "plan": planned_vector_arm(projects[0], sample),
        "planned_p50_ms": percentile(planned, 50),
        "planned_p95_ms": percentile(planned, 95),
        "exact_p50_ms": percentile(exact, 50),
        "exact_p95_ms": percentile(exact, 95),
        "planned_vs_exact_p50": percentile(planned, 50) / percentile(exact, 50),
        "recall_at_10_planned": recall_at_10(corpus, projects, "planned", 30),
    }


def sql_figures(corpus: Corpus, queries: int) -> dict[str, Any]:
    regular = [p for p in corpus.projects if p not in (corpus.small, corpus.big)]
    classes = {
        "small": sql_class(corpus, [corpus.small], queries),
        "regular": sql_class(corpus, regular, queries),
        "big": sql_class(corpus, [corpus.big], queries),
    }
    return {
        "classes": classes,
        "recall_at_10_forced_hnsw_small": recall_at_10(corpus, [corpus.small], "hnsw", 30),
        "recall_at_10_forced_hnsw_regular": recall_at_10(corpus, regular, "hnsw", 30),
    }


# --- HTTP level -------------------------------------------------------------------------------
def _server_timing(header: str) -> dict[str, float]:
    phases = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            phases[name] = float(duration)
    return phases


def http_figures(url: str, corpus: Corpus, concurrency: int, count: int) -> dict[str, float]:
    rng = random.Random(concurrency)
    work = []
    for _ in range(count):
        project = rng.choice(corpus.projects)
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
            phases.append(_server_timing(response.headers["server-timing"]))

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
    parser.add_argument("--small-project", type=int, default=100)
    parser.add_argument("--big-project", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200, help="HTTP queries per concurrency")
    parser.add_argument("--sql-queries", type=int, default=40, help="per project class")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ai-infra-bench-query-"))
    shutil.rmtree(data_dir, ignore_errors=True)
    from common.localstack import embedded_pg

    server = embedded_pg.start(data_dir / "pg", database="ai_infra_bench")
    child = None
    try:
        os.environ["AI_INFRA_DATABASE_URL"] = server.url
        from common.platform import migrate
        from common.platform.config import get_settings
        from common.platform.db import get_engine, reset_engine

        get_settings.cache_clear()
        reset_engine()
        migrate.upgrade()
        model = get_settings().resolved_embedding_model
        corpus = load(
            get_engine(),
            chunks=args.chunks,
            projects=args.projects,
            small_size=args.small_project,
            big_size=args.big_project,
            model=model,
        )
        sql = sql_figures(corpus, args.sql_queries)
        child, url = serve(server.url, data_dir / "logs", 8)
        http_figures(url, corpus, 4, 16)  # warm-up: model load, pools, caches
        runs = [http_figures(url, corpus, c, args.queries) for c in (1, 8)]
    finally:
        if child is not None:
            child.stop()
        reset_engine()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report(args, corpus, sql, runs)


def report(args: Any, corpus: Corpus, sql: dict[str, Any], runs: list[dict[str, float]]) -> None:
    print(
        f"corpus: {args.chunks} chunks in {args.projects} projects (one of {args.small_project}, "
        f"one of {args.big_project}, the rest even); vectors {corpus.centroids.shape[1]}-d"
    )
    builds = ", ".join(f"{k} {v:.1f}s" for k, v in corpus.index_seconds.items())
    print(f"load (COPY) {corpus.load_seconds:.1f}s; index builds after load: {builds}")
    print()
    print("SQL, in-process hybrid search (top_k=10): as planned vs exact-vector baseline")
    print("  project   chunks  plan    planned p50/p95 ms   exact p50/p95 ms  ratio  recall@10")
    for name, row in sql["classes"].items():
        print(
            f"  {name:8} {row['chunks']:7d}  {row['plan']:6} {row['planned_p50_ms']:8.2f} "
            f"{row['planned_p95_ms']:8.2f}   {row['exact_p50_ms']:8.2f} {row['exact_p95_ms']:8.2f}"
            f"  {row['planned_vs_exact_p50']:5.2f}  {row['recall_at_10_planned']:6.3f}"
        )
    print(
        "  recall@10 of the filtered HNSW scan forced on: small project "
        f"{sql['recall_at_10_forced_hnsw_small']:.3f}, regular project "
        f"{sql['recall_at_10_forced_hnsw_regular']:.3f} (target >= 0.95)"
    )
    print()
    print("HTTP retrieve mode  conc  queries   p50 ms   p95 ms   p99 ms    q/s   SQL%  embed%")
    for run in runs:
        print(
            f"{'':19} {run['concurrency']:4d} {run['queries']:8d} {run['p50_ms']:8.1f} "
            f"{run['p95_ms']:8.1f} {run['p99_ms']:8.1f} {run['throughput_qps']:6.1f} "
            f"{100 * run['sql_share']:5.1f} {100 * run['embed_share']:6.1f}"
        )
    ratio = runs[1]["throughput_qps"] / runs[0]["throughput_qps"]
    print(f"  throughput ratio concurrency 8 / 1: {ratio:.2f} (on {os.cpu_count()} cores)")

    def rounded(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return round(value, 4) if isinstance(value, float) else value

    figures = {
        "chunks": args.chunks,
        "projects": args.projects,
        "load_seconds": corpus.load_seconds,
        "index_seconds": corpus.index_seconds,
        **sql,
        "http": runs,
        "throughput_ratio_c8_c1": ratio,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(rounded(figures)))


if __name__ == "__main__":
    main()
