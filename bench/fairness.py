"""Fairness benchmark: one team's bulk upload against another team's next documents.

Drives `ai-infra dev` (bench/fairness_stack.py) with the Vertex AI provider pointed at the
stand-in (common/localstack/vertex_standin.py), so admission, deferral, release and the real
client's 429 backoff all run. Two stacks, up at once so that their runs alternate:

- fair: `AI_INFRA_INGEST_CAPACITY` 10 (the cloud's default chunk-embed max instances), 20 worker
  threads: 10 for jobs and 10 more for deliveries that are only deferred (in the cloud: instances
  above the capacity; with exactly 10, a delivery cannot reach the admission check while 10 jobs
  run, and waits in the queue in arrival order);
- fairness off: capacity 1000 with 10 threads: never a deferral (every fair share exceeds the
  10 workers), 10 jobs at once in arrival order, as before fair scheduling; or, with
  `--before REF`, commit REF's stack run from a temporary git worktree.

Pub/Sub: the stack's push broker by default (see bench/fairness_stack.py: the gcloud emulator
pushes 2 messages at a time, so under it at most 2 jobs run and no capacity ever binds).
The stand-in answers after 1 s a request (+1 ms a text): what a small document's job waits on
in the cloud besides its CPU (the model, GCS, Cloud SQL round trips), so that the 10 slots are
the bottleneck, as chunk-embed's 10 instances are, not this machine's 2 shared cores. Its quota
(1,500 requests a minute) is above what the stack sends, except in the run where the quota is
the bottleneck (120 a minute).

Teams' documents: Markdown notes of about 1 KB (one chunk, one embedding request), each team's
with a marker word of its own, so every model request the stand-in records is attributed to its
team by its texts. A busy team's N documents land at once: copied into the bucket (untimed: the
local GCS emulator is slow), then their N finalize events sent 8 at a time, as Eventarc delivers
them after a `gsutil -m cp`; its total time runs from the first event to the last job's
`finished_at`. B's documents land the same way (written untimed, then all their events at
once): its time runs from its events to `finished_at`. (Through the inbox folder instead, B's
10 documents were registered only 9.7 s after the drop with A busy, 30 s with three busy
teams, against 1.9 s idle: the watcher's copies into the local emulator on 2 saturated cores,
which GCS does not share with the pipeline.)

Runs:
1. idle: B's single document (median of 3) and its 10 documents (median of 2);
2. A alone: N documents, on both stacks, alternating (`--repeats`): fair / off is the cost of
   fair scheduling itself (goal: within 10%);
3. A busy: A's N documents; 30 s later B's single document, once it is ready B's 10 documents;
   B's times against idle (goal: within 3x while A's backlog still runs), A's total against A
   alone (the cost of fairness to A); on both stacks;
4. three busy teams (A, C, D, N/3 documents each), then B the same way (fair stack);
5. the quota as the bottleneck (120 a minute, 180 documents per busy team): each team's share of
   the successful embedding requests and of the 429s while all three had work, and B's times.

Run: uv run --extra local python -m bench.fairness [--documents 1000] [--before REF]
CI smoke: uv run --extra local python -m bench.fairness --small (A 40 documents, B 1 then 3)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fairness_corpus import (
    breakdown,
    documents,
    finished_by,
    jobs,
    model_shares,
    progress,
    stage,
    wait_done,
)
from bench.fairness_report import median, print_report, summary
from bench.fairness_stack import Landing, environment, new_tenants
from bench.faults_stack import PROJECT_ROOT, Stack, Tenant, start_stack

UNBOUNDED_CAPACITY = 1000
QUOTA = 1500  # model requests per minute: above what the stack sends (see the docstring)
BOUND_QUOTA = 120  # ... and below it, where the quota is the bottleneck
LATENCY = 1.0  # seconds a model request takes (see the docstring)


@dataclass(frozen=True)
class Plan:
    a_documents: int
    busy_documents: int  # each of the three busy teams
    b_later: int
    b_delay: float  # seconds after the busy teams' upload starts that B drops its document
    idle_repeats: int
    capacity: int
    quota: int  # model requests per minute (0: none)
    bound_quota: int  # the quota of the run where it is the bottleneck
    bound_documents: int  # each busy team's documents in that run
    pubsub: str  # "broker" or "emulator" (see bench/fairness_stack.py)
    repeats: int  # A-alone runs per stack (alternating)
    timeout: float
    latency: float
    latency_per_text: float = 0.001

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        small = args.small
        quota = args.quota if args.quota is not None else QUOTA
        n = 40 if small else args.documents
        return cls(
            a_documents=n,
            busy_documents=15 if small else n // 3,
            b_later=3 if small else 10,
            b_delay=3.0 if small else 30.0,
            idle_repeats=2 if small else 3,
            capacity=args.capacity,
            quota=quota,
            bound_quota=30 if small else BOUND_QUOTA,
            bound_documents=8 if small else 3 * BOUND_QUOTA // 2,
            pubsub=args.pubsub,
            repeats=1 if small else args.repeats,
            timeout=300.0 if small else 3600.0,
            latency=args.latency,
        )


@dataclass
class Bench:
    """One stack with its stand-in, its teams (made up front), and a counter for file names."""

    name: str
    stack: Stack
    standin: Any
    plan: Plan
    work: Path
    teams: dict[str, list[Tenant]]
    serial: int = 0
    quota: int = 0  # the stand-in's requests per minute in the run under way

    def configure(self, quota: int | None = None) -> None:
        """Fresh stand-in state (its quota window included) for the next run."""
        self.quota = self.plan.quota if quota is None else quota
        self.standin.reset()
        self.standin.latency = self.plan.latency
        self.standin.latency_per_text = self.plan.latency_per_text
        self.standin.requests_per_minute = self.quota or None

    def team(self, tag: str) -> Tenant:
        """The next unused team made for `tag` (B's one team serves every run)."""
        return self.teams[tag][0] if tag == "bravo" else self.teams[tag].pop(0)

    def staged(self, tag: str, count: int) -> Path:
        self.serial += 1
        folder = self.work / f"{tag}-{self.serial}"
        stage(folder, documents(tag, self.serial * 100_000, count, seed=self.serial))
        return folder

    def drop(self, tenant: Tenant, tag: str, count: int) -> tuple[float, set[str]]:
        """The team's files landed in the bucket as a busy team's are (written untimed, then
        their finalize events at once); (when the events went, in time.time(), the titles)."""
        folder = self.staged(tag, count)
        titles = {path.name for path in folder.iterdir()}
        landing = Landing(self.stack)
        landing.copy(tenant, folder)
        dropped = time.time()
        landing.announce(senders=count).join(60)
        return dropped, titles

    def model_requests(self) -> dict[str, int]:
        requests = [r for r in list(self.standin.requests) if r.texts]
        return {
            "ok": sum(r.failed_with is None for r in requests),
            "rejected_429": sum(r.failed_with == 429 for r in requests),
        }


def b_time(bench: Bench, b: Tenant, count: int) -> dict[str, Any]:
    """Drop `count` documents of B and wait for them: seconds from the drop to the last ready."""
    before = progress(bench.stack, b)[1]
    dropped, titles = bench.drop(b, "bravo", count)
    done = wait_done(bench.stack, b, before + count, bench.plan.timeout, f"{bench.name}: B")
    found = jobs(bench.stack, b)
    finished = finished_by(found, titles)
    seconds = None if finished is None or not done else round(finished - dropped, 2)
    return {"seconds": seconds, **breakdown(found, titles, dropped)}


def warm_up(bench: Bench) -> None:
    """One document through the demo project: the worker's first job imports the clients."""
    assert bench.stack.demo is not None
    before = progress(bench.stack, bench.stack.demo)[1]
    bench.drop(bench.stack.demo, "warmup", 1)
    wait_done(bench.stack, bench.stack.demo, before + 1, 300)


def idle(bench: Bench) -> dict[str, Any]:
    bench.configure()
    b = bench.team("bravo")
    single = [b_time(bench, b, 1) for _ in range(bench.plan.idle_repeats)]
    later = [b_time(bench, b, bench.plan.b_later) for _ in range(bench.plan.idle_repeats - 1)]
    return {
        "single_s": median([r["seconds"] for r in single]),
        "single_runs": single,
        "later_s": median([r["seconds"] for r in later]),
        "later_runs": later,
    }


def backlog(bench: Bench, tenants: dict[str, Tenant], count: int) -> dict[str, dict[str, int]]:
    """Per busy team: documents not yet ready (uploaded or not) and registered but not done."""
    out = {}
    for tag, tenant in tenants.items():
        registered, done = progress(bench.stack, tenant)
        out[tag] = {"not_done": count - done, "queued_or_running": registered - done}
    return out


def busy_run(
    bench: Bench, tags: list[str], count: int, with_b: bool, quota: int | None = None
) -> dict[str, Any]:
    """Busy teams' `count` documents each land at once (see `Landing`; every team's events
    sent together); B drops 1, then `b_later` documents, `b_delay` later, while they ingest.
    Every team's total time (from the events), B's times, and whose model requests succeeded."""
    bench.configure(quota)
    tenants = {tag: bench.team(tag) for tag in tags}
    landings = {tag: Landing(bench.stack) for tag in tags}
    for tag in tags:
        landings[tag].copy(tenants[tag], bench.staged(tag, count))
    t0, m0 = time.time(), time.monotonic()
    senders = {tag: landing.announce() for tag, landing in landings.items()}
    report: dict[str, Any] = {"teams": tags, "documents_each": count, "quota": bench.quota}
    if with_b:
        b = bench.team("bravo")
        time.sleep(max(0.0, t0 + bench.plan.b_delay - time.time()))
        report["b_dropped_after_s"] = round(time.time() - t0, 1)
        report["backlog_at_b_single"] = backlog(bench, tenants, count)
        report["b_single"] = b_time(bench, b, 1)
        report["b_later"] = b_time(bench, b, bench.plan.b_later)
        report["backlog_when_b_done"] = backlog(bench, tenants, count)
    finished: dict[str, float | None] = {}
    for tag in tags:
        ok = wait_done(bench.stack, tenants[tag], count, bench.plan.timeout, f"{bench.name}: {tag}")
        senders[tag].join(60)
        found = jobs(bench.stack, tenants[tag])
        last = finished_by(found, {j.title for j in found}) if ok else None
        finished[tag] = last
        report[tag] = {
            "total_s": None if last is None else round(last - t0, 1),
            "registered_s": round(max((j.registered for j in found), default=t0) - t0, 1),
            "ready": sum(j.status == "ready" for j in found),
            "failed": sum(j.status == "failed" for j in found),
            "max_attempts": max((j.attempts for j in found), default=0),
            "deferrals": sum(j.deferrals for j in found),
        }
    report["model_requests"] = bench.model_requests()
    ends = [f for f in finished.values() if f is not None]
    if len(tags) > 1 and ends:
        # The quota while every busy team had work: from the events to the first team's end.
        end = m0 + (min(ends) - t0)
        everyone = [*tags, "bravo"] if with_b else tags
        report["shares"] = model_shares(list(bench.standin.requests), everyone, m0, end)
        report["shares_window_s"] = round(end - m0, 1)
    return report


@contextlib.contextmanager
def before_tree(ref: str | None) -> Iterator[Path | None]:
    """A temporary git worktree of `ref` (outside the repository), removed afterwards."""
    if ref is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-fairness-before-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), ref],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(folder)],
            cwd=PROJECT_ROOT,
            check=False,
            capture_output=True,
        )


