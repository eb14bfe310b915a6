"""One retry policy for every cloud model call (Vertex AI embeddings, Gemini, OpenAI-compatible).

429, 408, 5xx and connection failures are retried with exponential backoff and full jitter
(`AI_INFRA_MODEL_RETRY_BASE_SECONDS` doubling up to `AI_INFRA_MODEL_RETRY_MAX_SECONDS`), or after
exactly the server's `Retry-After` (capped at the maximum) when it sends one; after
`AI_INFRA_MODEL_MAX_RETRIES` retries the caller gets `ModelRateLimitedError` (still 429) or
`ModelUnavailableError` (anything else), both `TransientError`s, so ingestion redelivers and the
query API answers 429/503. Other 4xx mean our request is wrong: `ModelRequestError` at once.
The whole batch is retried, never item by item, so a rate-limited ingest keeps its batching.
Concurrent calls share a `BackoffGate`: a 429 seen by one pauses every call of the same client
until the wait is over, so parallel batches back off together instead of hammering the quota.
"""

from __future__ import annotations

import email.utils
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.platform.config import Settings
from common.platform.errors import ModelRateLimitedError, ModelUnavailableError

logger = logging.getLogger(__name__)

# Seconds a single model request may take before it counts as a (retryable) failure.
REQUEST_TIMEOUT_SECONDS = 120.0
_RETRYABLE_4XX = frozenset({408, 429})


class ModelRequestError(RuntimeError):
    """The model endpoint refused the request itself (400, 401, 403, 404...): retrying cannot help.

    Not a TransientError: a bad request, bad credentials or an unknown model is a configuration or
    code problem that must surface, not loop through Pub/Sub redeliveries.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Failure:
    """A failed model call as the retry loop sees it: status None means the connection failed."""

    status: int | None
    retry_after: float | None
    detail: str

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in _RETRYABLE_4XX or self.status >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or malformed."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    if isinstance(headers, Mapping) or hasattr(headers, "get"):
        value = headers.get(name) or headers.get(name.title())
        return str(value) if value is not None else None
    return None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of every HTTP stack our SDKs may use (imported lazily)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        found.append(module.TransportError)
    try:
        from google.auth import exceptions as auth_exceptions

        found.append(auth_exceptions.TransportError)
    except ImportError:  # pragma: no cover - google-auth is a dependency
        pass
    try:
        import requests

        found.append(requests.ConnectionError)
        found.append(requests.Timeout)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def classify(error: BaseException) -> Failure | None:
    """Map an SDK or HTTP error to a Failure; None for anything that is not a model-call failure."""
    # google.genai is imported only for its own errors: its import takes a second or more, which
    # a query classifying a reranker's httpx error must not pay within its deadline.
    genai_errors = sys.modules.get("google.genai.errors")
    if genai_errors is not None and isinstance(error, genai_errors.APIError):
        headers = getattr(getattr(error, "response", None), "headers", None)
        detail = str(error.message or error.status or "")
        return Failure(error.code, parse_retry_after(_header(headers, "retry-after")), detail)
    import httpx

    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        try:
            detail = response.text[:300]
        except httpx.ResponseNotRead:
            detail = response.reason_phrase
        return Failure(
            response.status_code,
            parse_retry_after(response.headers.get("retry-after")),
            detail,
        )
    if isinstance(error, _transport_errors()):
        return Failure(None, None, f"{type(error).__name__}: {error}")
    return None


class BackoffGate:
    """One pause shared by every in-flight call of a client: no thundering herd after a 429."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def hold(self, seconds: float) -> float:
        """Nobody sends for `seconds` from now (a longer hold wins); returns this hold's end."""
        with self._lock:
            until = self._clock() + seconds
            self._resume_at = max(self._resume_at, until)
            return until

    def remaining(self) -> float:
        """Seconds left of the current pause (0 when callers may send): for callers that skip
        a call instead of waiting, like the reranker."""
        with self._lock:
            return max(0.0, self._resume_at - self._clock())

    def wait(self, sleep: Callable[[float], None], *, slept_until: float = 0.0) -> None:
        """Sleep out the pause others set; `slept_until`: the end of the wait the caller just
        slept itself, so only a longer pause set meanwhile by another call adds to it."""
        with self._lock:
            extra = self._resume_at - max(slept_until, self._clock())
        if extra > 0:
            sleep(extra)


class VirtualTime:
    """A clock that moves only when its `sleep` is called: an injected (recording) sleep and a
    backoff gate then agree on what time it is, as a real clock and real sleeps do."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._sleep = sleep
        self._lock = threading.Lock()
        self._now = 0.0

    def clock(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)
        with self._lock:
            self._now += seconds


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters plus an injectable `sleep`, so tests record waits instead of waiting."""

    max_retries: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default=random.random)

    @classmethod
    def from_settings(
        cls, settings: Settings, sleep: Callable[[float], None] | None = None
    ) -> RetryPolicy:
        return cls(
            max_retries=settings.model_max_retries,
            base_seconds=settings.model_retry_base_seconds,
            max_seconds=settings.model_retry_max_seconds,
            sleep=sleep or time.sleep,
        )

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number `retry` (0-based): Retry-After, else full jitter."""
        if retry_after is not None:
            return min(retry_after, self.max_seconds)
        ceiling = min(self.max_seconds, self.base_seconds * 2.0**retry)
        return float(self.jitter()) * ceiling

    def call[T](
        self, operation: Callable[[], T], *, what: str, gate: BackoffGate | None = None
    ) -> T:
        """Run `operation`, retrying retryable model failures; see the module docstring.

        With a `gate`, every call sharing it waits out the longest pause any of them was told.
        """
        retry = 0
        slept_until = 0.0
        while True:
            if gate is not None:
                gate.wait(self.sleep, slept_until=slept_until)
            try:
                return operation()
            except Exception as error:
                failure = classify(error)
                if failure is None:
                    raise
                if not failure.retryable:
                    assert failure.status is not None
                    raise ModelRequestError(
                        failure.status,
                        f"{what} was refused with HTTP {failure.status}: {failure.detail[:300]}",
                    ) from error
                if retry >= self.max_retries:
                    raise give_up(failure, what=what, attempts=retry + 1) from error
                wait = self.delay(retry, failure.retry_after)
                logger.warning(
                    "model call failed, retrying",
                    extra={
                        "model_call": what,
                        "status": failure.status,
                        "retry": retry + 1,
                        "wait_seconds": round(wait, 3),
                    },
                )
                if gate is not None:
                    slept_until = gate.hold(wait)  # every other caller waits it out too
                self.sleep(wait)
                retry += 1


def give_up(failure: Failure, *, what: str, attempts: int) -> Exception:
    """The error for a call that failed for good: rate limited or unavailable."""
    if failure.status == 429:
        return ModelRateLimitedError(
            f"{what} still rate limited (HTTP 429) after {attempts} attempts",
            retry_after_seconds=failure.retry_after,
        )
    cause = f"HTTP {failure.status}" if failure.status else failure.detail[:200]
    return ModelUnavailableError(f"{what} unavailable after {attempts} attempts ({cause})")


def shared_backoff(
    settings: Settings, sleep: Callable[[float], None] | None = None
) -> tuple[RetryPolicy, BackoffGate]:
    """A retry policy and the gate its concurrent calls share. With a recording `sleep` (tests)
    the gate keeps the same virtual time as the recorded waits."""
    if sleep is None:
        return RetryPolicy.from_settings(settings), BackoffGate()
    time = VirtualTime(sleep)
    return RetryPolicy.from_settings(settings, sleep=time.sleep), BackoffGate(clock=time.clock)
