"""Fault benchmark: the local stack ingesting while its parts are killed and the model says 429.

Drives `ai-infra dev` as a user would (bench/faults_stack.py), with the Vertex AI provider
pointed at the in-process stand-in (common/localstack/vertex_standin.py, 50 ms per request), so
the real google-genai client, its batching and the Retry-After handling run:

1. clean run: N mixed documents (bench/ingest.py's corpus) including 5 bad files with known
   failures (empty, corrupt PDF, encrypted PDF, unsupported type, over the size limit) dropped
   into the demo project's inbox; wall time until every document is ready or failed;
2. faulted run: the same files into a new team's project while, on a schedule, chunk_embed is
   killed (SIGKILL to its process group) mid-job 3 times, the Postgres postmaster once, the
   Pub/Sub emulator once, and the stand-in answers every call with 429 (Retry-After: 2) for 30 s.
   Reported: outcomes as expected, documents lost, documents whose chunks differ from the clean
   run's (duplicate or partial sets), jobs left unfinished, faulted ÷ clean wall time, and what
   the storm cost beyond its own length (first successful embedding after it; when the
   embedded-texts rate is back to 80% of the rate before it) and whether batching held;
3. fairness: one small document from another team dropped into its inbox while 2N documents of
   one team, uploaded with `ai-infra upload`, are being ingested (once a quarter of them are
   waiting), against the same document on the idle stack (goal: at most 3x).

Fairness is not built in: every job goes through one FIFO Pub/Sub subscription, so a tenant's
small upload waits behind another tenant's backlog. What would bound the ratio: per-tenant
queueing with round-robin dispatch (a subscription or Cloud Tasks queue per team, or jobs
claimed from the table round-robin by team), or a per-tenant cap on concurrent jobs.

Run: uv run --extra local python -m bench.faults [--documents 100]
CI smoke: uv run --extra local python -m bench.faults --documents 12 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults_stack import Stack, Tenant, start_stack

TERMINAL = {"ready", "failed"}
STANDIN_LATENCY_SECONDS = 0.05
STORM_RETRY_AFTER = 2
STORM_SETTLE_SECONDS = 15.0  # no other fault this long after the storm: its recovery is measured
MAX_FILE_BYTES = 4_000_000
SMALL_DOCUMENT = (
    "# Release note\n\nThe ticket queue for the support team moves to the new region "
    "on Monday. Alerts and metrics follow the same policy as before.\n"
)


@dataclass(frozen=True)
class Plan:
    documents: int
    storm_seconds: float
    embed_kills: int
    phase_timeout: float  # per ingestion phase
    gap: float  # seconds between a fault's recovery and the next fault

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            return cls(args.documents, 8.0, 1, 480.0, 1.0)
        return cls(args.documents, 30.0, 3, 1200.0, 2.0)

    def schedule(self) -> list[str]:
        """Kills first: the storm stalls every job, and with it last the run lasts long enough
        for every fault to meet a job in flight (each waits for one)."""
        kills = ["chunk_embed"] * self.embed_kills
        return [kills[0], "postgres", *kills[1:2], "pubsub", *kills[2:], "storm"]


@dataclass
class Fault:
    kind: str
    at: float  # seconds after the faulted run's drop
    mid_job: bool
    recovered_after: float | None = None  # seconds until the stack said "<part> restarted"


@dataclass
class Phase:
    wall: float
    documents: dict[str, dict[str, Any]]  # by title
    timed_out: bool


@dataclass
class Storm:
    started: float = 0.0
    ended: float = 0.0


@dataclass
class Injector:
    """Runs the fault schedule on a thread while the faulted phase is being ingested."""

    stack: Stack
    standin: Any
    plan: Plan
    tenant: Tenant
    t0: float
    faults: list[Fault] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    storm: Storm = field(default_factory=Storm)
    finished: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def run(self) -> None:
        try:
            for kind in self.plan.schedule():
                if self.finished.is_set():
                    self.skipped.append(kind)
                    continue
                self._inject(kind)
                time.sleep(STORM_SETTLE_SECONDS if kind == "storm" else self.plan.gap)
        except Exception as error:  # reported in the output, the bench carries on
            self.error = f"{type(error).__name__}: {error}"

    def _busy(self, timeout: float = 150.0, backlog: float = 0.0) -> bool:
        """Wait until a worker is mid-job (it sent an embedding request in the last second) and
        at least `backlog` of the documents are still to do. The timeout outlasts the jobs a
        killed worker strands until they are republished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.finished.is_set():
            recent = [r for r in self.standin.requests[-20:] if r.texts]
            flowing = bool(recent) and time.monotonic() - recent[-1].at < 1.0
            if flowing and (backlog <= 0 or self._backlog() >= backlog):
                return True
            time.sleep(0.1)
        return False

    def _backlog(self) -> float:
        listing = self.stack.documents(self.tenant) or []
        todo = sum(d["status"] not in TERMINAL for d in listing)
        return todo / self.plan.documents

    def _inject(self, kind: str) -> None:
        if kind == "storm":
            mid_job = self._busy(backlog=0.25)
            self.storm.started = time.monotonic()
            self.standin.storm(self.plan.storm_seconds, retry_after=STORM_RETRY_AFTER)
            self.faults.append(Fault("429 storm", self.storm.started - self.t0, mid_job))
            time.sleep(self.plan.storm_seconds)
            self.storm.ended = self.storm.started + self.plan.storm_seconds
            return
        part = {"chunk_embed": "chunk_embed", "postgres": "postgres", "pubsub": "pubsub-emulator"}
        needle = f"{part[kind]} restarted"
        before = self.stack.output.count(needle)
        mid_job = self._busy()
        killed = time.monotonic()
        if kind == "chunk_embed":
            self.stack.kill_function("chunk_embed")
        elif kind == "postgres":
            self.stack.kill_postgres()
        else:
            self.stack.kill_pubsub()
        fault = Fault(f"{kind} SIGKILL", killed - self.t0, mid_job)
        self.faults.append(fault)
        deadline = killed + 180
        while time.monotonic() < deadline:
            if self.stack.output.count(needle) > before:
                fault.recovered_after = time.monotonic() - killed
                return
            time.sleep(0.2)


