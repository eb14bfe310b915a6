"""Reading a JSON body safely: size (413), media type (415), syntax (400), fields (422)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from common.platform.errors import ApiError
from common.query.schemas import UNSTORABLE_MESSAGE, is_storable

if TYPE_CHECKING:
    import flask

_READ_SIZE = 64 * 1024


def check_declared_size(request: flask.Request, max_bytes: int) -> None:
    """Refuse a declared oversize body before reading it (and before any database work)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")


def read_body(request: flask.Request, max_bytes: int) -> bytes:
    """The raw body, never more than max_bytes read (chunked bodies have no declared size)."""
    check_declared_size(request, max_bytes)
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_SIZE, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
    return b"".join(chunks)


def require_json(request: flask.Request) -> None:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")


def parse_model[M: BaseModel](model: type[M], raw: bytes) -> M:
    """Validate a JSON body; malformed JSON is a 400, a bad field a 422 that names it."""
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        if any(p["type"] == "json_invalid" for p in problems):
            unstorable = _unstorable_strings(raw)
            if unstorable:
                raise ApiError(422, "validation_error", "; ".join(unstorable)) from None
            raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
        raise ApiError(422, "validation_error", describe(error)) from None


def _unstorable_strings(raw: bytes) -> list[str]:
    """Problems of a body the strict parser refused for lone surrogate escapes (`"\\ud800"`).

    Such a body is valid JSON syntax, so the client deserves a 422 naming the field rather
    than a 400; anything Python's parser refuses too stays a 400 (an empty list here).
    """
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return []
    found: set[str] = set()
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:  # iterative: a deeply nested body must not exhaust the stack
        path, value = pending.pop()
        if isinstance(value, str) and not is_storable(value):
            found.add(f"{path or 'body'}: {UNSTORABLE_MESSAGE}")
        elif isinstance(value, list):
            pending.extend((_join(path, str(i)), item) for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                if is_storable(key):
                    pending.append((_join(path, key), item))
                else:
                    found.add(f"{path or 'body'}: field names {UNSTORABLE_MESSAGE}")
    return sorted(found)


def _join(path: str, part: str) -> str:
    return f"{path}.{_printable(part)}" if path else _printable(part)


def _printable(part: str) -> str:
    """A field name as it may appear in a message: control characters escaped."""
    return part if part.isprintable() else part.encode("unicode_escape").decode("ascii")


def describe(error: ValidationError) -> str:
    """`field: problem; other_field: problem` (values are never echoed: they may be secret)."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        location = ".".join(_printable(str(part)) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "model_type":
            parts.append("body: must be a JSON object")
        elif location:
            parts.append(f"{location}: {message}")
        else:
            parts.append(message)
    return "; ".join(parts)
