"""Retrieval quality on real documents: dense-only, keyword-only and hybrid, with labeled answers.

1. The documents of `bench/quality_fetch.py` (Debian documentation: PDF manuals, Python's HTML
   reference, Markdown READMEs, plus unquestioned distractors) go through the real pipeline: an
   embedded Postgres of its own, the GCS and Pub/Sub emulators and the `ingest_trigger` and
   `chunk_embed` functions as `ai-infra dev` runs them, with the local MiniLM embedder.
2. Every question of `bench/quality_questions.jsonl` (written by hand, paraphrased, each with
   the document and the page(s) or the sentence(s) that answer it) is asked three ways through
   the service's own search (`common.query.retrieval.search`): each arm alone and fused. A chunk
   is relevant when it lies on a labeled page of the labeled document (PDF) or overlaps a
   labeled sentence (HTML, Markdown: non-paged formats are one page). Figures: hit@1, hit@5,
   MRR@10 and nDCG@10 (binary gains over the relevant chunks, ideal = min(relevant, 10)).
3. Answer mode through `run_query` (the configured generator, extractive by default): the share
   of questions with at least one cited chunk relevant.

Questions are split: a third `heldout` (never used for tuning), the rest `tune`; both reported.
Prints a table and a final JSON line. `--small` (CI): three documents, one of each kind.

Run: uv run --extra local python -m bench.quality [--small] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ingest import local_pipeline
from bench.quality_fetch import DEFAULT_CACHE, SMALL, fetch

QUESTIONS = Path(__file__).with_name("quality_questions.jsonl")
MODES = ("dense", "keyword", "hybrid")
SPLITS = ("tune", "heldout")
DEPTH = 10
METRICS = ("hit@1", "hit@5", "mrr@10", "ndcg@10")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    document: str
    split: str
    pages: tuple[int, ...] = ()
    anchors: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredChunk:
    id: uuid.UUID
    document: str
    page_start: int
    page_end: int
    char_start: int
    char_end: int


@dataclass
class Scores:
    values: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})

    def add(self, ranked: list[uuid.UUID], relevant: set[uuid.UUID]) -> None:
        first = next((r for r, c in enumerate(ranked[:DEPTH], start=1) if c in relevant), None)
        self.values["hit@1"].append(1.0 if first == 1 else 0.0)
        self.values["hit@5"].append(1.0 if first is not None and first <= 5 else 0.0)
        self.values["mrr@10"].append(1.0 / first if first else 0.0)
        dcg = sum(
            1.0 / math.log2(rank + 1)
            for rank, chunk in enumerate(ranked[:DEPTH], start=1)
            if chunk in relevant
        )
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), DEPTH) + 1))
        self.values["ndcg@10"].append(dcg / ideal if ideal else 0.0)

    def mean(self, metric: str) -> float:
        values = self.values[metric]
        return sum(values) / len(values) if values else float("nan")


def load_questions(*, small: bool) -> list[Question]:
    questions = []
    for line in QUESTIONS.read_text().splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        question = Question(
            id=raw["id"],
            question=raw["question"],
            document=raw["document"],
            split=raw["split"],
            pages=tuple(raw.get("pages", ())),
            anchors=tuple(raw.get("anchors", ())),
        )
        if not small or question.document in SMALL:
            questions.append(question)
    return questions


def anchor_spans(text: str, anchor: str) -> list[tuple[int, int]]:
    """Every place the anchor occurs in the extracted text, whitespace-insensitively."""
    pattern = r"\s+".join(re.escape(word) for word in anchor.split())
    return [match.span() for match in re.finditer(pattern, text)]


def relevant_chunks(
    question: Question, chunks: list[StoredChunk], texts: dict[str, str]
) -> set[uuid.UUID]:
    """The chunks that answer the question: on a labeled page, or overlapping a labeled anchor."""
    own = [chunk for chunk in chunks if chunk.document == question.document]
    if question.pages:
        return {c.id for c in own if any(c.page_start <= p <= c.page_end for p in question.pages)}
    spans = [span for a in question.anchors for span in anchor_spans(texts[question.document], a)]
    if not spans:
        raise SystemExit(f"{question.id}: no anchor found in {question.document}")
    return {c.id for c in own if any(c.char_start < e and c.char_end > s for s, e in spans)}


# --- the local stack, as bench/ingest.py starts it ---------------------------------------------
@contextmanager
def local_stack(work: Path, *, functions_too: bool = True) -> Iterator[str]:
    """bench/ingest.py's pipeline; yields the trigger URL ("" with Postgres alone)."""
    env = {"AI_INFRA_LOG_LEVEL": "WARNING"}
    with local_pipeline(work, env, functions_too=functions_too) as pipeline:
        yield pipeline.trigger_url


