"""Ingestion against a Vertex AI that behaves like Vertex AI: parallel batches vs one at a time.

The Vertex REST stand-in (common/localstack/vertex_standin.py) answers every request after
`--latency` seconds (default 0.3) plus `--latency-per-text`, enforces the API's per-request
limits (250 texts, 20,000 tokens) and, while the corpus runs, a requests-per-minute quota
(`--quota`, 429 with Retry-After once used up; the big document runs without one). The local
ingestion pipeline (as bench/ingest.py starts it) runs with the real google-genai client
pointed at it, twice in the same run:

- sequential: `AI_INFRA_EMBEDDING_CONCURRENCY=1`, `AI_INFRA_EMBEDDING_BATCH_SIZE=32` (the
  behaviour before parallel batching: a document's batches one after another);
- parallel: the defaults (batches filled to the API's limits, 8 in flight, one shared backoff).

Each mode ingests one ~2,000-chunk document, then the mixed corpus of bench/ingest.py. Reported:
chunks/s end to end and for the embedding stage alone, the speed-up over sequential, and for the
corpus the quota-bound floor (embedding requests / quota) against the wall time reached.

Run: uv run --extra local python -m bench.ingest_vertex [--documents 200] [--big-chunks 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.ingest import _stage_totals, corpus, ingest_files, local_pipeline, prose

SEQUENTIAL = {"AI_INFRA_EMBEDDING_CONCURRENCY": "1", "AI_INFRA_EMBEDDING_BATCH_SIZE": "32"}
PARALLEL: dict[str, str] = {}
# ~256 estimated tokens a chunk, 32 overlapping, split at sentences: ~600 new bytes a chunk.
BYTES_PER_CHUNK = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--big-chunks", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--latency-per-text", type=float, default=0.001)
    parser.add_argument("--quota", type=int, default=120, help="requests per minute")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from common.localstack.vertex_standin import start_model_standin

    with start_model_standin() as standin:
        standin.latency = args.latency
        standin.latency_per_text = args.latency_per_text
        env = {
            **standin.env(),
            "AI_INFRA_EMBEDDING_PROVIDER": "vertex",
            "AI_INFRA_EMBEDDING_DIM": "768",
            "AI_INFRA_MODEL_RETRY_BASE_SECONDS": "1.0",
            "AI_INFRA_MODEL_MAX_RETRIES": "10",
        }
        work = Path(tempfile.mkdtemp(prefix="bench-ingest-vertex-"))
        results: dict[str, dict[str, Any]] = {}
        with local_pipeline(work, env) as pipeline:
            for mode, worker_env in (("sequential", SEQUENTIAL), ("parallel", PARALLEL)):
                pipeline.restart_worker(worker_env)
                # A warm worker (the client is built and imported on first use), as in a
                # steady stream of uploads.
                ingest_files([("warm-up.txt", b"A first small document.", "text/plain")],
                             pipeline.trigger_url)  # fmt: skip
                # The big document measures request parallelism, the corpus the quota.
                standin.requests_per_minute = None
                big = _measure(pipeline, standin, [_big_document(args.big_chunks)])
                standin.requests_per_minute = args.quota
                mixed = _measure(pipeline, standin, corpus(args.documents))
                results[mode] = {"big": big, "corpus": mixed}
    report = _report(results, args)
    print(json.dumps(report))


def _big_document(chunks: int) -> tuple[str, bytes, str]:
    rng = random.Random(11)
    text = ""
    while len(text.encode()) < chunks * BYTES_PER_CHUNK:
        text += prose(rng, 2000) + "\n\n"
    return ("big.txt", text.encode(), "text/plain")


def _measure(pipeline: Any, standin: Any, files: list[tuple[str, bytes, str]]) -> dict[str, Any]:
    before = len(standin.requests)
    stages_before, chunks_before, jobs_before = _stage_totals(pipeline.worker_log)
    _, wall = ingest_files(files, pipeline.trigger_url)
    stages, chunks, jobs = _stage_totals(pipeline.worker_log)
    chunks, jobs = chunks - chunks_before, jobs - jobs_before
    stages = {k: v - stages_before.get(k, 0.0) for k, v in stages.items()}
    requests = standin.requests[before:]
    embedding = [r for r in requests if r.texts]
    return {
        "wall_seconds": round(wall, 2),
        "chunks": chunks,
        "jobs": jobs,
        "embed_seconds": round(stages.get("embed", 0.0), 2),
        "requests": len(embedding),
        "requests_429": sum(1 for r in embedding if r.failed_with == 429),
        "answered_requests": sum(1 for r in embedding if r.failed_with is None),
        "texts_per_request": round(
            sum(r.texts for r in embedding if r.failed_with is None)
            / max(1, sum(1 for r in embedding if r.failed_with is None)),
            1,
        ),
    }


def _report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    seq, par = results["sequential"], results["parallel"]

    def rate(run: dict[str, Any], key: str) -> float:
        return float(run["chunks"]) / max(float(run[key]), 1e-9)

    big_rates = (rate(seq["big"], "wall_seconds"), rate(par["big"], "wall_seconds"))
    corpus_rates = (rate(seq["corpus"], "wall_seconds"), rate(par["corpus"], "wall_seconds"))
    requests = [f"{r['corpus']['requests']} ({r['corpus']['requests_429']})" for r in (seq, par)]

    # A sliding 60 s window lets `quota` requests through at once, then `quota` a minute.
    floor = (math.ceil(par["corpus"]["answered_requests"] / args.quota) - 1) * 60.0
    rows = [
        ("big document: chunks", seq["big"]["chunks"], par["big"]["chunks"]),
        ("big document: wall s", seq["big"]["wall_seconds"], par["big"]["wall_seconds"]),
        ("big document: chunks/s", *big_rates),
        ("big document: embed s", seq["big"]["embed_seconds"], par["big"]["embed_seconds"]),
        ("big document: requests", seq["big"]["requests"], par["big"]["requests"]),
        ("corpus: documents", args.documents, args.documents),
        ("corpus: wall s", seq["corpus"]["wall_seconds"], par["corpus"]["wall_seconds"]),
        ("corpus: chunks/s", *corpus_rates),
        ("corpus: requests (429s)", *requests),
        ("corpus: texts/request", *(r["corpus"]["texts_per_request"] for r in (seq, par))),
    ]  # fmt: skip
    print(f"\nstand-in: {args.latency * 1000:.0f} ms + {args.latency_per_text * 1000:.1f} ms/text "
          f"per request, quota {args.quota}/min", file=sys.stderr)  # fmt: skip
    print(f"{'':32} {'sequential':>14} {'parallel':>14}", file=sys.stderr)
    for label, left, right in rows:
        cells = [f"{v:14.2f}" if isinstance(v, float) else f"{v!s:>14}" for v in (left, right)]
        print(f"{label:32} {cells[0]} {cells[1]}", file=sys.stderr)
    big_speedup = big_rates[1] / big_rates[0]
    embed_speedup = seq["big"]["embed_seconds"] / max(par["big"]["embed_seconds"], 1e-9)
    reached = par["corpus"]["wall_seconds"]
    print(
        f"big document: {big_speedup:.1f}x end to end, {embed_speedup:.1f}x embedding stage; "
        f"corpus quota floor {floor:.1f} s vs {reached:.1f} s reached "
        f"({floor / reached:.0%} of the quota-bound rate; 0 s: the quota did not bind)",
        file=sys.stderr,
    )
    return {
        "latency_ms": args.latency * 1000,
        "quota_per_minute": args.quota,
        "sequential": seq,
        "parallel": par,
        "big_document_speedup": round(big_speedup, 2),
        "big_document_embed_speedup": round(embed_speedup, 2),
        "corpus_speedup": round(seq["corpus"]["wall_seconds"] / par["corpus"]["wall_seconds"], 2),
        "corpus_quota_floor_seconds": round(floor, 1),
        "corpus_share_of_quota_bound_rate": round(floor / par["corpus"]["wall_seconds"], 3),
    }


if __name__ == "__main__":
    main()
