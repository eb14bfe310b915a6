"""What the optional reranking stage adds to a query: the served query function without a reranker
(the baseline) against the same function reranking with the Vertex AI ranking API stand-in
(`common/localstack/vertex_standin.py`), alternating request by request on one database.

The reranked function fetches `--candidates` fused results instead of top_k and sends them to the
ranker, so the difference covers the wider search, building the request, the HTTP round trip and
the reordering; `--ranker-latency-ms` adds the ranker's own answer time (the stand-in answers at
once by default, so the figure is our overhead). Retrieve mode (the reranker sits before
generation, so answer mode adds the same). Prints p50/p95 of each side, the added latency and the
Server-Timing phases (`sql`, `rerank`), then one JSON line.
Run: uv run --extra local python -m bench.rerank [--queries 200] [--chunks 2000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from common.query.api.context import parse_server_timing

QUESTIONS = [
    "How often is the hinge pin of the rover replaced?",
    "Where can visitors park at the Lisbon office?",
    "What is the sourdough starter fed every morning?",
    "Which part is the titanium hinge pin of the rear hatch?",
    "When is the coolant valve of the gearbox inspected?",
    "Who cleans the staff kitchen on Fridays?",
    "How many operating hours before the main bearing is serviced?",
    "What do guests show at reception?",
]


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def measure(
    clients: dict[str, httpx.Client], project_id: str, key: str, queries: int, top_k: int
) -> dict[str, dict[str, list[float]]]:
    """Alternate the two functions (the order flips every pair) so drift hits both equally."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {"total": [], "sql": [], "rerank": []} for name in clients
    }
    names = list(clients)
    for number in range(queries):
        question = QUESTIONS[number % len(QUESTIONS)]
        for name in names if number % 2 == 0 else reversed(names):
            start = time.perf_counter()
            response = clients[name].post(
                f"/v1/projects/{project_id}/query",
                json={"question": question, "mode": "retrieve", "top_k": top_k},
                headers={"Authorization": f"Bearer {key}"},
            )
            elapsed = (time.perf_counter() - start) * 1000
            response.raise_for_status()
            phases = parse_server_timing(response.headers.get("server-timing", ""))
            samples[name]["total"].append(elapsed)
            samples[name]["sql"].append(phases.get("sql", 0.0))
            samples[name]["rerank"].append(phases.get("rerank", 0.0))
            if name == "reranked":
                scores = [c["rerank_score"] for c in response.json()["citations"]]
                assert all(s is not None for s in scores), "the reranker fell back"
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200, help="queries per function")
    parser.add_argument("--chunks", type=int, default=2000, help="chunks in the project")
    parser.add_argument("--candidates", type=int, default=40, help="AI_INFRA_RERANK_CANDIDATES")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--ranker-latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ai-infra-bench-rerank-"))
    from common.localstack import embedded_pg
    from common.localstack.functions import start_function
    from common.localstack.processes import Child, free_port
    from common.localstack.vertex_standin import start_model_standin

    server = embedded_pg.start(data_dir / "pg", database="ai_infra_bench")
    children: list[Child] = []
    try:
        tenant = _corpus(server.url, args.chunks)
        with start_model_standin() as standin:
            standin.latency = args.ranker_latency_ms / 1000
            base_env = {
                "AI_INFRA_DATABASE_URL": server.url,
                "AI_INFRA_GENERATION_PROVIDER": "extractive",
                "AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE": "1000000",
                **standin.env(),
            }
            variants = {
                "baseline": {"AI_INFRA_RERANK_PROVIDER": "none"},
                "reranked": {
                    "AI_INFRA_RERANK_PROVIDER": "vertex",
                    "AI_INFRA_RERANK_CANDIDATES": str(args.candidates),
                    "AI_INFRA_RERANK_TIMEOUT_SECONDS": "5",
                },
            }
            clients: dict[str, httpx.Client] = {}
            for name, env in variants.items():
                port = free_port()
                children.append(
                    start_function(
                        "query", port=port, env={**base_env, **env}, log_dir=data_dir / name
                    )
                )
                clients[name] = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
            project, key = str(tenant.project_id), tenant.api_key
            measure(clients, project, key, 10, args.top_k)  # warm-up: imports, pools, plans
            samples = measure(clients, project, key, args.queries, args.top_k)
            ranked = standin.requests_to("rank")
            records = len(ranked[-1].body["records"]) if ranked else 0
            for client in clients.values():
                client.close()
    finally:
        for child in children:
            child.stop()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report(samples, args, records)


def _corpus(database_url: str, chunks: int) -> Any:
    """A tenant whose project holds `chunks` generated sentences plus the planted facts."""
    import os

    os.environ["AI_INFRA_DATABASE_URL"] = database_url
    from common.platform import migrate
    from common.platform.config import get_settings
    from common.platform.db import reset_engine
    from tests.fixtures.factories import make_tenant
    from tests.fixtures.query import insert_document
    from tests.fixtures.query_text import PLANTED, distractor_sentences

    get_settings.cache_clear()
    reset_engine()
    migrate.upgrade()
    tenant = make_tenant("bench-rerank")
    sentences = distractor_sentences()[:chunks]
    for start in range(0, len(sentences), 100):
        insert_document(tenant, f"Handbook part {start // 100 + 1}", sentences[start : start + 100])
    for name, fact in PLANTED.items():
        insert_document(tenant, f"Notes on {name}", [fact])
    reset_engine()
    return tenant


def report(
    samples: dict[str, dict[str, list[float]]], args: argparse.Namespace, records: int
) -> None:
    base, reranked = samples["baseline"], samples["reranked"]
    figures: dict[str, Any] = {
        "queries": args.queries,
        "chunks": args.chunks,
        "candidates_sent": records,
        "top_k": args.top_k,
        "ranker_latency_ms": args.ranker_latency_ms,
    }
    print(f"{'':>22} {'p50 ms':>8} {'p95 ms':>8}")
    rows = [
        ("baseline total", base["total"]),
        ("reranked total", reranked["total"]),
        ("baseline sql", base["sql"]),
        ("reranked sql", reranked["sql"]),
        ("rerank phase", reranked["rerank"]),
    ]
    for label, values in rows:
        pct = _percentiles(values)
        key = label.replace(" ", "_")
        figures[f"{key}_p50_ms"] = round(pct["p50"], 2)
        figures[f"{key}_p95_ms"] = round(pct["p95"], 2)
        print(f"{label:>22} {pct['p50']:>8.2f} {pct['p95']:>8.2f}")
    for q in ("p50", "p95"):
        added = figures[f"reranked_total_{q}_ms"] - figures[f"baseline_total_{q}_ms"]
        figures[f"added_{q}_ms"] = round(added, 2)
    print(f"{'added':>22} {figures['added_p50_ms']:>8.2f} {figures['added_p95_ms']:>8.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