def ingest(trigger_url: str, files: dict[str, Path]) -> tuple[uuid.UUID, uuid.UUID, float]:
    """Upload every file as `<project>/<name>`, send the finalize events, wait for all jobs."""
    from sqlalchemy import select

    from common.localstack.eventarc import FINALIZED, send_storage_event
    from common.platform.db import transaction
    from common.platform.models import Document, DocumentStatus, Project, Team
    from common.platform.storage import get_blob_store

    with transaction() as session:
        team = Team(name=f"quality-{uuid.uuid4().hex[:6]}")
        session.add(team)
        session.flush()
        project = Project(team_id=team.id, name="quality")
        session.add(project)
        session.flush()
        team_id, project_id = team.id, project.id
    store = get_blob_store()
    started = time.perf_counter()
    for name, path in files.items():
        blob = store.upload("bench-bucket", f"{project_id}/{name}", path.read_bytes(), None)
        send_storage_event(trigger_url, FINALIZED, blob)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        with transaction() as session:
            rows = session.execute(
                select(Document.title, Document.status, Document.error_message).where(
                    Document.project_id == project_id
                )
            ).all()
        done = [row for row in rows if row.status in (DocumentStatus.READY, DocumentStatus.FAILED)]
        if len(done) == len(files):
            failed = [f"{row.title}: {row.error_message}" for row in rows if row.status != "ready"]
            if failed:
                raise SystemExit("documents failed: " + "; ".join(failed))
            return team_id, project_id, time.perf_counter() - started
        time.sleep(0.5)
    raise SystemExit("ingestion did not finish in 30 minutes")


def ingested_project() -> tuple[uuid.UUID, uuid.UUID] | None:
    """The project a previous run with the same --data folder ingested (its team, project)."""
    from sqlalchemy import select

    from common.platform.db import transaction
    from common.platform.models import Project

    with transaction() as session:
        row = session.execute(
            select(Project.team_id, Project.id).where(Project.name == "quality")
        ).first()
    return (row.team_id, row.id) if row else None


def analyze() -> None:
    """What autovacuum does after a bulk load: fresh planner and full-text statistics."""
    from common.platform.db import get_engine

    raw: Any = get_engine().raw_connection()
    try:
        raw.driver_connection.rollback()
        raw.driver_connection.autocommit = True
        raw.driver_connection.run("ANALYZE document_chunks")
    finally:
        raw.driver_connection.autocommit = False
        raw.close()


def stored_chunks(project_id: uuid.UUID) -> list[StoredChunk]:
    from sqlalchemy import select

    from common.platform.db import transaction
    from common.platform.models import Document, DocumentChunk

    with transaction() as session:
        rows = session.execute(
            select(
                DocumentChunk.id,
                Document.title,
                DocumentChunk.page_start,
                DocumentChunk.page_end,
                DocumentChunk.char_start,
                DocumentChunk.char_end,
            )
            .join(Document, Document.id == DocumentChunk.document_id)
            .where(DocumentChunk.project_id == project_id)
        ).all()
    return [
        StoredChunk(r.id, r.title, r.page_start or 1, r.page_end or 1, r.char_start, r.char_end)
        for r in rows
    ]


def extracted_texts(files: dict[str, Path]) -> dict[str, str]:
    """The text the pipeline chunked (same extraction), for locating the labeled sentences."""
    from common.ingestion.extract import extract_text
    from common.platform.config import get_settings

    max_pages = get_settings().max_pdf_pages
    return {
        name: extract_text(
            path.read_bytes(), mime_type=None, filename=name, max_pages=max_pages
        ).text
        for name, path in files.items()
    }


