"""Every format through the real pipeline: throughput, peak memory, and OCR against known text.

1. Per format (bench/formats_corpus.py: documents made with each format's own library), the
   batch goes through the local stack of bench/ingest.py (embedded Postgres, GCS and Pub/Sub
   emulators, `ingest_trigger` and `chunk_embed` under functions-framework, local embedder):
   upload -> ready. Figures: documents/s and MB/s end to end, chunks, the worker's extract-stage
   seconds (`_Stages` in common/ingestion/jobs.py, read from its log), and the peak resident
   memory (VmHWM) of the chunk_embed process tree, from a fresh worker per format (warmed up
   with one small job first). The largest file of the bench, a 50,000-row workbook, has a row
   of its own; the memory goal is the Terraform `chunk_embed_memory` (infra/variables.tf).
2. Scans of real documents (bench/formats_scan.py): the PDFs that bench/quality.py asks about
   (Debian documentation), plus 30 pages of a distractor (the bench's largest scan), rendered to
   greyscale JPEG pages at 200 dpi in image-only PDFs. Both versions are ingested into two
   projects; bench/quality's questions about those PDFs (labelled by page, the same pages in
   both) are asked in each: hit@5 and nDCG@10 of dense, keyword and hybrid search, scanned
   over text. CER of every scanned page against the original's text layer (micro-averaged, the
   worst pages listed). OCR pages/s: OCR'd pages over the worker's extract seconds of the
   scans and the images, and in this process alone (the CER pass).
3. What the OCR path costs a text PDF: the same text PDFs through workers with
   AI_INFRA_PARSER=none and =local, alternating; the extract-stage and job seconds compared.

Timings are wall-clock on this machine: run on an idle machine, or compare the ratios, which
are measured in the same run. Prints tables and a final JSON line.

Run: uv run --extra local python -m bench.formats [--small] [--data DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.formats_corpus import FORMATS, big_xlsx, documents
from bench.formats_report import report
from bench.formats_scan import (
    PageError,
    first_pages,
    micro_cer,
    page_errors,
    page_images,
    page_texts,
    scan_pdf,
    text_pdf,
)
from bench.formats_stack import Batch, Peak, ingest, peak_memory, warm_up
from bench.ingest import Pipeline, local_pipeline
from bench.quality_fetch import DEFAULT_CACHE, QUESTIONED, fetch, sources

PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Files = list[tuple[str, bytes, str]]
SMALL_SCAN_PAGES = 2
# The scans' worker's job timeout (full size): long enough for the 30-page scan on 2 busy cores.
SCAN_JOB_TIMEOUT = 3600
PARTS = ("formats", "scans", "overhead")


# --- the corpus ----------------------------------------------------------------------------------
def cached(folder: Path, make: Callable[[], Files]) -> Files:
    """The files kept in `folder` by an earlier run with the same --data, else made now."""
    index = folder / "index.json"
    if index.exists():
        names = json.loads(index.read_text())
        return [(name, (folder / name).read_bytes(), mime) for name, mime in names]
    files = make()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data, _ in files:
        (folder / name).write_bytes(data)
    index.write_text(json.dumps([[name, mime] for name, _, mime in files]))
    return files


def debian_pdfs(cache: Path, *, small: bool) -> Files:
    """The text PDFs bench/quality.py asks about; --small: setspace's first pages. The bench's
    largest scan is a distractor: caption.pdf's first 30 pages."""
    if small:
        path = fetch(cache, small=True)["setspace.pdf"]
        return [("setspace.pdf", first_pages(path.read_bytes(), SMALL_SCAN_PAGES), PDF)]
    wanted = {s.name for s in QUESTIONED if s.name.endswith(".pdf")} | {"caption.pdf"}
    paths = {s.name: cache / s.name for s in sources(small=False) if s.name in wanted}
    fetch(cache)
    files = [(name, path.read_bytes(), PDF) for name, path in sorted(paths.items())]
    return [(n, first_pages(d, 30) if n == "caption.pdf" else d, m) for n, d, m in files]


def pages_of(name: str, data: bytes) -> int:
    """Pages an OCR reads: PDF pages, image frames."""
    if name.endswith(".pdf"):
        import pypdfium2

        document = pypdfium2.PdfDocument(data)
        count = len(document)
        document.close()
        return count
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return int(getattr(image, "n_frames", 1))


