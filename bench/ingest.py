"""Ingestion benchmark: a 200+ document corpus through the local stack, stage by stage.

Starts its own embedded Postgres, GCS and Pub/Sub emulators and the functions (as `ai-infra dev`
does), uploads a mixed corpus (PDF, text, Markdown, HTML; small to large), sends the finalize
events Eventarc would, waits for every document, then reads the worker's per-job stage timings
from its JSON log. The database write path is compared with its physical limit measured in the
same run: one raw COPY of the same rows into the same HNSW-indexed table (rolled back).

Run: uv run --extra local python -m bench.ingest [--documents 200]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

WORDS = [
    "system",
    "data",
    "model",
    "query",
    "index",
    "vector",
    "search",
    "project",
    "team",
    "document",
    "page",
    "chunk",
    "token",
    "embedding",
    "retrieval",
    "answer",
    "citation",
    "storage",
    "bucket",
    "event",
    "message",
    "worker",
    "database",
    "latency",
    "throughput",
    "replica",
    "backup",
    "region",
    "network",
    "policy",
    "access",
    "secret",
    "deploy",
    "function",
    "trigger",
    "schema",
    "migration",
    "cluster",
    "node",
    "memory",
    "cache",
    "disk",
    "quota",
    "budget",
    "report",
    "invoice",
    "contract",
    "customer",
    "support",
    "ticket",
    "release",
    "feature",
    "defect",
    "review",
    "test",
    "coverage",
    "metric",
    "alert",
]


def prose(rng: random.Random, words: int) -> str:
    sentences, count = [], 0
    while count < words:
        length = rng.randint(8, 20)
        sentence = " ".join(rng.choice(WORDS) for _ in range(length))
        sentences.append(sentence.capitalize() + ".")
        count += length
    paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paragraphs)


def corpus(count: int, seed: int = 7) -> list[tuple[str, bytes, str]]:
    from tests.pdfs import make_pdf

    rng = random.Random(seed)
    files = []
    for index in range(count):
        kind = ("txt", "md", "html", "pdf")[index % 4]
        words = rng.choice((150, 400, 1200, 3000))
        if kind == "pdf":
            pages = [prose(rng, words // 4) for _ in range(4)]
            files.append((f"doc{index:04d}.pdf", make_pdf(pages), "application/pdf"))
        elif kind == "md":
            body = f"# Document {index}\n\n" + prose(rng, words)
            files.append((f"doc{index:04d}.md", body.encode(), "text/markdown"))
        elif kind == "html":
            paragraphs = "".join(f"<p>{p}</p>" for p in prose(rng, words).split("\n\n"))
            page = f"<html><body><h1>Document {index}</h1>{paragraphs}</body></html>"
            files.append((f"doc{index:04d}.html", page.encode(), "text/html"))
        else:
            files.append((f"doc{index:04d}.txt", prose(rng, words).encode(), "text/plain"))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=200)
    args = parser.parse_args()
    # Stop the children (own sessions) on `kill` too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with local_pipeline(Path(tempfile.mkdtemp(prefix="bench-ingest-")), {}) as pipeline:
        report = run(args.documents, pipeline.trigger_url, pipeline.worker_log)
    print(json.dumps(report))


@dataclasses.dataclass
class Pipeline:
    """The ingestion half of the local stack, as `ai-infra dev` runs it, for one bench."""

    trigger_url: str
    worker_port: int
    logs: Path
    worker: Any = None
    runs: int = 0

    @property
    def worker_log(self) -> Path:
        return self.logs / f"run{self.runs}" / "chunk_embed.log"

    def restart_worker(self, env: dict[str, str]) -> None:
        """A fresh chunk_embed with `env` on top of the bench's settings; its own log."""
        from common.localstack import functions

        if self.worker is not None:
            self.worker.stop()
        self.runs += 1
        self.worker = functions.start_function(
            "chunk_embed", port=self.worker_port, env=env, log_dir=self.worker_log.parent
        )


