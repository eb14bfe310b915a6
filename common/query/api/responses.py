"""Building Flask responses: JSON bodies, errors, and server-sent events."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import flask

from common.query.api.errors import ErrorReply


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> flask.Response:
    return flask.Response(
        json.dumps(payload, separators=(",", ":"), default=str),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def error_response(reply: ErrorReply) -> flask.Response:
    return json_response(reply.body(), reply.status, reply.headers)


def sse_event(event: str, data: Any) -> str:
    """One server-sent event; JSON data never contains a raw newline, so one data line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def sse_response(events: Iterable[str]) -> flask.Response:
    return flask.Response(
        events,
        status=200,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
