"""bench/model_switch.py's figures: what the stand-in received, the switch's rates, the table."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

PRICE_PER_MILLION_TOKENS = 0.15  # gemini-embedding-001's input price (2025)


def _texts(request: Any) -> list[str]:
    body = request.body if isinstance(request.body, dict) else {}
    if request.action == "predict":
        return [str(i.get("content", "")) for i in body.get("instances", [])]
    contents = [i.get("content", {}) for i in body.get("requests", [])]
    if request.action == "embedContent":
        contents = [body.get("content", {})]
    return ["".join(p.get("text", "") for p in c.get("parts", [])) for c in contents]


def sent_to_standin(standin: Any, start: float, end: float) -> dict[str, Any]:
    """What the re-embedding sent to the stand-in between `start` and `end`."""
    from common.localstack.vertex_standin import estimate_tokens

    embeds = [
        r
        for r in list(standin.requests)
        if start <= r.at <= end and r.texts and "RETRIEVAL_DOCUMENT" in json.dumps(r.body)
    ]
    answered = [r for r in embeds if r.failed_with is None]
    texts = [text for r in answered for text in _texts(r)]
    tokens = sum(estimate_tokens(text) for text in texts)
    first = min((r.at for r in answered), default=start)
    last = max((r.at for r in answered), default=start)
    return {
        "requests": len(embeds),
        "answered": len(answered),
        "rejected_429": sum(r.failed_with == 429 for r in embeds),
        "other_errors": sum(r.failed_with not in (None, 429) for r in embeds),
        "texts": len(texts),
        "tokens": tokens,
        "dollars": round(tokens / 1e6 * PRICE_PER_MILLION_TOKENS, 4),
        "texts_per_request": round(len(texts) / len(answered), 1) if answered else None,
        "tokens_per_request": round(tokens / len(answered)) if answered else None,
        "first_request_after_s": round(first - start, 2),
        "window_s": round(last - first, 2),
    }


def switch_figures(
    seconds: float | None, command_seconds: float, sent: dict[str, Any], chunks: int, quota: int
) -> dict[str, Any]:
    """`seconds`: from the switch command's start to the flip (None: it never came)."""
    if seconds is None:
        return {"seconds": None}
    window_minutes = max(sent["window_s"], 1e-9) / 60
    # A 60 s sliding window lets `quota` requests through at once, then `quota` a minute.
    floor = max(0, math.ceil(sent["answered"] / quota) - 1) * 60.0
    return {
        "seconds": round(seconds, 1),
        "command_seconds": round(command_seconds, 1),
        # From the last re-embedding request's arrival to the flip being seen.
        "flip_after_last_request_s": round(
            seconds - sent["first_request_after_s"] - sent["window_s"], 2
        ),
        "chunks_per_second": round(chunks / seconds, 1),
        "chunks_per_second_in_window": round(sent["texts"] / max(sent["window_s"], 1e-9), 1),
        "requests_per_minute_in_window": round(sent["answered"] / window_minutes, 1),
        "quota_share_in_window": round(sent["answered"] / window_minutes / quota, 3),
        "quota_floor_s": floor,
    }


def api_limit_bound(estimate: dict[str, Any]) -> int | None:
    """Requests if every text were packed across documents to the API's limits (250 texts,
    20,000 tokens a request): what the estimate said before it counted per document."""
    if not estimate:
        return None
    chunks, tokens = int(estimate["chunks"]), int(estimate["tokens"])
    return max(math.ceil(chunks / 250), math.ceil(tokens / 20_000))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def print_report(report: dict[str, Any]) -> None:
    out = sys.stderr
    s = report["standin"]
    print(
        f"\n{report['chunks']:,} chunks in {report['documents']} documents; stand-in "
        f"{s['latency_ms']:.0f} ms + {s['latency_per_text_ms']:.0f} ms/text, quota "
        f"{s['quota_per_minute']}/min; {report['rate_per_second']} questions/s; load average "
        f"at the end {report['load_average']}",
        file=out,
    )
    print(
        f"{'phase':<10}{'s':>7}{'asked':>7}{'failed':>8}{'empty':>7}{'found':>7}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'embed':>8}{'sql':>7}",
        file=out,
    )
    for name, p in report["phases"].items():
        cells = [p[k] if p[k] is not None else "-" for k in ("p50_ms", "p95_ms", "p99_ms")]
        print(
            f"{name:<10}{p['seconds']:>7}{p['questions']:>7}{p['failed']:>8}{p['empty']:>7}"
            f"{p['found_top5'] if p['found_top5'] is not None else '-':>7}"
            f"{cells[0]:>9}{cells[1]:>9}{cells[2]:>9}"
            f"{p['embed_p50_ms'] or '-':>8}{p['sql_p50_ms'] or '-':>7}",
            file=out,
        )
    sw, e, sent = report["switch"], report["estimate"], report["sent"]
    if sw.get("seconds") is None:
        print("the switch did NOT complete before the deadline", file=out)
    else:
        print(
            f"switched in {sw['seconds']} s (the command {sw['command_seconds']} s): "
            f"{sw['chunks_per_second']} chunks/s overall, {sw['chunks_per_second_in_window']}/s "
            f"while requests flowed; {sw['requests_per_minute_in_window']} requests/min = "
            f"{sw['quota_share_in_window']:.0%} of the quota (its floor for these requests "
            f"{sw['quota_floor_s']:.0f} s); the flip seen {sw['flip_after_last_request_s']} s "
            "after the last request came",
            file=out,
        )
        slow = report["phases"]["after"]["slowest"]
        print(f"slowest answers after the flip (s after it, ms): {slow}", file=out)
    rows = [
        ("documents (jobs)", e.get("documents"), report["jobs_queued"]),
        ("texts (chunks)", e.get("chunks"), sent["texts"]),
        ("tokens (bytes/4)", e.get("tokens"), sent["tokens"]),
        ("requests", e.get("requests"), f"{sent['answered']} (+{sent['rejected_429']} 429s)"),
        ("minutes", _round(e.get("minutes_at_quota")), _round((sw.get("seconds") or 0) / 60)),
        ("dollars", e.get("dollars"), sent["dollars"]),
    ]
    print(f"{'':18}{'estimated':>14}{'sent':>22}", file=out)
    for label, estimated, actual in rows:
        print(f"{label:18}{estimated!s:>14}{actual!s:>22}", file=out)
    print(
        f"(requests if packed across documents to the API's limits: "
        f"{report['api_limit_bound_requests']}; minutes estimated: at the quota; sent: the "
        "switch's wall time)",
        file=out,
    )
    if report["finish"]:
        print(f"finish (drops the inline vectors): {report['finish']['seconds']} s", file=out)
    print(f"checks: {report['checks']}", file=out)
    for failure in report["failures"]:
        print(f"failed question: {failure}", file=out)