@contextlib.contextmanager
def local_pipeline(
    work: Path, env: dict[str, str], *, functions_too: bool = True
) -> Iterator[Pipeline]:
    """Embedded Postgres, GCS and Pub/Sub emulators, chunk_embed and ingest_trigger; `env`
    (e.g. the embedding provider) applies to this process and the functions. Without
    `functions_too`, the migrated Postgres alone (a bench reusing an ingested corpus)."""
    os.environ.update(
        {
            "AI_INFRA_GCP_PROJECT": "bench-project",
            "AI_INFRA_BUCKET": "bench-bucket",
            "AI_INFRA_LOG_LEVEL": "INFO",
            **env,
        }
    )
    from common.localstack import embedded_pg, functions, gcs, pubsub
    from common.localstack.processes import free_port
    from common.platform import migrate
    from common.platform.config import get_settings
    from common.platform.db import reset_engine
    from common.platform.messaging import reset_publisher
    from common.platform.storage import get_blob_store, reset_blob_store

    database = embedded_pg.start(work / "pg", database="bench")
    gcs_port, pubsub_port, worker_port, trigger_port = (free_port() for _ in range(4))
    os.environ.update(
        {
            "AI_INFRA_DATABASE_URL": database.url,
            "AI_INFRA_STORAGE_EMULATOR_HOST": gcs.emulator_url(gcs_port),
            "AI_INFRA_PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
        }
    )
    get_settings.cache_clear()
    reset_engine()
    reset_blob_store()
    reset_publisher()
    migrate.upgrade()
    logs = work / "logs"
    if not functions_too:
        try:
            yield Pipeline("", 0, logs)
        finally:
            reset_engine()
            database.stop()
        return
    children = [
        gcs.start_gcs_emulator(port=gcs_port, data_dir=None, log_dir=logs),
        pubsub.start_pubsub_emulator(
            port=pubsub_port, project="bench-project", data_dir=work / "pubsub", log_dir=logs
        ),
    ]
    pipeline = Pipeline(f"http://127.0.0.1:{trigger_port}/", worker_port, logs)
    try:
        pubsub.wire_topics(get_settings(), push_endpoint=f"http://127.0.0.1:{worker_port}/")
        pipeline.restart_worker({})
        children.append(
            functions.start_function("ingest_trigger", port=trigger_port, env={}, log_dir=logs)
        )
        get_blob_store().ensure_bucket("bench-bucket")
        yield pipeline
    finally:
        if pipeline.worker is not None:
            pipeline.worker.stop()
        for child in reversed(children):
            child.stop()
        reset_engine()
        database.stop()


def ingest_files(files: list[tuple[str, bytes, str]], trigger_url: str) -> tuple[uuid.UUID, float]:
    """Upload `files` into a new project, announce them as Eventarc would, wait until every
    one is ready or failed; (project id, wall seconds from the first event)."""
    from sqlalchemy import func, select

    from common.localstack.eventarc import FINALIZED, send_storage_event
    from common.platform.db import transaction
    from common.platform.models import Document, DocumentStatus, Project, Team
    from common.platform.storage import get_blob_store

    with transaction() as session:
        team = Team(name=f"bench-{uuid.uuid4().hex[:6]}")
        session.add(team)
        session.flush()
        project = Project(team_id=team.id, name="bench")
        session.add(project)
        session.flush()
        project_id = project.id
    store = get_blob_store()
    blobs = [store.upload("bench-bucket", f"{project_id}/{n}", d, m) for n, d, m in files]
    total_bytes = sum(len(d) for _, d, _ in files)
    print(
        f"corpus: {len(files)} documents, {total_bytes / 1e6:.1f} MB; ingesting ...",
        file=sys.stderr,
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda blob: send_storage_event(trigger_url, FINALIZED, blob), blobs))
    while True:
        with transaction() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(Document)
                .where(
                    Document.project_id == project_id,
                    Document.status.not_in([DocumentStatus.READY, DocumentStatus.FAILED]),
                )
            )
        if not pending:
            break
        time.sleep(0.25)
    return project_id, time.perf_counter() - started


