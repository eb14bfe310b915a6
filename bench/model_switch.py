"""Model switch benchmark: a 20,000-chunk project moved from the local model to Vertex AI
(gemini-embedding-001 at 768 dimensions) while a client keeps asking questions.

Drives `ai-infra dev` as a user would (bench/faults_stack.py): the functions under
functions-framework, the Pub/Sub emulator pushing jobs to `chunk_embed`, embedded Postgres, and
Vertex AI played by the REST stand-in (common/localstack/vertex_standin.py) through the real
google-genai client. The stand-in answers each request after 300 ms + 1 ms a text (a batch of
~100 texts takes ~0.4 s, about what Vertex AI takes) under a quota of 600 requests a minute
(429 with Retry-After beyond it): Vertex AI meters gemini-embedding by input tokens (5,000,000
a minute per project and region by default), and 600 of the worker's batches (~10,000 tokens
each here) are the same order, so the quota can bind, as it would on a busy project.

1. the project: the Python standard library's modules, cut and embedded with the local model
   as the worker would (bench/model_switch_corpus.py), written by replaying the worker's write;
2. a client asks retrieve-mode questions over HTTP at a steady rate (`--rate`, open loop) for
   `--phase-seconds` before the switch;
3. `ai-infra embeddings switch --model gemini-embedding-001 --dimensions 768 --yes` (its cost
   estimate recorded) queues one re-embedding job per document; the client keeps asking until
   the project's active space flips, then for `--phase-seconds` more.

Reported: failed questions (goal 0), HTTP p50/p95/p99 before / during / after (and the share
of answers citing the question's document), the time to switch, chunks re-embedded per second
and the share of the quota used, the estimate against what the stand-in received (requests,
texts, tokens at its bytes/4 estimate), and checks that every chunk has its new vector and no
job failed.

Run: uv run --extra local python -m bench.model_switch [--chunks 20000] [--data DIR]
CI:  uv run --extra local python -m bench.model_switch --small
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.faults_stack import Stack, start_stack, without_gcloud
from bench.model_switch_client import Client, failures, phase_figures, questions
from bench.model_switch_corpus import Corpus, build, load
from bench.model_switch_report import (
    api_limit_bound,
    print_report,
    sent_to_standin,
    switch_figures,
)

TARGET_MODEL = "gemini-embedding-001"
TARGET_DIMENSIONS = 768
COLD_SECONDS = 5.0


@dataclass(frozen=True)
class Switch:
    command_started: float
    command_seconds: float
    answer: dict[str, Any]  # the command's JSON: estimate and jobs queued
    flipped: float | None  # when the active space was seen to change (None: timed out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=None, help="default 20,000 (--small 600)")
    parser.add_argument("--small", action="store_true", help="CI: a small project, short phases")
    parser.add_argument("--rate", type=float, default=3.0, help="questions per second")
    parser.add_argument("--phase-seconds", type=float, default=None, help="before and after")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--latency-per-text", type=float, default=0.001)
    parser.add_argument("--quota", type=int, default=600, help="stand-in requests per minute")
    parser.add_argument("--data", type=Path, default=None, help="keep the embedded corpus here")
    parser.add_argument(
        "--pubsub",
        choices=("emulator", "broker"),
        default="emulator",
        help="emulator: gcloud's, as `ai-infra dev` runs it (it pushes 2 messages at a time); "
        "broker: the stack's built-in push broker (one push per message, like Cloud Pub/Sub)",
    )
    parser.add_argument("--prepare", action="store_true", help="build the corpus (--data) only")
    args = parser.parse_args()
    chunks = args.chunks or (600 if args.small else 20_000)
    phase_seconds = args.phase_seconds or (10.0 if args.small else 45.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    corpus = build(chunks, args.data)
    if args.prepare:
        return
    work = Path(tempfile.mkdtemp(prefix="bench-model-switch-"))
    print(f"work folder {work} (the stack's output: dev-output.log)", file=sys.stderr)
    from common.localstack.vertex_standin import start_model_standin

    with start_model_standin() as standin:
        standin.latency = args.latency
        standin.latency_per_text = args.latency_per_text
        standin.requests_per_minute = args.quota
        env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
        env.update(standin.env())
        env["AI_INFRA_EMBEDDING_QUOTA_PER_MINUTE"] = str(args.quota)
        if args.pubsub == "broker":
            env["PATH"] = without_gcloud(env.get("PATH", ""), work / "path-without-gcloud")
        stack = start_stack(work, env)
        try:
            report = run(stack, standin, corpus, args, phase_seconds)
        finally:
            report_stop = stack.stop()
    shutil.rmtree(work / "data", ignore_errors=True)  # the database; the stack's log stays
    report["stack_stop"] = report_stop
    report["bench_seconds"] = round(time.monotonic() - began, 1)
    print_report(report)
    print(json.dumps(report))


def run(
    stack: Stack, standin: Any, corpus: Corpus, args: argparse.Namespace, phase_seconds: float
) -> dict[str, Any]:
    tenant = stack.new_tenant("switch")
    environment = json.loads((stack.data_dir / "dev.json").read_text())["environment"]
    load_seconds = load(
        environment["AI_INFRA_DATABASE_URL"],
        tenant.project_id,
        environment["AI_INFRA_BUCKET"],
        corpus,
    )
    print(f"loaded {corpus.chunks} chunks in {load_seconds:.1f}s", file=sys.stderr)
    pool = questions(corpus.documents, 500)
    client = Client(stack.base, tenant.project_id, tenant.api_key, pool, args.rate)
    client.warm_up()
    client.start()
    asking_from = time.monotonic()
    time.sleep(phase_seconds)
    deadline = max(600.0, corpus.chunks / 5)
    switch = _switch(stack, tenant.project_id, deadline)
    flipped = switch.flipped or time.monotonic()
    finish: dict[str, Any] = {}
    finish_from = finish_to = flipped + phase_seconds
    if switch.flipped is not None:
        time.sleep(phase_seconds)
        # `finish` drops the previous (inline) vectors while the client keeps asking.
        finish_from = time.monotonic()
        answer = stack.cli("embeddings", "finish", "--project", tenant.project_id, "--yes")
        finish_to = time.monotonic() + 2.0
        finish = {"seconds": round(finish_to - 2.0 - finish_from, 1), "answer": answer}
        time.sleep(2.0)
    client.stop()
    asked = list(client.asked)
    phases = {
        "before": phase_figures(asked, asking_from, switch.command_started),
        "during": phase_figures(asked, switch.command_started, flipped),
        "after": phase_figures(asked, flipped, finish_from),
        # Without the first seconds, when the query function builds its Vertex AI client.
        "after 5s+": phase_figures(asked, flipped + COLD_SECONDS, finish_from),
        "finish": phase_figures(asked, finish_from, finish_to),
    }
    sent = sent_to_standin(standin, switch.command_started, flipped)
    return {
        "chunks": corpus.chunks,
        "documents": len(corpus.documents),
        "small": args.small,
        "standin": {
            "latency_ms": args.latency * 1000,
            "latency_per_text_ms": args.latency_per_text * 1000,
            "quota_per_minute": args.quota,
        },
        "corpus_embed_seconds": round(corpus.embed_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "rate_per_second": args.rate,
        "pubsub": args.pubsub,
        "switched": switch.flipped is not None,
        "failed_questions": sum(p["failed"] for p in phases.values()),
        "failures": failures(asked),
        "phases": phases,
        "switch": switch_figures(
            None if switch.flipped is None else switch.flipped - switch.command_started,
            switch.command_seconds,
            sent,
            corpus.chunks,
            args.quota,
        ),
        "estimate": switch.answer.get("estimate", {}),
        "api_limit_bound_requests": api_limit_bound(switch.answer.get("estimate", {})),
        "finish": finish,
        "jobs_queued": sum(p["jobs_queued"] for p in switch.answer.get("projects", [])),
        "sent": sent,
        "checks": _checks(stack, tenant.project_id),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _switch(stack: Stack, project_id: str, timeout: float) -> Switch:
    """Run `ai-infra embeddings switch`; wait for the project's active space to change."""
    before = _spaces(stack, project_id)
    started = time.monotonic()
    answer = stack.cli(
        "embeddings", "switch", "--model", TARGET_MODEL,
        "--dimensions", str(TARGET_DIMENSIONS), "--project", project_id, "--yes",
    )  # fmt: skip
    command_seconds = time.monotonic() - started
    print(f"switch started: {json.dumps(answer)}", file=sys.stderr)
    last_note = time.monotonic()
    while time.monotonic() - started < timeout:
        spaces = _spaces(stack, project_id)
        if spaces is not None and before is not None and spaces[0] != before[0]:
            return Switch(started, command_seconds, answer, time.monotonic())
        if time.monotonic() - last_note > 15:
            last_note = time.monotonic()
            rows = stack.sql(
                "SELECT j.status::text, count(*) FROM ingestion_jobs j "
                "JOIN documents d ON d.id = j.document_id "
                "WHERE d.project_id = :p AND j.space_id IS NOT NULL GROUP BY 1",
                p=project_id,
            )
            counts = dict(rows or [])
            print(f"  switching at {last_note - started:.0f}s: jobs {counts}", file=sys.stderr)
        time.sleep(0.1)
    return Switch(started, command_seconds, answer, None)


