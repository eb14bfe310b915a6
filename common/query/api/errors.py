"""Every failure becomes `{"error": {"code", "message"}}` with the right status; no internals."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from common.platform.errors import (
    ApiError,
    ModelRateLimitedError,
    ModelUnavailableError,
    TransientError,
)

logger = logging.getLogger(__name__)

# Seconds a client should wait after a 429 when the model did not say.
DEFAULT_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class ErrorReply:
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def reply_for(error: BaseException) -> ErrorReply:
    """The reply for an exception; unexpected ones are logged with their traceback here."""
    from common.platform.db import SchemaMismatchError
    from common.query.api.routing import MethodNotAllowedError

    if isinstance(error, MethodNotAllowedError):
        return ErrorReply(405, error.code, error.message, {"Allow": ", ".join(error.allowed)})
    if isinstance(error, ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
        return ErrorReply(error.status, error.code, error.message, headers)
    if isinstance(error, ModelRateLimitedError):
        retry_after = error.retry_after_seconds or DEFAULT_RETRY_AFTER_SECONDS
        logger.warning("model rate limited", extra={"error_type": type(error).__name__})
        return ErrorReply(
            429,
            "rate_limited",
            "the model is rate limited; retry later",
            {"Retry-After": str(max(1, math.ceil(retry_after)))},
        )
    if isinstance(error, ModelUnavailableError):
        logger.warning("model unavailable", extra={"error_type": type(error).__name__})
        return ErrorReply(503, "model_unavailable", "the model is unavailable; retry later")
    if isinstance(error, SchemaMismatchError):
        logger.error("schema mismatch: %s", error)
        return ErrorReply(503, "misconfigured", "the service is misconfigured")
    if isinstance(error, TransientError) or _is_database_outage(error):
        logger.warning(
            "dependency unavailable", exc_info=error, extra={"error_type": type(error).__name__}
        )
        return ErrorReply(503, "unavailable", "a dependency is unavailable; retry later")
    logger.error("unexpected error", exc_info=error)
    return ErrorReply(500, "internal", "internal error")


def _is_database_outage(error: BaseException) -> bool:
    """Connection-level database failures (not SQL bugs) are a 503, worth a retry."""
    from common.platform.db import is_database_unavailable

    return is_database_unavailable(error)
