"""API keys: generated with a recognisable prefix, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "aik_"


def generate_api_key() -> str:
    """A new raw key (shown once to the operator, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()
