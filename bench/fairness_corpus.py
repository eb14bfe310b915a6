"""bench/fairness.py's documents, its clock on the stack's rows, and whose model request is whose.

Every team's documents carry a marker word of their own (`fairnessalpha`, ...), so each
embedding request the Vertex stand-in records is attributed to its team by its texts, whatever
the timing: a job embeds one document, one request per batch, and every chunk keeps the marker.
Times to `ready` come from the jobs' own `finished_at` (the server's clock), not from polling.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.faults_stack import Stack, Tenant
from bench.ingest import prose

TERMINAL = ("ready", "failed")


def marker(tag: str) -> str:
    return f"fairness{tag}"


def documents(tag: str, first: int, count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` small Markdown notes (~1 KB, one chunk each), distinct, marked as `tag`'s."""
    rng = random.Random(f"{tag}-{seed}-{first}")
    notes = []
    for number in range(first, first + count):
        body = (
            f"# {tag.title()} note {number}\n\n"
            f"Filed by team {tag} ({marker(tag)}), note {number} of its backlog.\n\n"
            + prose(rng, 120)
        )
        notes.append((f"{tag}-{number:05d}.md", body.encode()))
    return notes


def stage(folder: Path, files: list[tuple[str, bytes]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files:
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


@dataclass(frozen=True)
class Job:
    """One document's (current) job, times in `time.time()` seconds."""

    title: str
    status: str
    registered: float
    started: float | None
    finished: float | None
    attempts: int
    deferrals: int


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def jobs(stack: Stack, tenant: Tenant) -> list[Job]:
    rows = stack.sql(
        "SELECT d.title, d.status, j.created_at, j.started_at, j.finished_at, j.attempts,"
        " j.deferrals FROM documents d JOIN ingestion_jobs j"
        " ON j.document_id = d.id AND j.generation = d.generation"
        " WHERE d.project_id = :p",
        p=tenant.project_id,
    )
    return [
        Job(
            str(r[0]),
            str(r[1]).lower(),
            r[2].timestamp(),
            _seconds(r[3]),
            _seconds(r[4]),
            int(r[5]),
            int(r[6]),
        )
        for r in rows or []
    ]


def progress(stack: Stack, tenant: Tenant) -> tuple[int, int]:
    """(documents registered, documents ready or failed) of the tenant's project."""
    rows = stack.sql(
        "SELECT count(*), count(*) FILTER (WHERE status IN ('ready', 'failed'))"
        " FROM documents WHERE project_id = :p",
        p=tenant.project_id,
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def wait_done(stack: Stack, tenant: Tenant, count: int, timeout: float, note: str = "") -> bool:
    """Poll until `count` documents of the tenant are ready or failed; False on timeout."""
    deadline = time.monotonic() + timeout
    last_note = time.monotonic()
    while time.monotonic() < deadline:
        registered, done = progress(stack, tenant)
        if done >= count:
            return True
        if note and time.monotonic() - last_note > 20:
            last_note = time.monotonic()
            print(f"  {note}: {done}/{count} done, {registered} registered", file=sys.stderr)
        time.sleep(0.2)
    return False


def finished_by(found: list[Job], titles: set[str]) -> float | None:
    """When the last of `titles` finished (None if one has not)."""
    chosen = [j for j in found if j.title in titles]
    if len(chosen) < len(titles) or any(j.finished is None for j in chosen):
        return None
    return max(j.finished for j in chosen if j.finished is not None)


def breakdown(found: list[Job], titles: set[str], dropped: float) -> dict[str, float | int]:
    """Where the time went for the documents `titles`, dropped at `dropped` (time.time())."""
    chosen = [j for j in found if j.title in titles and j.finished is not None]
    if not chosen:
        return {}
    starts = [j.started for j in chosen if j.started is not None]
    return {
        "registered_after_s": round(max(j.registered for j in chosen) - dropped, 2),
        "last_started_after_s": round(max(starts) - dropped, 2) if starts else -1.0,
        "run_s_median": round(
            statistics.median(
                (j.finished or 0) - (j.started or 0) for j in chosen if j.started is not None
            ),
            2,
        ),
        "deferrals": sum(j.deferrals for j in chosen),
        "max_attempts": max(j.attempts for j in chosen),
    }


def owner(request: Any, markers: dict[str, str]) -> str | None:
    """The team whose texts an embedding request carried (None for other requests)."""
    if not request.texts:
        return None
    body = json.dumps(request.body)
    for tag, word in markers.items():
        if word in body:
            return tag
    return None


def model_shares(
    requests: list[Any], tags: list[str], start: float, end: float
) -> dict[str, dict[str, Any]]:
    """Per team, between two monotonic instants: successful embedding requests (and their share
    of all successes), texts embedded, and requests refused with 429."""
    markers = {tag: marker(tag) for tag in tags}
    counts = {tag: {"ok": 0, "texts": 0, "rejected_429": 0} for tag in tags}
    for request in requests:
        if not start <= request.at <= end:
            continue
        tag = owner(request, markers)
        if tag is None:
            continue
        if request.failed_with is None:
            counts[tag]["ok"] += 1
            counts[tag]["texts"] += request.texts
        elif request.failed_with == 429:
            counts[tag]["rejected_429"] += 1
    total = sum(c["ok"] for c in counts.values()) or 1
    return {tag: {**c, "share": round(c["ok"] / total, 3)} for tag, c in counts.items()}
