"""The small error hierarchy that decides retry versus record-and-acknowledge versus HTTP status."""

from __future__ import annotations


class PermanentIngestionError(Exception):
    """Bad input that can never succeed (corrupt, encrypted, empty, unsupported, too large).

    The job is marked failed with this message and the event is acknowledged: no retry storm.
    The message is shown to users, so it must be readable and must not contain document text.
    """


class TransientError(Exception):
    """A dependency failed in a way that may heal (database, model quota, network): retry."""


class ApiError(Exception):
    """An HTTP error with a stable machine-readable code and a human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ModelRateLimitedError(TransientError):
    """The model endpoint kept answering 429 after our retries (the query API maps it to 429).

    `retry_after_seconds` is the endpoint's own last Retry-After, passed on to our callers.
    """

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ModelUnavailableError(TransientError):
    """The model endpoint kept failing (5xx, network) after our retries."""
