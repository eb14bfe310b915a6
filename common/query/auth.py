"""API keys: generated with a recognisable prefix, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.platform.errors import ApiError

KEY_PREFIX = "aik_"
# last_used_at is refreshed at most this often per key, so a busy key does not rewrite its row
# (and its WAL) on every request.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class Principal:
    """Who is calling: a team, through one API key (None for in-process callers like the CLI)."""

    team_id: uuid.UUID
    api_key_id: uuid.UUID | None


def generate_api_key() -> str:
    """A new raw key (shown once to the operator, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


# One round trip: find the active key by its unique hash and, in the same statement, touch
# last_used_at when it is stale (a data-modifying CTE runs even though nothing reads it).
_AUTHENTICATE = text(
    """
    WITH key AS (
        SELECT id, team_id, last_used_at FROM api_keys
        WHERE key_hash = :key_hash AND status = 'active'
    ), touched AS (
        UPDATE api_keys SET last_used_at = now() FROM key
        WHERE api_keys.id = key.id
          AND (key.last_used_at IS NULL
               OR key.last_used_at < now() - make_interval(secs => :resolution))
    )
    SELECT id, team_id FROM key
    """
)


def authenticate(session: Session, raw_key: str) -> Principal:
    """The principal of an active key; unknown, revoked and empty keys are all the same 401.

    The lookup is by the SHA-256 of the key through a unique index, so no secret is compared
    byte by byte in Python (nothing for a timing attack to measure beyond the index lookup).
    """
    if not raw_key:
        raise ApiError(401, "unauthenticated", "missing or invalid API key")
    row = session.execute(
        _AUTHENTICATE,
        {"key_hash": hash_api_key(raw_key), "resolution": LAST_USED_RESOLUTION_SECONDS},
    ).first()
    if row is None:
        raise ApiError(401, "unauthenticated", "missing or invalid API key")
    return Principal(team_id=row.team_id, api_key_id=row.id)


def authorize_project(session: Session, team_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """404 unless the project exists AND belongs to this team: never a hint that it exists."""
    owned = session.execute(
        text("SELECT 1 FROM projects WHERE id = :project_id AND team_id = :team_id"),
        {"project_id": project_id, "team_id": team_id},
    ).first()
    if owned is None:
        raise ApiError(404, "not_found", "project not found")