def run(documents: int, trigger_url: str, worker_log: Path) -> dict[str, Any]:
    project_id, wall = ingest_files(corpus(documents), trigger_url)
    stages, chunks, jobs = _stage_totals(worker_log)
    stored = _stored_documents(project_id)
    # Each phase starts from a vacuumed table, so none pays for another's dead index entries.
    _vacuum()
    isolated = _isolated_write_path(stored)
    _vacuum()
    per_document_copy, one_copy = _raw_copy_rates(project_id, stored)
    report = _print_report(documents, wall, stages, chunks, jobs, one_copy)
    print(
        f"write path replayed alone, one transaction per document: {isolated:.0f} rows/s = "
        f"{isolated / per_document_copy:.2f}x bare COPY per document ({per_document_copy:.0f} "
        f"rows/s) and {isolated / one_copy:.2f}x one COPY of all rows ({one_copy:.0f} rows/s)",
        file=sys.stderr,
    )
    report["write_path_rows_per_second"] = round(isolated, 1)
    report["raw_copy_per_document_rows_per_second"] = round(per_document_copy, 1)
    report["write_path_vs_raw_copy_per_document"] = round(isolated / per_document_copy, 3)
    report["write_path_vs_one_raw_copy"] = round(isolated / one_copy, 3)
    return report


def _stage_totals(worker_log: Path) -> tuple[dict[str, float], int, int]:
    totals: dict[str, float] = {}
    chunks = jobs = 0
    for line in worker_log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") != "ingestion succeeded":
            continue
        jobs += 1
        chunks += int(entry["chunks"])
        for stage, seconds in entry["stages"].items():
            totals[stage] = totals.get(stage, 0.0) + float(seconds)
    return totals, chunks, jobs


def _stored_documents(project_id: uuid.UUID) -> list[tuple[uuid.UUID, list[Any], Any, str]]:
    """(document id, chunks, vectors, model) of every ingested document, as written."""
    import numpy as np
    from sqlalchemy import select

    from common.ingestion.chunking import Chunk
    from common.platform.db import transaction
    from common.platform.models import Document, DocumentChunk

    documents = []
    with transaction() as session:
        for document in session.scalars(select(Document).where(Document.project_id == project_id)):
            stored = session.scalars(
                select(DocumentChunk)
                .where(DocumentChunk.document_id == document.id)
                .order_by(DocumentChunk.chunk_index)
            ).all()
            chunks = [
                Chunk(
                    c.chunk_index, c.content, c.char_start, c.char_end,
                    c.page_start or 1, c.page_end or 1, c.token_count,
                )
                for c in stored
            ]  # fmt: skip
            vectors = np.array([np.asarray(c.embedding) for c in stored], dtype=np.float32)
            documents.append((document.id, chunks, vectors, document.embedding_model or ""))
    return documents


def _isolated_write_path(documents: list[tuple[uuid.UUID, list[Any], Any, str]]) -> float:
    """Rows/s of the worker's final write (same code), replayed document by document."""
    from sqlalchemy import select

    from common.ingestion.job_write import lock_for_write, write_result
    from common.platform.config import get_settings
    from common.platform.db import transaction
    from common.platform.models import IngestionJob
    from common.platform.spaces import inline_space

    with transaction() as session:
        jobs = dict(
            session.execute(
                select(IngestionJob.document_id, IngestionJob.id).where(
                    IngestionJob.document_id.in_([d for d, _, _, _ in documents])
                )
            ).all()
        )
    rows, seconds = 0, 0.0
    for document_id, chunks, vectors, model in documents:
        began = time.perf_counter()
        with transaction() as session:
            locked = lock_for_write(
                session, job_id=jobs[document_id], document_id=document_id, attempt=None
            )
            assert locked is not None
            rows += write_result(
                session,
                locked,
                chunks=chunks,
                embeddings={inline_space(get_settings()): vectors},
                model=model,
            )
        seconds += time.perf_counter() - began
    return rows / seconds


