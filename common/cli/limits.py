"""Requests-per-minute values as operators type them for `teams limit` and `keys limit`."""

from __future__ import annotations

from common.cli.context import CliError

# The same ceiling as AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE.
MAX_REQUESTS_PER_MINUTE = 1_000_000


def parse_limit(value: str, *, inherit: str) -> int | None:
    """A limit in 1..MAX, or None for the word `inherit` (the next level's limit applies)."""
    if value.strip().lower() == inherit:
        return None
    try:
        number = int(value)
    except ValueError:
        raise CliError(
            f"requests per minute must be a whole number or '{inherit}', got {value!r}"
        ) from None
    if not 1 <= number <= MAX_REQUESTS_PER_MINUTE:
        raise CliError(f"requests per minute must be between 1 and {MAX_REQUESTS_PER_MINUTE}")
    return number
