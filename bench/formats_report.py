"""bench/formats.py's tables (on stderr) and the figures of its final JSON line."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def say(text: str = "") -> None:
    print(text, file=sys.stderr)


def memory_limit_mib() -> float:
    """The memory Terraform gives chunk_embed (`chunk_embed_memory`'s default), in MiB."""
    text = (ROOT / "infra" / "variables.tf").read_text()
    match = re.search(r'variable "chunk_embed_memory".*?default\s*=\s*"(\d+)(Mi|Gi)"', text, re.S)
    if not match:
        return math.nan
    return float(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def print_rows(rows: dict[str, dict[str, Any]]) -> None:
    say(
        f"\n{'format':<22}{'ready':>6}{'MB':>8}{'chunks':>8}{'docs/s':>8}{'MB/s':>8}"
        f"{'extract s':>10}{'peak MiB':>10}{'OCR p/s':>9}  notes"
    )
    for label, r in rows.items():
        ocr = r.get("ocr_pages_per_second")
        ready = f"{r['ready']}/{r['documents']}"
        say(
            f"{label:<22}{ready:>6}{r['megabytes']:>8.2f}{r['chunks']:>8}"
            f"{r['documents_per_second']:>8.2f}{r['megabytes_per_second']:>8.3f}"
            f"{r['extract_seconds']:>10.1f}{r['peak_mib']:>10.0f}"
            f"{(f'{ocr:.3f}' if ocr else '-'):>9}  {r.get('failed') or r.get('notice') or ''}"
        )


def print_scans(scans: dict[str, Any]) -> None:
    cer = scans.get("cer", {})
    if "micro" in cer:
        worst = ", ".join(f"{w['page']} {w['cer']:.1%}" for w in cer["worst"])
        say(
            f"\nOCR: CER {cer['micro']:.2%} over {cer['pages']} scanned pages (goal <= 3%), "
            f"{cer['micro_raw']:.2%} with dot leaders counted as characters, "
            f"{cer['micro_reading_order_ignored']:.2%} with reading order ignored; "
            f"worst pages: {worst}"
        )
    else:
        say(f"\nOCR: no CER ({cer.get('unavailable')})")
    found = scans.get("retrieval")
    if not found:
        say("scanned vs text retrieval: not measured (a version failed to ingest)")
        return
    say(f"\nscanned vs text, {found['questions']} questions")
    say(f"{'mode':<9}{'hit@5 text':>11}{'scanned':>9}{'ratio':>7}{'nDCG@10 text':>14}"
        f"{'scanned':>9}{'ratio':>7}")  # fmt: skip
    for mode, text in found["text"].items():
        scan, ratio = found["scanned"][mode], found["ratio"][mode]
        say(
            f"{mode:<9}{text['hit@5']:>11.3f}{scan['hit@5']:>9.3f}{ratio['hit@5'] or 0:>7.3f}"
            f"{text['ndcg@10']:>14.3f}{scan['ndcg@10']:>9.3f}{ratio['ndcg@10'] or 0:>7.3f}"
        )


def report(
    rows: dict[str, dict[str, Any]],
    scans: dict[str, Any],
    overhead: dict[str, Any] | None,
    *,
    small: bool,
) -> dict[str, Any]:
    """Print every table; the figures for the JSON line (the parts that ran)."""
    figures: dict[str, Any] = {"formats": rows}
    if rows:
        print_rows(rows)
        if small:
            say("(--small: one worker for every format, so the peak column only ever grows)")
        figures["memory"] = print_memory(rows)
        figures["ocr_pages_per_second"] = print_ocr_speed(rows, scans)
    if scans:
        print_scans(scans)
        figures["scanned"] = {key: value for key, value in scans.items() if key != "rows"}
    if overhead:
        extract, job = overhead["extract"], overhead["job"]
        say(
            f"\ntext PDFs with the OCR path (parser=local) vs without (none), median of "
            f"{overhead['rounds']} alternating rounds: extract {extract['local']:.2f} vs "
            f"{extract['none']:.2f} s ({extract['ratio']}x), jobs {job['local']:.2f} vs "
            f"{job['none']:.2f} s ({job['ratio']}x), wall {overhead['wall']['ratio']}x"
        )
        figures["ocr_path_on_text_pdfs"] = overhead
    return figures


def print_memory(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    limit = memory_limit_mib()
    label, top = max(rows.items(), key=lambda item: item[1]["peak_tree_mib"])
    say(
        f"\nchunk_embed peak memory: {top['peak_mib']:.0f} MiB in its worker process, "
        f"{top['peak_tree_mib']:.0f} MiB over its process tree, on {label}; Terraform "
        f"chunk_embed_memory is {limit:.0f} MiB"
    )
    return {
        "peak_mib": top["peak_mib"],
        "peak_tree_mib": top["peak_tree_mib"],
        "on": label,
        "limit_mib": limit,
        "under_limit": top["peak_tree_mib"] < limit,
    }


def print_ocr_speed(rows: dict[str, dict[str, Any]], scans: dict[str, Any]) -> float | None:
    """OCR pages/s in the pipeline, and how many pages the default job's OCR budget reads."""
    from common.ingestion.ocr import OCR_TIME_SHARE
    from common.platform.config import Settings

    ocr_rows = [r for r in rows.values() if r.get("ocr_pages") and r.get("extract_seconds")]
    pages = sum(r["ocr_pages"] for r in ocr_rows)
    seconds = sum(r["extract_seconds"] for r in ocr_rows)
    if not seconds:
        return None
    per_second = float(pages) / float(seconds)
    budget = OCR_TIME_SHARE * Settings.model_fields["job_timeout_seconds"].default
    in_process = scans.get("cer", {}).get("in_process_pages_per_second")
    say(
        f"OCR: {per_second:.3f} pages/s in the pipeline ({pages} pages of scans and images over "
        f"their extract seconds), {in_process} in this process alone; at that speed the "
        f"default job's OCR budget ({budget:.0f} s) reads {int(budget * per_second)} pages"
    )
    return round(per_second, 3)