def _raw_copy_rates(
    project_id: uuid.UUID, documents: list[tuple[uuid.UUID, list[Any], Any, str]]
) -> tuple[float, float]:
    """Rows/s of bare COPY of the same rows into the same table: one COPY per document (each
    committed, as the worker must) and one COPY of everything; the copies are removed again."""
    import numpy as np
    from sqlalchemy import text

    from common.ingestion.chunk_store import _COPY_SQL, _copy_payload
    from common.platform.db import get_engine

    with get_engine().begin() as connection:
        team_id = connection.execute(
            text("SELECT team_id FROM projects WHERE id = :p"), {"p": project_id}
        ).scalar_one()
    all_chunks = [
        dataclasses.replace(c, index=i)
        for i, c in enumerate(c for _, chunks, _, _ in documents for c in chunks)
    ]
    all_vectors = np.concatenate([v for _, _, v, _ in documents])

    def per_document() -> list[bytes]:
        return [
            _copy_payload(
                _dummy(team_id, project_id),
                project_id,
                chunks,
                vectors,
                [uuid.uuid4() for _ in chunks],
            )
            for _, chunks, vectors, _ in documents
        ]

    def in_one() -> list[bytes]:
        ids = [uuid.uuid4() for _ in all_chunks]
        return [
            _copy_payload(_dummy(team_id, project_id), project_id, all_chunks, all_vectors, ids)
        ]

    rates = []
    for build in (per_document, in_one):
        _vacuum()
        batch = build()
        with get_engine().connect() as connection:
            raw: Any = connection.connection.driver_connection
            cursor = raw.cursor()
            began = time.perf_counter()
            for payload in batch:
                cursor.execute(_COPY_SQL, stream=io.BytesIO(payload))
                raw.commit()
            rates.append(len(all_chunks) / (time.perf_counter() - began))
        with get_engine().begin() as connection:
            connection.execute(text("DELETE FROM documents WHERE title = 'copy-baseline'"))
    return rates[0], rates[1]


def _vacuum() -> None:
    from common.platform.db import get_engine

    raw: Any = get_engine().raw_connection()
    try:
        raw.driver_connection.rollback()  # the pool's pre-ping left a transaction open
        raw.driver_connection.autocommit = True
        raw.driver_connection.run("VACUUM document_chunks")
    finally:
        raw.driver_connection.autocommit = False
        raw.close()


def _dummy(team_id: uuid.UUID, project_id: uuid.UUID) -> uuid.UUID:
    from sqlalchemy import text

    from common.platform.db import get_engine

    with get_engine().begin() as connection:
        document_id: uuid.UUID = connection.execute(
            text(
                "INSERT INTO documents (team_id, project_id, title, gcs_uri) "
                "VALUES (:t, :p, 'copy-baseline', 'gs://baseline/' || gen_random_uuid()) "
                "RETURNING id"
            ),
            {"t": team_id, "p": project_id},
        ).scalar_one()
    return document_id


def _print_report(
    documents: int,
    wall: float,
    stages: dict[str, float],
    chunks: int,
    jobs: int,
    copy_rate: float,
) -> dict[str, Any]:
    busy = sum(stages.values())
    embed = stages.get("embed", 0.0)
    write_rate = chunks / stages["write"] if stages.get("write") else 0.0
    ratio = write_rate / copy_rate if copy_rate else 0.0
    print(f"{'stage':<10}{'seconds':>10}{'share':>8}", file=sys.stderr)
    for stage in ("download", "extract", "chunk", "embed", "write"):
        seconds = stages.get(stage, 0.0)
        print(f"{stage:<10}{seconds:>10.2f}{seconds / busy:>8.1%}", file=sys.stderr)
    print(
        f"\n{jobs} jobs, {chunks} chunks in {wall:.1f}s wall: {documents / wall:.2f} documents/s, "
        f"{chunks / wall:.1f} chunks/s\n"
        f"write path inside the run {write_rate:.0f} rows/s (sharing the CPU with embedding) vs "
        f"raw COPY {copy_rate:.0f} rows/s alone (ratio {ratio:.2f}); "
        f"embedding share {embed / busy:.1%}, everything else {1 - embed / busy:.1%}",
        file=sys.stderr,
    )
    return {
        "documents": documents,
        "jobs_succeeded": jobs,
        "chunks": chunks,
        "wall_seconds": round(wall, 2),
        "documents_per_second": round(documents / wall, 3),
        "chunks_per_second": round(chunks / wall, 2),
        "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
        "embedding_share": round(embed / busy, 4),
        "non_embedding_share": round(1 - embed / busy, 4),
        "write_rows_per_second_in_run": round(write_rate, 1),
        "raw_copy_rows_per_second": round(copy_rate, 1),
    }


if __name__ == "__main__":
    main()