# --- evaluation ---------------------------------------------------------------------------------
def evaluate(
    project_id: uuid.UUID,
    questions: list[Question],
    relevant: dict[str, set[uuid.UUID]],
    vectors: dict[str, Any],
    **search_options: Any,
) -> tuple[dict[tuple[str, str], Scores], list[float]]:
    """Scores per (mode, split) and the hybrid search's SQL milliseconds per question."""
    from common.platform.config import get_settings
    from common.platform.db import transaction
    from common.query.retrieval import search

    settings = get_settings()
    scores = {(mode, split): Scores() for mode in MODES for split in SPLITS}
    latencies: list[float] = []
    for question in questions:
        for mode in MODES:
            began = time.perf_counter()
            with transaction() as session:
                found = search(
                    session,
                    project_id=project_id,
                    query_vector=vectors[question.id],
                    question=question.question,
                    top_k=DEPTH,
                    ef_search=settings.hnsw_ef_search,
                    arms=mode,
                    **search_options,
                )
            if mode == "hybrid":
                latencies.append((time.perf_counter() - began) * 1000)
            ranked = [chunk.chunk_id for chunk in found]
            scores[(mode, question.split)].add(ranked, relevant[question.id])
    return scores, latencies


def hybrid_scores(
    project_id: uuid.UUID,
    questions: list[Question],
    relevant: dict[str, set[uuid.UUID]],
    vectors: dict[str, Any],
    fusion: Any,
) -> Scores:
    """Hybrid search's scores over these questions with this fusion."""
    from common.platform.config import get_settings
    from common.platform.db import transaction
    from common.query.retrieval import search

    scores = Scores()
    for question in questions:
        with transaction() as session:
            found = search(
                session,
                project_id=project_id,
                query_vector=vectors[question.id],
                question=question.question,
                top_k=DEPTH,
                ef_search=get_settings().hnsw_ef_search,
                fusion=fusion,
            )
        scores.add([chunk.chunk_id for chunk in found], relevant[question.id])
    return scores


def tune(
    project_id: uuid.UUID,
    questions: list[Question],
    relevant: dict[str, set[uuid.UUID]],
    vectors: dict[str, Any],
) -> Any:
    """Grid search of the fusion on the tune split only; prints the best few (nDCG@10, then
    hit@5: the defaults are picked from both), returns the best by nDCG@10."""
    import itertools

    from common.query.retrieval import Fusion

    tuning = [q for q in questions if q.split == "tune"]
    results = []
    # Coverage stays >= 0.2: below it one shared common word puts a chunk in the fusion.
    grid = (
        [
            Fusion(
                relative=False,
                rrf_k=k,
                keyword_weight=w,
                min_coverage=c,
                keyword_candidates_per_result=d,
            )
            for k, w, c, d in itertools.product(
                (15, 30, 60), (0.75, 1.0, 1.5, 2.0), (0.2, 0.3, 0.5), (4, 8)
            )
        ]
        + [
            Fusion(
                relative=True,
                keyword_weight=w,
                min_coverage=c,
                dense_floor=f,
                neighbour_weight=n,
                rank_weight=r,
                rrf_k=k,
            )
            for w, c, f, n, r, k in itertools.product(
                (0.5, 0.7, 1.0), (0.2, 0.3), (None, 0.3), (0.0, 0.5, 0.7), (0.0, 0.3), (5, 10)
            )
        ]
        + [
            Fusion(relative=True, dense_candidates_per_result=dd, keyword_candidates_per_result=d)
            for dd, d in itertools.product((4, 8, 16), (4, 8, 16))
        ]
    )
    for fusion in grid:
        scores = hybrid_scores(project_id, tuning, relevant, vectors, fusion)
        results.append((scores.mean("ndcg@10"), scores.mean("hit@5"), fusion))
    results.sort(key=lambda result: -result[0])
    for ndcg, hit5, fusion in results[:12]:
        print(f"tune nDCG@10 {ndcg:.4f} hit@5 {hit5:.3f}  {fusion}", file=sys.stderr)
    return results[0][2]


