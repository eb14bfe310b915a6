"""bench/formats.py's view of the local pipeline: ingest a batch, read what the worker logged
about it, and how much memory the chunk_embed process tree has used at its peak.

The pipeline is bench/ingest.py's (`local_pipeline`: embedded Postgres, GCS and Pub/Sub
emulators, `ingest_trigger` and `chunk_embed` under functions-framework). Peak memory is the
kernel's high-water mark of resident memory (`VmHWM` in /proc/<pid>/status) of the
functions-framework process and its children (gunicorn's worker does the work); a restarted
worker starts a fresh mark.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ingest import Pipeline

BUCKET = "bench-bucket"


@dataclass(frozen=True)
class StoredDocument:
    id: uuid.UUID
    title: str
    status: str
    error: str | None
    notice: str | None
    chunks: int
    size: int


@dataclass
class Batch:
    """One project's ingestion: wall seconds from the first event to the last document settled,
    the documents as stored, and the worker's log entry of each successful job."""

    project_id: uuid.UUID
    wall: float
    documents: list[StoredDocument]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ready(self) -> list[StoredDocument]:
        return [d for d in self.documents if d.status == "ready"]

    @property
    def failed(self) -> list[StoredDocument]:
        return [d for d in self.documents if d.status != "ready"]

    def stage(self, name: str, titles: set[str] | None = None) -> float:
        """Seconds the worker spent in one stage over this batch (or these documents)."""
        wanted = {str(d.id) for d in self.documents if titles is None or d.title in titles}
        return sum(
            float(job["stages"].get(name, 0.0)) for key, job in self.jobs.items() if key in wanted
        )


def ingest(
    pipeline: Pipeline, files: list[tuple[str, bytes, str]], *, timeout: float = 3600
) -> Batch:
    """Upload `files` into a new project, send the finalize events (8 at a time, as a bulk
    upload does), wait until every document is ready or failed."""
    from sqlalchemy import func, select

    from common.localstack.eventarc import FINALIZED, send_storage_event
    from common.platform.db import transaction
    from common.platform.models import Document, DocumentStatus, Project, Team
    from common.platform.storage import get_blob_store

    with transaction() as session:
        team = Team(name=f"formats-{uuid.uuid4().hex[:6]}")
        session.add(team)
        session.flush()
        project = Project(team_id=team.id, name="formats")
        session.add(project)
        session.flush()
        project_id = project.id
    store = get_blob_store()
    blobs = [store.upload(BUCKET, f"{project_id}/{n}", data, mime) for n, data, mime in files]
    log, offset = pipeline.worker_log, _size(pipeline.worker_log)
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: send_storage_event(pipeline.trigger_url, FINALIZED, b), blobs))
    deadline = time.monotonic() + timeout
    settled = (DocumentStatus.READY, DocumentStatus.FAILED)
    while True:
        with transaction() as session:
            counted = session.execute(
                select(
                    func.count(),
                    func.count().filter(Document.status.in_(settled)),
                ).where(Document.project_id == project_id)
            ).one()
        if counted[0] == len(files) and counted[1] == len(files):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"ingestion did not settle in {timeout:.0f} s")
        time.sleep(0.2)
    wall = time.perf_counter() - started
    documents = stored_documents(project_id)
    return Batch(project_id, wall, documents, succeeded_jobs(log, offset))


def stored_documents(project_id: uuid.UUID) -> list[StoredDocument]:
    from sqlalchemy import select

    from common.platform.db import transaction
    from common.platform.models import Document

    with transaction() as session:
        rows = session.execute(
            select(
                Document.id,
                Document.title,
                Document.status,
                Document.error_message,
                Document.notice,
                Document.chunk_count,
                Document.size_bytes,
            ).where(Document.project_id == project_id)
        ).all()
    return sorted(
        (StoredDocument(r[0], r[1], str(r[2]), r[3], r[4], r[5], r[6] or 0) for r in rows),
        key=lambda document: document.title,
    )


def succeeded_jobs(log: Path, offset: int = 0) -> dict[str, dict[str, Any]]:
    """document id -> the worker's 'ingestion succeeded' entry (chunks, seconds, stages)."""
    entries: dict[str, dict[str, Any]] = {}
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("message") == "ingestion succeeded":
                entries[str(entry["document_id"])] = entry
    return entries


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# --- memory -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Peak:
    """High-water marks of resident memory (MiB): the biggest process of the tree (the worker)
    and the sum over the tree (an upper bound of the instance's peak)."""

    largest_mib: float
    tree_mib: float


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue += parents.get(pid, [])
    return tree


def vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_memory(pipeline: Pipeline) -> Peak:
    marks = [vm_hwm_kib(pid) for pid in process_tree(pipeline.worker.process.pid)]
    return Peak(max(marks, default=0) / 1024, sum(marks) / 1024)


def warm_up(pipeline: Pipeline, *, image: bytes | None) -> None:
    """One small job (and one image when OCR will run) so that the worker's imports and models
    are loaded before a timed batch, as on a warm instance."""
    files = [("warm-up.txt", b"A warm-up document with a few words.", "text/plain")]
    if image is not None:
        files.append(("warm-up.png", image, "image/png"))
    ingest(pipeline, files, timeout=600)