def _spaces(stack: Stack, project_id: str) -> tuple[Any, Any] | None:
    rows = stack.sql(
        "SELECT active_space_id, pending_space_id FROM projects WHERE id = :p", p=project_id
    )
    return (rows[0][0], rows[0][1]) if rows else None


def _checks(stack: Stack, project_id: str) -> dict[str, Any]:
    """The project after the switch: its spaces, vectors per space, jobs."""
    from common.platform.spaces import table_name

    table = table_name(TARGET_MODEL, TARGET_DIMENSIONS)
    rows = stack.sql(
        "SELECT (SELECT count(*) FROM document_chunks WHERE project_id = :p), "
        "(SELECT count(*) FROM document_chunks WHERE project_id = :p AND embedding IS NOT NULL), "
        f"(SELECT count(*) FROM {table} v WHERE v.project_id = :p), "
        "(SELECT a.model FROM projects p JOIN embedding_spaces a ON a.id = p.active_space_id "
        " WHERE p.id = :p), "
        "(SELECT count(*) FROM ingestion_jobs j JOIN documents d ON d.id = j.document_id "
        " WHERE d.project_id = :p AND j.space_id IS NOT NULL AND j.status = 'failed'), "
        "(SELECT coalesce(max(j.attempts), 0) FROM ingestion_jobs j "
        " JOIN documents d ON d.id = j.document_id "
        " WHERE d.project_id = :p AND j.space_id IS NOT NULL)",
        p=project_id,
    )
    if not rows:
        return {"read": False}
    chunks, inline, target, active, failed, attempts = rows[0]
    return {
        "chunks": int(chunks),
        "inline_vectors_left": int(inline),
        "target_vectors": int(target),
        "active_model": active,
        "failed_jobs": int(failed),
        "max_attempts": int(attempts),
    }


if __name__ == "__main__":
    main()
