"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Generated rather than hand-written, so it lists exactly the routes served and the schemas the
code validates with; `tests/test_query_openapi.py` validates it and compares it to the router.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from common.query.api.routing import Route
from common.query.filters import FILTER_SCHEMA, FILTER_SCHEMA_NAME

API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

_STATUS_TEXT = {
    400: "Malformed request (bad JSON)",
    401: "Missing, unknown or revoked API key",
    404: "Not found (or owned by another team)",
    405: "Method not allowed",
    409: "The project's chunks were embedded by another model than the configured one",
    413: "Request body too large",
    415: "Content-Type must be application/json",
    422: "A field or parameter is invalid (the message names it)",
    429: "Rate limited: the API key's requests per minute, or the model (see Retry-After)",
    500: "Internal error",
    503: "A dependency (database, model, storage) is unavailable",
}
_ALWAYS = (405, 500, 503)
_SUCCESS_TEXT = {200: "OK", 201: "Created", 202: "Accepted: the work continues in the pipeline"}
# The IETF draft's fields (draft-ietf-httpapi-ratelimit-headers), on every authenticated reply.
_RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": 'The API key\'s quota, e.g. `"per-key";q=600;w=60`.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of it and when it resets, e.g. `"per-key";r=599;t=42`.',
        "schema": {"type": "string"},
    },
}
_RETRY_AFTER = {"description": "Seconds to wait.", "schema": {"type": "string"}}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _schemas(routes: Sequence[Route]) -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ErrorResponse, "serialization")
    ]
    for route in routes:
        if route.request_model is not None:
            wanted.append((route.request_model, "validation"))
        if route.response_model is not None:
            wanted.append((route.response_model, "serialization"))
    refs, definitions = models_json_schema(wanted, ref_template=REF)
    return refs, definitions.get("$defs", {})


def _event_schema(done: dict[str, Any], refs: dict[Any, Any]) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1 has no itemSchema yet: the schema is per event)."""
    delta = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
    return {
        "type": "object",
        "description": (
            "With stream=true: `event: delta` events (data {text}), then one `event: done` whose "
            "data is the JSON response above; a failure after the first event is `event: error` "
            "with the error body."
        ),
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": ["delta", "done", "error"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [delta, done, refs[(ErrorResponse, "serialization")]]},
            },
        },
    }


def _operation(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in route.path_parameters
    ]
    for name, schema, description in route.query_parameters:
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": schema,
                "description": description,
            }
        )
    success: dict[str, Any] = {"description": _SUCCESS_TEXT[route.success_status]}
    if route.response_model is not None:
        schema = refs[(route.response_model, "serialization")]
        success["content"] = {"application/json": {"schema": schema}}
        if route.streams:
            success["content"]["text/event-stream"] = {"schema": _event_schema(schema, refs)}
    responses: dict[str, Any] = {str(route.success_status): success}
    statuses = set(route.statuses) | set(_ALWAYS)
    if route.authenticated:
        statuses.update((401, 429))
        success["headers"] = _RATE_LIMIT_HEADERS
    if route.path_parameters:
        statuses.add(404)
    error_schema = refs[(ErrorResponse, "serialization")]
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": error_schema}},
        }
        if status == 429:
            responses["429"]["headers"] = {**_RATE_LIMIT_HEADERS, "Retry-After": _RETRY_AFTER}
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
        "security": [{"apiKey": []}] if route.authenticated else [],
    }
    if route.request_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(route.request_model, "validation")]}},
        }
    return operation


def build_openapi(routes: Sequence[Route]) -> dict[str, Any]:
    refs, definitions = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ai-infra query API",
            "version": API_VERSION,
            "description": (
                "Grounded answers with citations over a project's documents. Every response "
                'carries X-Request-ID; every error is {"error": {"code", "message"}}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {**definitions, FILTER_SCHEMA_NAME: FILTER_SCHEMA},
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `ai-infra keys create`.",
                }
            },
        },
    }