def warm_image() -> bytes:
    image = page_images(text_pdf(["Warm-up page."]), 100)[0]
    import io

    buffer = io.BytesIO()
    image.crop((0, 0, image.width, image.height // 6)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- phase 1: formats ----------------------------------------------------------------------------
def run_batch(
    pipeline: Pipeline, files: Files, *, fresh: bool, ocr: bool, env: dict[str, str] | None = None
) -> tuple[Batch, Peak]:
    """One batch, on a fresh warmed-up worker when `fresh` (its own peak memory)."""
    if fresh:
        pipeline.restart_worker(env or {})
        warm_up(pipeline, image=warm_image() if ocr else None)
    batch = ingest(pipeline, files)
    return batch, peak_memory(pipeline)


def row(label: str, files: Files, batch: Batch, peak: Peak, ocr_pages: int) -> dict[str, Any]:
    sizes = {name: len(data) for name, data, _ in files}
    ready = {d.title for d in batch.ready}
    megabytes = sum(sizes.values()) / 1e6
    extract = batch.stage("extract")
    ready_mb = sum(sizes[name] for name in ready) / 1e6
    figures: dict[str, Any] = {
        "documents": len(files),
        "ready": len(ready),
        "megabytes": round(megabytes, 3),
        "chunks": sum(d.chunks for d in batch.ready),
        "wall_seconds": round(batch.wall, 2),
        "documents_per_second": round(len(files) / batch.wall, 3),
        "megabytes_per_second": round(megabytes / batch.wall, 3),
        "extract_seconds": round(extract, 2),
        "extract_megabytes_per_second": round(ready_mb / extract, 3) if extract else None,
        "peak_mib": round(peak.largest_mib, 1),
        "peak_tree_mib": round(peak.tree_mib, 1),
    }
    if ocr_pages:
        figures["ocr_pages"] = ocr_pages
        figures["ocr_pages_per_second"] = round(ocr_pages / extract, 3) if extract else None
    if batch.failed:
        first = batch.failed[0]
        figures["failed"] = f"{len(batch.failed)}: {first.title}: {first.error}"[:300]
    notices = sorted({d.notice for d in batch.ready if d.notice})
    if notices:
        figures["notice"] = notices[0][:200]
    print(f"  {label}: {len(ready)}/{len(files)} ready in {batch.wall:.1f} s", file=sys.stderr)
    return figures


def formats_phase(pipeline: Pipeline, corpus: Path, *, small: bool) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for fmt in FORMATS:
        files = cached(corpus / fmt.name, functools.partial(documents, fmt, small=small))
        batch, peak = run_batch(pipeline, files, fresh=not small, ocr=fmt.ocr)
        ready = {document.title for document in batch.ready}
        pages = sum(pages_of(n, d) for n, d, _ in files if fmt.ocr and n in ready)
        rows[fmt.name] = row(fmt.name, files, batch, peak, pages)
    big_rows = 1_000 if small else 50_000
    files = cached(
        corpus / "largest", lambda: [(f"orders-{big_rows}.xlsx", big_xlsx(big_rows), XLSX)]
    )
    batch, peak = run_batch(pipeline, files, fresh=not small, ocr=False)
    rows[f"xlsx {big_rows:,} rows"] = row("largest xlsx", files, batch, peak, 0)
    return rows


# --- phase 2: scans --------------------------------------------------------------------------
def retrieval(project_id: Any, questions: list[Any]) -> dict[str, dict[str, float]]:
    """bench/quality's evaluation on one project, both splits together."""
    from bench.quality import MODES, analyze, evaluate, relevant_chunks, stored_chunks
    from common.inference.embeddings import get_embedder

    analyze()
    chunks = stored_chunks(project_id)
    relevant = {q.id: relevant_chunks(q, chunks, {}) for q in questions}
    embedder = get_embedder()
    vectors = {q.id: embedder.embed_query(q.question) for q in questions}
    scores, _ = evaluate(project_id, questions, relevant, vectors)
    result = {}
    for mode in MODES:
        values = {m: [v for (md, _), s in scores.items() if md == mode for v in s.values[m]]
                  for m in ("hit@5", "ndcg@10")}  # fmt: skip
        result[mode] = {m: round(sum(v) / len(v), 4) for m, v in values.items()}
    return result


def scan_questions(names: set[str], *, small: bool) -> list[Any]:
    from bench.quality import load_questions

    return [
        q
        for q in load_questions(small=False)
        if q.document in names and q.pages and (not small or min(q.pages) <= SMALL_SCAN_PAGES)
    ]


def cer_pass(texts: Files, scans: Files) -> tuple[list[PageError], float, str | None]:
    """OCR every scanned page in this process with the worker's options; (page errors, OCR
    seconds, why not when OCR is unavailable)."""
    from common.inference.embeddings import get_embedder
    from common.ingestion.jobs import extraction_options
    from common.ingestion.sections import CONTEXT_TOKENS
    from common.platform.config import get_settings
    from common.platform.errors import PermanentIngestionError

    settings, embedder = get_settings(), get_embedder()
    tokens = min(settings.chunk_tokens, embedder.max_input_tokens - CONTEXT_TOKENS)
    # No time budget here: every page is read, however slowly.
    options = dataclasses.replace(
        extraction_options(settings, embedder, tokens, lambda: None), deadline=None
    )
    errors: list[PageError] = []
    seconds = 0.0
    for (name, text, _), (_, scan, _) in zip(texts, scans, strict=True):
        original = page_texts(text, name, options)
        began = time.perf_counter()
        try:
            recognised = page_texts(scan, name, options)
        except PermanentIngestionError as error:
            return [], 0.0, f"{name}: {error}"
        seconds += time.perf_counter() - began
        errors += page_errors(name, original, recognised)
    return errors, seconds, None


def scans_phase(pipeline: Pipeline, texts: Files, scans: Files, *, small: bool) -> dict[str, Any]:
    pages = sum(pages_of(n, d) for n, d, _ in scans)
    text_batch, text_peak = run_batch(pipeline, texts, fresh=not small, ocr=False)
    # Every page is read, so the OCR and retrieval figures cover the whole corpus: the time
    # budget of the default job timeout is reported beside them (`budget_pages`) instead.
    scan_env = {"AI_INFRA_JOB_TIMEOUT_SECONDS": str(SCAN_JOB_TIMEOUT)}
    scan_batch, scan_peak = run_batch(pipeline, scans, fresh=not small, ocr=True, env=scan_env)
    rows = {
        "pdf (Debian, text)": row("Debian text PDFs", texts, text_batch, text_peak, 0),
        "pdf (Debian, scanned)": row("Debian scans", scans, scan_batch, scan_peak, pages),
    }
    result: dict[str, Any] = {"rows": rows, "pages": pages}
    questions = scan_questions({n for n, _, _ in texts}, small=small)
    if not scan_batch.failed and not text_batch.failed:
        text_scores = retrieval(text_batch.project_id, questions)
        scan_scores = retrieval(scan_batch.project_id, questions)
        result["retrieval"] = {
            "questions": len(questions),
            "text": text_scores,
            "scanned": scan_scores,
            "ratio": {
                mode: {m: _ratio(scan_scores[mode][m], text_scores[mode][m]) for m in values}
                for mode, values in text_scores.items()
            },
        }
    errors, seconds, why = cer_pass(texts, scans)
    if why is None:
        worst = sorted(errors, key=lambda e: -e.distance)[:5]
        result["cer"] = {
            "micro": round(micro_cer(errors), 4),
            "micro_reading_order_ignored": round(micro_cer(errors, ordered=False), 4),
            "micro_raw": round(micro_cer(errors, raw=True), 4),
            "pages": len(errors),
            "worst": [
                {
                    "page": f"{e.document} p{e.page}",
                    "cer": round(e.cer, 3),
                    "cer_reading_order_ignored": round(e.unordered_distance / max(1, e.length), 3),
                    "edits": e.distance,
                }
                for e in worst
            ],
            "in_process_pages_per_second": round(len(errors) / seconds, 3) if seconds else None,
        }
    else:
        result["cer"] = {"unavailable": why}
    return result


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


# --- phase 3: what the OCR path costs a text PDF ----------------------------------------------
def overhead_phase(pipeline: Pipeline, texts: Files, *, rounds: int) -> dict[str, Any]:
    seconds: dict[str, dict[str, list[float]]] = {
        parser: {"extract": [], "job": [], "wall": []} for parser in ("none", "local")
    }
    for number in range(rounds):
        order = ("none", "local") if number % 2 == 0 else ("local", "none")
        for parser in order:
            batch, _ = run_batch(
                pipeline, texts, fresh=True, ocr=False, env={"AI_INFRA_PARSER": parser}
            )
            if batch.failed:
                raise SystemExit(f"text PDFs failed with parser={parser}: {batch.failed[0].error}")
            seconds[parser]["extract"].append(batch.stage("extract"))
            seconds[parser]["job"].append(sum(float(j["seconds"]) for j in batch.jobs.values()))
            seconds[parser]["wall"].append(batch.wall)
    result: dict[str, Any] = {"rounds": rounds, "documents": len(texts)}
    for measure in ("extract", "job", "wall"):
        none = statistics.median(seconds["none"][measure])
        local = statistics.median(seconds["local"][measure])
        result[measure] = {"none": round(none, 3), "local": round(local, 3),
                           "ratio": _ratio(local, none)}  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="a few documents per format (CI)")
    parser.add_argument("--data", type=Path, help="keep the generated corpus here for reuse")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Debian documents")
    parser.add_argument("--rounds", type=int, help="parser none/local rounds (default 3, small 1)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    corpus = (args.data or Path(tempfile.mkdtemp(prefix="bench-formats-corpus-"))) / (
        "small" if args.small else "full"
    )
    rounds = args.rounds or (1 if args.small else 3)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-formats-"))
    texts = cached(corpus / "debian-text", lambda: debian_pdfs(args.cache, small=args.small))
    scanned = cached(corpus / "debian-scan", lambda: [(n, scan_pdf(d), m) for n, d, m in texts])
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        parser.error(f"--parts: unknown {', '.join(sorted(parts - set(PARTS)))}")
    rows: dict[str, dict[str, Any]] = {}
    scans: dict[str, Any] = {}
    overhead: dict[str, Any] | None = None
    with local_pipeline(work, {"AI_INFRA_LOG_LEVEL": "INFO"}) as pipeline:
        warm_up(pipeline, image=warm_image())
        if "formats" in parts:
            rows = formats_phase(pipeline, corpus, small=args.small)
        if "scans" in parts:
            scans = scans_phase(pipeline, texts, scanned, small=args.small)
            rows.update(scans["rows"])
        if "overhead" in parts:
            overhead = overhead_phase(pipeline, texts, rounds=rounds)
    figures = report(rows, scans, overhead, small=args.small)
    figures["bench_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
