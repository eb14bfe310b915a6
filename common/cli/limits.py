"""Limits as operators type them: requests per minute (`teams limit`, `keys limit`) and running
ingestion jobs (`teams limit-ingest`)."""

from __future__ import annotations

from common.cli.context import CliError

# The same ceilings as AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE and AI_INFRA_INGEST_CAPACITY.
MAX_REQUESTS_PER_MINUTE = 1_000_000
MAX_RUNNING_JOBS = 1000


def parse_limit(value: str, *, inherit: str) -> int | None:
    """A requests-per-minute limit in 1..MAX, or None for the word `inherit` (the next level's
    limit applies)."""
    return parse_count(
        value, inherit=inherit, what="requests per minute", most=MAX_REQUESTS_PER_MINUTE
    )


def parse_count(value: str, *, inherit: str, what: str, most: int) -> int | None:
    """A whole number in 1..most, or None for the word `inherit`."""
    if value.strip().lower() == inherit:
        return None
    try:
        number = int(value)
    except ValueError:
        raise CliError(f"{what} must be a whole number or '{inherit}', got {value!r}") from None
    if not 1 <= number <= most:
        raise CliError(f"{what} must be between 1 and {most}")
    return number
