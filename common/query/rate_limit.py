"""Requests per minute per API key, counted atomically in Postgres by every function instance.

Each key has a limit: its own `api_keys.requests_per_minute`, else its team's
`teams.requests_per_minute`, else `AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE`. Requests are counted
in a fixed one-minute window that starts with the key's first request after the previous window
ended (so the windows of different keys do not all reset on the same second). The count lives in
one `api_key_rate_windows` row per key, moved forward by ONE `INSERT ... ON CONFLICT DO UPDATE
... RETURNING` that runs inside the authentication statement (`common.query.auth`): no extra
round trip, and the row lock serialises concurrent requests of one key across any number of
instances, so no more than the limit ever pass in a window. A refused request's count rolls back
with its transaction, so the window holds exactly the requests let through. The table is
UNLOGGED: counting costs no WAL flush, and a crash only forgets the current minute.

Responses carry the IETF draft's fields (draft-ietf-httpapi-ratelimit-headers-08 and later):
`RateLimit-Policy: "per-key";q=LIMIT;w=60` and `RateLimit: "per-key";r=REMAINING;t=SECONDS`,
plus `Retry-After` on a 429.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from common.platform.errors import ApiError

WINDOW_SECONDS = 60
POLICY = "per-key"

# A CTE for the authentication statement: `key` must yield (id, rpm). Parameter: :window.
COUNT_REQUEST_CTE = """
    counted AS (
        INSERT INTO api_key_rate_windows AS w (api_key_id, window_start, requests)
        SELECT id, now(), 1 FROM key
        ON CONFLICT (api_key_id) DO UPDATE SET
            window_start = CASE WHEN w.window_start > now() - make_interval(secs => :window)
                                THEN w.window_start ELSE now() END,
            requests = CASE WHEN w.window_start > now() - make_interval(secs => :window)
                            THEN w.requests + 1 ELSE 1 END
        RETURNING window_start, requests, now() AS counted_at
    )
"""


@dataclass(frozen=True)
class RateLimitState:
    """One key's window after counting this request."""

    limit: int
    used: int  # requests counted in this window, this one included
    reset_seconds: int  # until the window ends (at least 1)

    @property
    def allowed(self) -> bool:
        return self.used <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": f'"{POLICY}";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={self.reset_seconds}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


def window_state(
    limit: int, used: int, window_start: datetime, counted_at: datetime
) -> RateLimitState:
    """The state from the counting row (`counted_at` is the database's clock)."""
    elapsed = (counted_at - window_start).total_seconds()
    reset = min(WINDOW_SECONDS, max(1, math.ceil(WINDOW_SECONDS - elapsed)))
    return RateLimitState(limit=limit, used=used, reset_seconds=reset)


class RateLimitExceededError(ApiError):
    """429: the key used its requests of this window; `state` gives the response headers."""

    def __init__(self, state: RateLimitState) -> None:
        super().__init__(
            429,
            "rate_limit_exceeded",
            f"this API key is limited to {state.limit} requests per minute; "
            f"retry in {state.reset_seconds} s",
        )
        self.state = state