def citation_accuracy(
    team_id: uuid.UUID,
    project_id: uuid.UUID,
    questions: list[Question],
    relevant: dict[str, set[uuid.UUID]],
) -> dict[str, float]:
    """Share of questions (per split) whose answer cites at least one relevant chunk."""
    from common.query.service import Principal, QueryRequest, run_query

    principal = Principal(team_id=team_id, api_key_id=None)
    hits: dict[str, list[float]] = {split: [] for split in SPLITS}
    for question in questions:
        result = run_query(
            principal,
            project_id,
            QueryRequest(question=question.question),
            request_id=f"quality-{question.id}",
        )
        cited = {citation.chunk_id for citation in result.citations}
        hits[question.split].append(1.0 if cited & relevant[question.id] else 0.0)
    return {split: sum(v) / len(v) if v else float("nan") for split, v in hits.items()}


def report(
    scores: dict[tuple[str, str], Scores],
    citations: dict[str, float],
    counts: dict[str, int],
) -> dict[str, Any]:
    print(f"\n{'mode':<9}{'split':<9}" + "".join(f"{m:>9}" for m in METRICS), file=sys.stderr)
    figures: dict[str, Any] = {}
    for split in SPLITS:
        for mode in MODES:
            row = {m: round(scores[(mode, split)].mean(m), 4) for m in METRICS}
            figures[f"{mode}_{split}"] = row
            print(
                f"{mode:<9}{split:<9}" + "".join(f"{row[m]:>9.3f}" for m in METRICS),
                file=sys.stderr,
            )
        best_arm = max(figures[f"dense_{split}"]["ndcg@10"], figures[f"keyword_{split}"]["ndcg@10"])
        ratio = figures[f"hybrid_{split}"]["ndcg@10"] / best_arm if best_arm else float("nan")
        figures[f"hybrid_vs_best_arm_ndcg_{split}"] = round(ratio, 3)
        figures[f"answer_citation_accuracy_{split}"] = round(citations[split], 4)
        print(
            f"{split}: {counts[split]} questions; hybrid nDCG@10 = {ratio:.3f} x the better arm; "
            f"answers citing a labeled source: {citations[split]:.1%}",
            file=sys.stderr,
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="three documents (CI)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--tune", action="store_true", help="grid-search the fusion on the tune split first"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="keep the database here; a later run with the same folder skips ingestion "
        "(for trying search changes; re-ingest after changing chunking or embedding text)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    files = fetch(args.cache, small=args.small)
    questions = load_questions(small=args.small)
    work = args.data or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    reuse = (work / "pg").exists()
    with local_stack(work, functions_too=not reuse) as trigger_url:
        from common.inference.embeddings import get_embedder

        found = ingested_project() if reuse else None
        if found:
            (team_id, project_id), seconds = found, 0.0
        else:
            team_id, project_id, seconds = ingest(trigger_url, files)
        analyze()
        chunks = stored_chunks(project_id)
        print(
            f"corpus: {len(files)} documents, {len(chunks)} chunks, ingested in {seconds:.1f}s; "
            f"{len(questions)} questions",
            file=sys.stderr,
        )
        texts = extracted_texts(files)
        relevant = {q.id: relevant_chunks(q, chunks, texts) for q in questions}
        embedder = get_embedder()
        vectors = {q.id: embedder.embed_query(q.question) for q in questions}
        options: dict[str, Any] = {}
        if args.tune:
            options["fusion"] = tune(project_id, questions, relevant, vectors)
        scores, latencies = evaluate(project_id, questions, relevant, vectors, **options)
        citations = citation_accuracy(team_id, project_id, questions, relevant)
    counts = {split: sum(q.split == split for q in questions) for split in SPLITS}
    figures = report(scores, citations, counts)
    latencies.sort()
    figures.update(
        {
            "documents": len(files),
            "chunks": len(chunks),
            "questions": counts,
            "hybrid_sql_ms_p50": round(latencies[len(latencies) // 2], 2),
            "ingest_seconds": round(seconds, 1),
        }
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