@contextlib.contextmanager
def running(
    name: str,
    plan: Plan,
    work: Path,
    capacity: int,
    threads: int,
    tree: Path | None,
    teams: dict[str, int],
) -> Iterator[Bench]:
    """A stack (and its own stand-in), its teams and a warmed-up worker, for the block."""
    from common.localstack.vertex_standin import start_model_standin

    with start_model_standin() as standin:
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        env = environment(standin.env(), capacity, threads, tree, plan.pubsub, work)
        stack = start_stack(folder, env)
        try:
            names = [tag for tag, count in teams.items() for _ in range(count)]
            made = new_tenants(stack, names)
            bench = Bench(name, stack, standin, plan, folder, {tag: [] for tag in teams})
            for tag, tenant in zip(names, made, strict=True):
                bench.teams[tag].append(tenant)
            bench.configure()
            warm_up(bench)
            print(f"{name} stack ready in {time.monotonic() - began:.0f}s", file=sys.stderr)
            yield bench
        finally:
            print(f"{name} stack stopped: {stack.stop()}", file=sys.stderr)


def run(fair: Bench, off: Bench, plan: Plan) -> dict[str, Any]:
    """The runs, alternating between the stacks where they are compared."""
    benches = (fair, off)
    report: dict[str, Any] = {bench.name: {} for bench in benches}
    for bench in benches:
        report[bench.name]["idle"] = idle(bench)
    for _ in range(plan.repeats):
        for bench in benches:
            result = busy_run(bench, ["alpha"], plan.a_documents, with_b=False)
            report[bench.name].setdefault("a_alone_runs", []).append(result)
    for bench in benches:
        report[bench.name]["a_busy"] = busy_run(bench, ["alpha"], plan.a_documents, with_b=True)
    busy = ["alpha", "charlie", "delta"]
    report[fair.name]["three_busy"] = busy_run(fair, busy, plan.busy_documents, with_b=True)
    report[fair.name]["quota_bound"] = busy_run(
        fair, busy, plan.bound_documents, with_b=True, quota=plan.bound_quota
    )
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=1000, help="team A's upload")
    parser.add_argument("--small", action="store_true", help="CI: A 40 documents, B 1 then 3")
    parser.add_argument("--capacity", type=int, default=10, help="AI_INFRA_INGEST_CAPACITY")
    parser.add_argument(
        "--quota",
        type=int,
        help=f"model requests per minute (default {QUOTA}; 0: none)",
    )
    parser.add_argument(
        "--pubsub",
        choices=("broker", "emulator"),
        default="broker",
        help="the stack's Pub/Sub: its push broker (default) or the gcloud emulator (2 pushes at "
        "a time)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="A-alone runs per stack")
    parser.add_argument(
        "--latency", type=float, default=LATENCY, help="the stand-in's seconds per request"
    )
    parser.add_argument(
        "--before",
        metavar="REF",
        help="compare with the stack of commit REF (a temporary git worktree) instead of "
        f"this one with AI_INFRA_INGEST_CAPACITY={UNBOUNDED_CAPACITY}",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = Plan.from_args(args)
    work = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    print(f"work folder {work} (each stack's output: <stack>/dev-output.log)", file=sys.stderr)
    began = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    off_capacity = plan.capacity if args.before else UNBOUNDED_CAPACITY
    off_label = f"before ({args.before})" if args.before else f"off (capacity {off_capacity})"
    with before_tree(args.before) as tree, contextlib.ExitStack() as stacks:
        alphas = plan.repeats + 1
        fair = stacks.enter_context(
            running(
                "fair",
                plan,
                work,
                plan.capacity,
                2 * plan.capacity,
                None,
                {"bravo": 1, "alpha": alphas + 2, "charlie": 2, "delta": 2},
            )
        )
        off = stacks.enter_context(
            running(
                "off", plan, work, off_capacity, plan.capacity, tree, {"bravo": 1, "alpha": alphas}
            )
        )
        report = run(fair, off, plan)
    figures = summary(report)
    print_report(figures, plan, off_label)
    figures.update(
        {
            "plan": vars(plan),
            "off": {**figures["off"], "how": off_label},
            "load_average_start": load_before,
            "load_average_end": report["load_average"],
            "bench_seconds": round(time.monotonic() - began, 1),
            "runs": report,
        }
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
