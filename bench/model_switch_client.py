"""The model-switch bench's client: questions over HTTP at a steady rate, every answer kept.

Open loop: a question is sent every 1/rate seconds whatever the previous one is doing (a pool of
threads holds the ones in flight), so the load stays the same before, during and after the
switch even when an answer gets slower. Each question is a run of words from one chunk of the
corpus; an answer "finds" its document when the document is among the citations.
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from common.query.api.context import parse_server_timing

QUESTION_WORDS = 10
TOP_K = 5
_WORD = re.compile(r"[A-Za-z_]{3,}")


@dataclass(frozen=True)
class Question:
    text: str
    title: str  # the document it was taken from


@dataclass(frozen=True)
class Asked:
    sent: float  # time.monotonic()
    ms: float
    status: int | None  # None: no HTTP answer at all
    error: str | None
    found: bool
    cited: int
    timing: dict[str, float]  # Server-Timing phases (ms)


def questions(documents: list[Any], count: int, seed: int = 5) -> list[Question]:
    """`count` questions, each ten consecutive words of a random chunk of the corpus."""
    rng = random.Random(seed)
    chosen: list[Question] = []
    while len(chosen) < count:
        document = rng.choice(documents)
        words = _WORD.findall(rng.choice(document.chunks).content)
        if len(words) < QUESTION_WORDS:
            continue
        start = rng.randrange(len(words) - QUESTION_WORDS + 1)
        chosen.append(Question(" ".join(words[start : start + QUESTION_WORDS]), document.name))
    return chosen


@dataclass
class Client:
    base: str
    project_id: str
    api_key: str
    pool: list[Question]
    rate: float
    asked: list[Asked] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def warm_up(self, count: int = 5) -> None:
        """A few questions first, unrecorded: the query function loads its model on first use."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        url = f"{self.base}/v1/projects/{self.project_id}/query"
        with httpx.Client(timeout=120, headers=headers) as http:
            for question in self.pool[-count:]:
                _ask(http, url, question)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="client", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        url = f"{self.base}/v1/projects/{self.project_id}/query"
        lock = threading.Lock()
        with (
            httpx.Client(timeout=60, headers=headers) as http,
            ThreadPoolExecutor(16, thread_name_prefix="ask") as workers,
        ):

            def ask(question: Question) -> None:
                record = _ask(http, url, question)
                with lock:
                    self.asked.append(record)

            due, number = time.monotonic(), 0
            while not self._stop.is_set():
                workers.submit(ask, self.pool[number % len(self.pool)])
                number += 1
                due += 1.0 / self.rate
                self._stop.wait(max(0.0, due - time.monotonic()))


def _ask(http: httpx.Client, url: str, question: Question) -> Asked:
    sent = time.monotonic()
    body = {"question": question.text, "mode": "retrieve", "top_k": TOP_K}
    try:
        response = http.post(url, json=body)
    except httpx.HTTPError as error:
        ms = (time.monotonic() - sent) * 1000
        return Asked(sent, ms, None, f"{type(error).__name__}: {error}", False, 0, {})
    ms = (time.monotonic() - sent) * 1000
    if response.status_code != 200:
        return Asked(sent, ms, response.status_code, response.text[:300], False, 0, {})
    citations = response.json().get("citations") or []
    found = any(c.get("title") == question.title for c in citations)
    timing = parse_server_timing(response.headers.get("server-timing", ""))
    return Asked(sent, ms, 200, None, found, len(citations), timing)


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 1) if values else None


def phase_figures(asked: list[Asked], start: float, end: float) -> dict[str, Any]:
    """Figures of the questions sent in [start, end)."""
    mine = [a for a in asked if start <= a.sent < end]
    answered = [a for a in mine if a.status == 200]
    ms = [a.ms for a in answered]

    def phase(name: str) -> float | None:
        values = [a.timing[name] for a in answered if name in a.timing]
        return round(statistics.median(values), 1) if values else None

    return {
        "seconds": round(end - start, 1),
        "questions": len(mine),
        "per_second": round(len(mine) / (end - start), 2) if end > start else None,
        "failed": len(mine) - len(answered),
        "empty": sum(a.cited == 0 for a in answered),
        "found_top5": round(sum(a.found for a in answered) / len(answered), 3)
        if answered
        else None,
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": round(max(ms), 1) if ms else None,
        "embed_p50_ms": phase("embed"),
        "sql_p50_ms": phase("sql"),
        # The slowest answers: (seconds into the phase, ms), to tell a cold start from noise.
        "slowest": [
            (round(a.sent - start, 1), round(a.ms)) for a in sorted(mine, key=lambda a: -a.ms)[:3]
        ],
    }


def failures(asked: list[Asked]) -> list[str]:
    return [f"{a.status}: {a.error}" for a in asked if a.status != 200][:10]