def bad_files() -> list[tuple[str, bytes, str]]:
    """(name, bytes, expected error substring) of files the product must fail, readably."""
    from tests.pdfs import make_corrupt_pdf, make_encrypted_pdf, page_text

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    oversized = (b"A line of plain text that is far too long in total.\n") * (
        MAX_FILE_BYTES // 50 + 1000
    )
    return [
        ("bad-empty.txt", b"", "the file is empty"),
        ("bad-corrupt.pdf", make_corrupt_pdf(), "corrupt or truncated"),
        ("bad-encrypted.pdf", make_encrypted_pdf([page_text(1)]), "encrypted with a password"),
        ("bad-image.png", png, "unsupported file type"),
        ("bad-oversized.txt", oversized, "too large"),
    ]


def build_corpus(documents: int, seed: int = 7) -> list[tuple[str, bytes, str | None]]:
    """N files: N-5 good ones from bench/ingest.py's generator and the 5 bad ones."""
    from bench.ingest import corpus

    good = [(name, data, None) for name, data, _ in corpus(max(0, documents - 5), seed=seed)]
    bad: list[tuple[str, bytes, str | None]] = list(bad_files())
    return good + bad


def stage(folder: Path, files: list[tuple[str, bytes, str | None]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data, _ in files:
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def ingest(
    stack: Stack, tenant: Tenant, staged: list[Path], timeout: float, progress: str
) -> Phase:
    """Drop the staged files into the tenant's inbox; wait until every one is ready or failed."""
    started = time.monotonic()
    for path in staged:
        stack.drop(tenant, path)
    return wait_for(stack, tenant, {p.name for p in staged}, started, timeout, progress)


def wait_for(
    stack: Stack, tenant: Tenant, names: set[str], started: float, timeout: float, progress: str
) -> Phase:
    deadline = started + timeout
    documents: dict[str, dict[str, Any]] = {}
    last_note = time.monotonic()
    while time.monotonic() < deadline:
        listing = stack.documents(tenant)
        if listing is not None:
            documents = {d["title"]: d for d in listing if d["title"] in names}
            done = sum(d["status"] in TERMINAL for d in documents.values())
            if done == len(names):
                return Phase(time.monotonic() - started, documents, False)
            if time.monotonic() - last_note > 15:
                last_note = time.monotonic()
                elapsed = last_note - started
                print(f"  {progress}: {done}/{len(names)} at {elapsed:.0f}s", file=sys.stderr)
        time.sleep(0.5)
    return Phase(time.monotonic() - started, documents, True)


def outcomes(
    files: list[tuple[str, bytes, str | None]], phase: Phase
) -> tuple[int, list[str], list[str]]:
    """(as expected, unexpected descriptions, names that never reached ready/failed)."""
    good, wrong, lost = 0, [], []
    for name, _, expected in files:
        document = phase.documents.get(name)
        if document is None or document["status"] not in TERMINAL:
            lost.append(name)
            continue
        error = document.get("error_message") or ""
        if expected is None:
            fine = document["status"] == "ready"
        else:
            fine = document["status"] == "failed" and expected in error
        if fine:
            good += 1
        else:
            wrong.append(f"{name}: {document['status']} ({error or 'no error'})")
    return good, wrong, lost


def chunk_sets(stack: Stack, tenant: Tenant) -> dict[str, list[tuple[int, str]]] | None:
    rows = stack.sql(
        "SELECT d.title, c.chunk_index, c.content FROM document_chunks c"
        " JOIN documents d ON d.id = c.document_id WHERE d.project_id = :p"
        " ORDER BY d.title, c.chunk_index",
        p=tenant.project_id,
    )
    if rows is None:
        return None
    sets: dict[str, list[tuple[int, str]]] = {}
    for title, index, content in rows:
        sets.setdefault(str(title), []).append((int(index), str(content)))
    return sets


def compare_chunks(
    clean: dict[str, list[tuple[int, str]]],
    faulted: dict[str, list[tuple[int, str]]],
    ready: list[str],
) -> list[str]:
    """Ready documents of the faulted run whose chunks are not exactly the clean run's."""
    bad = []
    for title in ready:
        mine, reference = faulted.get(title, []), clean.get(title, [])
        indexes = [index for index, _ in mine]
        if indexes != list(range(len(mine))) or mine != reference:
            bad.append(f"{title}: {len(mine)} chunks (clean run {len(reference)})")
    return bad


def embedded_texts_rate(standin: Any, start: float, end: float) -> float:
    """Texts embedded successfully per second between two instants (the clean run's rate)."""
    texts = sum(
        r.texts for r in list(standin.requests) if start <= r.at <= end and r.failed_with is None
    )
    return texts / (end - start) if end > start else 0.0


def storm_cost(
    standin: Any, storm: Storm, t0: float, t_end: float, clean_rate: float
) -> dict[str, Any]:
    """What the storm cost beyond its own length, from the stand-in's recorded requests: the
    first successful embedding after it, and when a 5 s window embeds texts at 80% of the clean
    run's average rate again."""
    embeds = [r for r in list(standin.requests) if r.texts and t0 <= r.at <= t_end]
    if not storm.ended:
        return {"measured": False}
    ok = [r for r in embeds if r.failed_with is None]
    after_ok = [r.at for r in ok if r.at >= storm.ended]
    first_ok = (min(after_ok) - storm.ended) if after_ok else None
    recovered = None
    step = storm.ended
    while clean_rate > 0 and step + 5 <= t_end:
        texts = sum(r.texts for r in ok if step <= r.at < step + 5)
        if texts / 5 >= 0.8 * clean_rate:
            recovered = step - storm.ended
            break
        step += 0.5

    def batching(chosen: list[Any]) -> dict[str, Any]:
        many = sum(r.texts > 1 for r in chosen)
        mean = statistics.fmean(r.texts for r in chosen) if chosen else 0.0
        return {"requests": len(chosen), "multi_text": many, "mean_texts": round(mean, 2)}

    return {
        "measured": True,
        "storm_seconds": round(storm.ended - storm.started, 1),
        "first_success_after_s": None if first_ok is None else round(first_ok, 2),
        "rate_recovered_after_s": None if recovered is None else round(recovered, 1),
        "clean_texts_per_s": round(clean_rate, 1),
        "rejected_429": sum(r.failed_with == 429 for r in embeds),
        "batching_before": batching([r for r in embeds if r.at < storm.started]),
        "batching_during": batching([r for r in embeds if storm.started <= r.at < storm.ended]),
        "batching_after": batching([r for r in embeds if r.at >= storm.ended]),
    }


def fairness(stack: Stack, plan: Plan, work: Path) -> dict[str, Any]:
    """A small document's time to ready on the idle stack and behind another team's bulk load."""
    from bench.ingest import corpus

    small, bulk = stack.new_tenant("small"), stack.new_tenant("bulk")
    idle = []
    for number in range(3):
        path = work / "small" / f"note-idle-{number}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SMALL_DOCUMENT)
        phase = ingest(stack, small, [path], 120, "idle small document")
        idle.append(phase.wall)
    count = plan.documents * 2
    staged = stage(work / "bulk", [(n, d, None) for n, d, _ in corpus(count, seed=11)])
    started = time.monotonic()
    uploader = stack.upload(bulk, work / "bulk")
    # Upload the small document once the bulk has a backlog (registered, not yet done).
    backlog = 0
    while time.monotonic() - started < 180 and uploader.poll() is None:
        listing = stack.documents(bulk) or []
        backlog = sum(d["status"] not in TERMINAL for d in listing)
        if backlog >= max(10, count // 4):
            break
        time.sleep(0.3)
    queued_after = time.monotonic() - started
    path = work / "small" / "note-busy.md"
    path.write_text(SMALL_DOCUMENT)
    busy = ingest(stack, small, [path], plan.phase_timeout, "small document under bulk load")
    names = {p.name for p in staged}
    rest = wait_for(stack, bulk, names, started, plan.phase_timeout, "bulk load")
    uploader.wait(60)
    bulk_done = sum(d["status"] in TERMINAL for d in rest.documents.values())
    idle_median = statistics.median(idle)
    return {
        "bulk_documents": count,
        "small_uploaded_after_s": round(queued_after, 1),
        "bulk_backlog_then": backlog,
        "bulk_wall_s": round(rest.wall, 1),
        "bulk_finished": bulk_done,
        "bulk_timed_out": rest.timed_out,
        "small_idle_s": round(idle_median, 2),
        "small_under_load_s": round(busy.wall, 2),
        "small_under_load_timed_out": busy.timed_out,
        "ratio": round(busy.wall / idle_median, 2),
        "goal_ratio": 3.0,
        "conclusive": backlog > 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="a short CI run (8 s storm, 1 kill)")
    args = parser.parse_args()
    if args.documents < 6:
        parser.error("--documents must be at least 6 (5 of them are the bad files)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = Plan.from_args(args)
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    print(f"work folder {work} (the stack's output: dev-output.log)", file=sys.stderr)
    from common.localstack.vertex_standin import start_model_standin

    began = time.monotonic()
    with start_model_standin() as standin:
        standin.latency = STANDIN_LATENCY_SECONDS
        env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
        env.update(standin.env())
        env.update(
            {
                "AI_INFRA_EMBEDDING_PROVIDER": "vertex",
                "AI_INFRA_EMBEDDING_DIM": "768",
                "AI_INFRA_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
            }
        )
        stack = start_stack(work, env)
        try:
            report = run(stack, standin, plan, work)
        finally:
            stopped = stack.stop()
    report["stack_stop"] = stopped
    report["bench_seconds"] = round(time.monotonic() - began, 1)
    print(f"stack stopped: {stopped}; bench took {report['bench_seconds']:.0f}s", file=sys.stderr)
    print(json.dumps(report))


def run(stack: Stack, standin: Any, plan: Plan, work: Path) -> dict[str, Any]:
    assert stack.demo is not None
    files = build_corpus(plan.documents)
    mb = sum(len(d) for _, d, _ in files) / 1e6
    print(f"corpus: {len(files)} documents, {mb:.1f} MB", file=sys.stderr)
    staged = stage(work / "clean", files)
    c0 = time.monotonic()
    clean = ingest(stack, stack.demo, staged, plan.phase_timeout, "clean")
    clean_rate = embedded_texts_rate(standin, c0, c0 + clean.wall)
    clean_ok, clean_wrong, clean_lost = outcomes(files, clean)
    tenant = stack.new_tenant("faulted")
    staged = stage(work / "faulted", files)
    t0 = time.monotonic()
    injector = Injector(stack, standin, plan, tenant, t0)
    thread = threading.Thread(target=injector.run, name="faults", daemon=True)
    thread.start()
    faulted = ingest(stack, tenant, staged, plan.phase_timeout, "faulted")
    injector.finished.set()
    thread.join(timeout=300)
    t_end = time.monotonic()
    ok, wrong, lost = outcomes(files, faulted)
    ready = [t for t, d in faulted.documents.items() if d["status"] == "ready"]
    clean_sets, faulted_sets = chunk_sets(stack, stack.demo), chunk_sets(stack, tenant)
    mismatched = compare_chunks(clean_sets or {}, faulted_sets or {}, ready)
    storm = storm_cost(standin, injector.storm, t0, t_end, clean_rate)
    fair = fairness(stack, plan, work)
    rows = stack.sql("SELECT count(*) FROM ingestion_jobs WHERE status IN ('queued', 'running')")
    unfinished = int(rows[0][0]) if rows else None
    attempts = sorted(
        (d.get("last_job") or {}).get("attempts", 0) for d in faulted.documents.values()
    )
    report: dict[str, Any] = {
        "documents": plan.documents,
        "quick": plan.embed_kills < 3,
        "clean_wall_s": round(clean.wall, 1),
        "clean_outcomes_as_expected": clean_ok,
        "faulted_wall_s": round(faulted.wall, 1),
        "faulted_outcomes_as_expected": ok,
        "faulted_vs_clean_wall": round(faulted.wall / clean.wall, 2),
        "documents_lost": len(lost),
        "duplicate_or_partial_chunk_sets": len(mismatched),
        "jobs_unfinished_at_end": unfinished,
        "max_attempts": attempts[-1] if attempts else None,
        "faults": [
            {
                "kind": f.kind,
                "at_s": round(f.at, 1),
                "mid_job": f.mid_job,
                "recovered_after_s": None
                if f.recovered_after is None
                else round(f.recovered_after, 1),
            }
            for f in injector.faults
        ],
        "faults_not_injected": injector.skipped,
        "storm": storm,
        "fairness": fair,
        "problems": clean_wrong + clean_lost + wrong + [f"lost: {n}" for n in lost] + mismatched,
    }
    if injector.skipped:
        report["problems"].append(f"not injected (the run had finished): {injector.skipped}")
    if injector.error:
        report["problems"].append(f"fault injector stopped: {injector.error}")
    if clean_sets is None or faulted_sets is None:
        report["problems"].append("chunks could not be read from the database")
    print_report(report, clean.timed_out or faulted.timed_out)
    return report


def print_report(report: dict[str, Any], timed_out: bool) -> None:
    n = report["documents"]
    out = sys.stderr
    print(f"\n{'run':<10}{'documents':>10}{'wall s':>9}{'as expected':>13}", file=out)
    for run_name in ("clean", "faulted"):
        wall, ok = report[f"{run_name}_wall_s"], report[f"{run_name}_outcomes_as_expected"]
        print(f"{run_name:<10}{n:>10}{wall:>9.1f}{f'{ok}/{n}':>13}", file=out)
    print(f"\nfaulted ÷ clean wall: {report['faulted_vs_clean_wall']:.2f}x", file=out)
    print(f"{'fault':<22}{'at s':>7}{'mid-job':>9}{'back after s':>14}", file=out)
    for fault in report["faults"]:
        back = fault["recovered_after_s"]
        shown = "-" if back is None else f"{back:.1f}"
        mid = "yes" if fault["mid_job"] else "no"
        print(f"{fault['kind']:<22}{fault['at_s']:>7.1f}{mid:>9}{shown:>14}", file=out)
    print(
        f"documents lost {report['documents_lost']}, duplicate or partial chunk sets "
        f"{report['duplicate_or_partial_chunk_sets']}, jobs unfinished at the end "
        f"{report['jobs_unfinished_at_end']}, most attempts a job took {report['max_attempts']}",
        file=out,
    )
    storm = report["storm"]
    if storm.get("measured"):
        print(
            f"429 storm {storm['storm_seconds']}s ({storm['rejected_429']} requests rejected): "
            f"first embedding success {storm['first_success_after_s']}s after it; embedded texts "
            f"back to 80% of the clean run's {storm['clean_texts_per_s']}/s after "
            + (
                f"{storm['rate_recovered_after_s']}s"
                if storm["rate_recovered_after_s"] is not None
                else "- (not reached before the work ran out)"
            ),
            file=out,
        )
        for when in ("before", "during", "after"):
            b = storm[f"batching_{when}"]
            print(
                f"  embedding requests {when:<6}: {b['requests']:>5}, {b['multi_text']:>5} with "
                f"more than one text, {b['mean_texts']} texts each on average",
                file=out,
            )
    fair = report["fairness"]
    verdict = "meets" if fair["ratio"] <= fair["goal_ratio"] else "MISSES"
    if not fair["bulk_backlog_then"]:
        verdict = "inconclusive for"  # ingestion kept pace with one uploader: nothing queued
    print(
        f"fairness: a small document of another team is ready in {fair['small_under_load_s']}s "
        f"while {fair['bulk_documents']} documents of one team ingest ({fair['bulk_backlog_then']} "
        f"to do when it was dropped), {fair['small_idle_s']}s on "
        f"the idle stack: {fair['ratio']}x, {verdict} the {fair['goal_ratio']:.0f}x goal"
        + (
            ""
            if verdict != "MISSES"
            else " (one FIFO subscription for all tenants; per-tenant fair queueing or "
            "per-tenant concurrency caps would bound it, see the docstring)"
        ),
        file=out,
    )
    if timed_out:
        print("a phase hit its deadline", file=out)
    for problem in report["problems"]:
        print(f"problem: {problem}", file=out)


if __name__ == "__main__":
    main()
