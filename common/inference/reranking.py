"""Reranking behind one small protocol, the implementation chosen by settings.

`none` (default): no reranker, `get_reranker` returns None. `vertex`: the Vertex AI ranking API
(Discovery Engine `rankingConfigs/default_ranking_config:rank`, semantic-ranker models).

A reranker is an optional improvement, never a dependency: `DeadlineReranker.rerank` never
raises and never takes longer than `AI_INFRA_RERANK_TIMEOUT_SECONDS`. The call runs on a small
thread pool and the caller waits for it at most that long (token refresh, DNS, connect and a
slow body included, which httpx's per-phase timeouts alone would not bound); a call that times
out, is rate limited (429), fails (5xx, connection) or is refused (4xx) yields an outcome without
a ranking, and the caller serves its own order. There are no retries: a retry would not fit the
budget. A 429 pauses reranking for its `Retry-After` (at most `AI_INFRA_MODEL_RETRY_MAX_SECONDS`,
1 s when absent) through the shared `BackoffGate`, so a rate-limited ranker is not hammered by
every query; calls in the pause fall back at once (`backing_off`).
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from common.inference.rerankers.base import RankedRecord, Reranker, RerankRecord
from common.inference.retry import BackoffGate, ModelRequestError, classify
from common.platform.config import RerankProvider, Settings, get_settings

# Outcome statuses: `reranked`, or why the caller's order is served instead.
RERANKED = "reranked"
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
REFUSED = "refused"
BACKING_OFF = "backing_off"
DEFAULT_PAUSE_SECONDS = 1.0  # after a 429 without Retry-After

__all__ = [
    "DeadlineReranker",
    "RankedRecord",
    "RerankOutcome",
    "RerankRecord",
    "Reranker",
    "build_reranker",
    "get_reranker",
]


@dataclass(frozen=True)
class RerankOutcome:
    """What one reranking attempt gave: `ranked` (best first) or None with the reason."""

    status: str
    ranked: list[RankedRecord] | None
    elapsed_ms: float
    detail: str = ""

    @property
    def fell_back(self) -> bool:
        return self.ranked is None


class DeadlineReranker:
    """A `Reranker` under a deadline: see the module docstring."""

    def __init__(
        self,
        reranker: Reranker,
        *,
        timeout_seconds: float,
        max_pause_seconds: float = 60.0,
        workers: int = 8,
    ) -> None:
        self.reranker = reranker
        self.model_name = reranker.model_name
        self.timeout_seconds = timeout_seconds
        self._max_pause = max_pause_seconds
        self._gate = BackoffGate()
        # Threads start on demand; a call that timed out keeps its thread until its own HTTP
        # timeout ends it, and later calls queue behind such threads within their own deadline.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="rerank"
        )

    def rerank(self, query: str, records: Sequence[RerankRecord], *, top_n: int) -> RerankOutcome:
        start = time.perf_counter()

        def outcome(
            status: str, ranked: list[RankedRecord] | None = None, detail: str = ""
        ) -> RerankOutcome:
            return RerankOutcome(status, ranked, (time.perf_counter() - start) * 1000, detail)

        if not records:
            return outcome(RERANKED, [])
        pause = self._gate.remaining()
        if pause > 0:
            return outcome(BACKING_OFF, detail=f"rate limited, {pause:.1f} s of pause left")
        future = self._pool.submit(self.reranker.rank, query, records, top_n=top_n)
        try:
            return outcome(RERANKED, future.result(timeout=self.timeout_seconds))
        except concurrent.futures.TimeoutError:
            future.cancel()  # still queued: never sent
            return outcome(TIMEOUT, detail=f"no answer within {self.timeout_seconds:g} s")
        except ModelRequestError as error:
            return outcome(REFUSED, detail=str(error)[:300])
        except Exception as error:
            if _timed_out(error):
                detail = f"no answer within {self.timeout_seconds:g} s ({type(error).__name__})"
                return outcome(TIMEOUT, detail=detail)
            failure = classify(error)
            if failure is None:
                return outcome(UNAVAILABLE, detail=f"{type(error).__name__}: {error}"[:300])
            if failure.status == 429:
                wait = DEFAULT_PAUSE_SECONDS if failure.retry_after is None else failure.retry_after
                self._gate.hold(min(wait, self._max_pause))
                return outcome(RATE_LIMITED, detail=failure.detail[:300])
            if failure.status is not None and not failure.retryable:
                return outcome(REFUSED, detail=f"HTTP {failure.status}: {failure.detail[:300]}")
            cause = f"HTTP {failure.status}" if failure.status else failure.detail
            return outcome(UNAVAILABLE, detail=cause[:300])


def _timed_out(error: BaseException) -> bool:
    """The ranker's own HTTP timeout (the same budget) may fire a moment before the deadline:
    a timeout all the same, not an unavailable ranker."""
    httpx = sys.modules.get("httpx")  # loaded by any HTTP ranker; never imported here
    return isinstance(error, TimeoutError) or (
        httpx is not None and isinstance(error, httpx.TimeoutException)
    )


_BUILD_LOCK = threading.Lock()


def get_reranker(settings: Settings | None = None) -> DeadlineReranker | None:
    """The reranker for `settings` (default: the process settings), built once per process;
    None when reranking is off."""
    settings = settings or get_settings()
    if settings.rerank_provider is RerankProvider.NONE:
        return None
    with _BUILD_LOCK:  # concurrent first calls must not build two
        return _cached_reranker(settings)


@lru_cache(maxsize=8)
def _cached_reranker(settings: Settings) -> DeadlineReranker:
    return build_reranker(settings)


def build_reranker(settings: Settings, *, credentials: Any = None) -> DeadlineReranker:
    """A new reranker (uncached): tests pass stand-in credentials."""
    from common.inference.rerankers.vertex_rank import VertexRanker

    return DeadlineReranker(
        VertexRanker(settings, credentials=credentials),
        timeout_seconds=settings.rerank_timeout_seconds,
        max_pause_seconds=settings.model_retry_max_seconds,
    )
