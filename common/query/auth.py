"""API keys: generated with a recognisable prefix, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.platform.errors import ApiError
from common.query.rate_limit import (
    COUNT_REQUEST_CTE,
    WINDOW_SECONDS,
    RateLimitExceededError,
    RateLimitState,
    window_state,
)

KEY_PREFIX = "aik_"
# last_used_at is refreshed at most this often per key, so a busy key does not rewrite its row
# (and its WAL) on every request.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class Principal:
    """Who is calling: a team, through one API key (None for in-process callers like the CLI)."""

    team_id: uuid.UUID
    api_key_id: uuid.UUID | None
    # This request's place in the key's rate-limit window (None for in-process callers).
    rate_limit: RateLimitState | None = None


def generate_api_key() -> str:
    """A new raw key (shown once to the operator, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


# One round trip: find the active key by its unique hash with its requests-per-minute limit
# and, in the same statement, touch last_used_at when it is stale (a data-modifying CTE runs
# even though nothing reads it) and count the request in the key's rate-limit window.
_AUTHENTICATE = text(
    f"""
    WITH key AS (
        SELECT k.id, k.team_id, k.last_used_at,
               COALESCE(k.requests_per_minute, t.requests_per_minute, :default_rpm) AS rpm
        FROM api_keys k JOIN teams t ON t.id = k.team_id
        WHERE k.key_hash = :key_hash AND k.status = 'active'
    ), touched AS (
        UPDATE api_keys SET last_used_at = now() FROM key
        WHERE api_keys.id = key.id
          AND (key.last_used_at IS NULL
               OR key.last_used_at < now() - make_interval(secs => :resolution))
    ), {COUNT_REQUEST_CTE}
    SELECT key.id, key.team_id, key.rpm, counted.requests, counted.window_start,
           counted.counted_at
    FROM key, counted
    """
)


def authenticate(session: Session, raw_key: str, *, default_rpm: int) -> Principal:
    """The principal of an active key; unknown, revoked and empty keys are all the same 401.

    The request is counted against the key's limit (`common.query.rate_limit`); over it, this
    raises RateLimitExceededError (429). `default_rpm` applies when neither the key nor its team
    sets a limit.

    The lookup is by the SHA-256 of the key through a unique index, so no secret is compared
    byte by byte in Python (nothing for a timing attack to measure beyond the index lookup).
    """
    if not raw_key:
        raise ApiError(401, "unauthenticated", "missing or invalid API key")
    row = session.execute(
        _AUTHENTICATE,
        {
            "key_hash": hash_api_key(raw_key),
            "resolution": LAST_USED_RESOLUTION_SECONDS,
            "default_rpm": default_rpm,
            "window": WINDOW_SECONDS,
        },
    ).first()
    if row is None:
        raise ApiError(401, "unauthenticated", "missing or invalid API key")
    state = window_state(row.rpm, row.requests, row.window_start, row.counted_at)
    if not state.allowed:
        raise RateLimitExceededError(state)
    return Principal(team_id=row.team_id, api_key_id=row.id, rate_limit=state)


def authorize_project(session: Session, team_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """404 unless the project exists AND belongs to this team: never a hint that it exists."""
    owned = session.execute(
        text("SELECT 1 FROM projects WHERE id = :project_id AND team_id = :team_id"),
        {"project_id": project_id, "team_id": team_id},
    ).first()
    if owned is None:
        raise ApiError(404, "not_found", "project not found")
