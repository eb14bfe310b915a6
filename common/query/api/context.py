"""Per-request state: the request id, phase timings, work deferred until after the response."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.platform.config import Settings
from common.query.rate_limit import RateLimitState
from common.query.service import Timings

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and harmless to echo and to log.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/.*)?$")


def request_id_from(header: str | None) -> str:
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def trace_from(header: str | None, gcp_project: str) -> str | None:
    """Cloud Logging's trace field from `X-Cloud-Trace-Context: TRACE_ID/SPAN;o=1`."""
    match = _TRACE.match(header or "")
    return f"projects/{gcp_project}/traces/{match.group(1)}" if match else None


@dataclass
class RequestContext:
    request_id: str
    settings: Settings
    timings: Timings = field(default_factory=Timings)
    # Fields for the one access-log line of this request (ids, counts; never secrets or text).
    log_fields: dict[str, Any] = field(default_factory=dict)
    # The caller's API key's rate-limit window, once authenticated (its headers go on the reply).
    rate_limit: RateLimitState | None = None
    # Queues a document's current file again; given by the function's entry point, because
    # the query flow may not import the ingestion flow that owns job publishing.
    reprocess: Callable[[uuid.UUID], uuid.UUID] | None = None
    _deferred: list[Callable[[], None]] = field(default_factory=list)

    def defer(self, work: Callable[[], None]) -> None:
        self._deferred.append(work)

    def run_deferred(self) -> None:
        """Run after the response was sent; a failure is logged, never raised into the server."""
        for work in self._deferred:
            try:
                work()
            except Exception:
                logger.exception("deferred work failed", extra={"request_id": self.request_id})
        self._deferred.clear()

    def server_timing(self) -> str:
        phases = dict(self.timings.phases)
        phases["total"] = (self.timings.elapsed_ms()) * 1.0
        return ", ".join(f"{name};dur={value:.1f}" for name, value in phases.items())


def parse_server_timing(header: str) -> dict[str, float]:
    """Phase -> milliseconds from a Server-Timing header as `server_timing` writes it
    (`embed;dur=12.3, sql;dur=4.5`): what benches and tests read of the server's own phases."""
    phases = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            phases[name] = float(duration)
    return phases
