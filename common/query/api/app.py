"""The query function's HTTP surface: the route table and the one `handle(request)` entry.

Every response carries `X-Request-ID` (the caller's when well-formed) and `Server-Timing`
(phases in ms); every failure is a JSON error (see `common.query.api.errors`). Work deferred by a
handler (the query log) runs after the response has been sent, in the same process.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import flask
from werkzeug.exceptions import HTTPException, NotFound

from common.platform.config import get_settings
from common.platform.log import request_id_var, trace_var
from common.query.api import handlers, uploads
from common.query.api.context import REQUEST_ID_HEADER, RequestContext, request_id_from, trace_from
from common.query.api.errors import ErrorReply, reply_for
from common.query.api.openapi import build_openapi
from common.query.api.responses import error_response, json_response
from common.query.api.routing import Route, Router
from common.query.api.usage import QUERY_PARAMETERS as USAGE_QUERY
from common.query.api.usage import usage
from common.query.documents import DeletedDocument, DocumentPage, DocumentView
from common.query.intake import SourceAccepted, SourceRequest, UploadRequest, UploadTicket
from common.query.projects import ProjectList
from common.query.schemas import QueryRequest, QueryResult
from common.query.usage import UsageReport

logger = logging.getLogger("common.query.api.access")

_DOCUMENT_QUERY: tuple[tuple[str, dict[str, object], str], ...] = (
    ("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}, "Page size."),
    (
        "cursor",
        {"type": "string", "minLength": 1, "maxLength": 512, "pattern": "^[^\\u0000]*$"},
        "The next_cursor of the previous page.",
    ),
    (
        "status",
        {"type": "string", "enum": ["uploaded", "processing", "ready", "failed"]},
        "Only documents in this status.",
    ),
    (
        "filter",
        {"type": "string", "minLength": 2, "maxLength": 8192, "pattern": "^[^\\u0000]*$"},
        "Only documents whose attributes match: a filter as JSON text (the query's `filter`).",
    ),
)


def _openapi_document(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    """Built from the route table below, so the document cannot drift from what is served."""
    return json_response(build_openapi(tuple(ROUTES)))


ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/projects",
        handlers.list_projects,
        "listProjects",
        "The calling team's projects with their documents counted by status (by name)",
        response_model=ProjectList,
        statuses=(422,),
    ),
    Route(
        "POST",
        "/v1/projects/{project_id}/query",
        handlers.query,
        "query",
        "Answer a question with citations (or retrieve chunks) over a project's documents",
        request_model=QueryRequest,
        response_model=QueryResult,
        statuses=(400, 409, 413, 415, 422, 429),
        streams=True,
    ),
    Route(
        "GET",
        "/v1/projects/{project_id}/documents",
        handlers.list_documents,
        "listDocuments",
        "List a project's documents with status and last ingestion job (newest first)",
        response_model=DocumentPage,
        statuses=(422,),
        query_parameters=_DOCUMENT_QUERY,
    ),
    Route(
        "POST",
        "/v1/projects/{project_id}/uploads",
        uploads.create_upload,
        "createUpload",
        "A signed URL to PUT one file into the project (the upload is then ingested)",
        request_model=UploadRequest,
        response_model=UploadTicket,
        statuses=(400, 413, 415, 422),
        success_status=201,
    ),
    Route(
        "POST",
        "/v1/projects/{project_id}/documents",
        uploads.add_document,
        "addDocument",
        "Add a document from a URL (fetched by the service) or from text; it is then ingested",
        request_model=SourceRequest,
        response_model=SourceAccepted,
        statuses=(400, 413, 415, 422),
        success_status=202,
    ),
    Route(
        "GET",
        "/v1/documents/{document_id}",
        handlers.get_document,
        "getDocument",
        "One document with its status and last ingestion job",
        response_model=DocumentView,
    ),
    Route(
        "PATCH",
        "/v1/documents/{document_id}",
        handlers.patch_document,
        "patchDocument",
        "Change a document's attributes (a JSON merge patch; nothing is re-embedded)",
        request_model=handlers.MetadataPatch,
        response_model=DocumentView,
        statuses=(400, 413, 415, 422),
    ),
    Route(
        "DELETE",
        "/v1/documents/{document_id}",
        handlers.delete_document,
        "deleteDocument",
        "Delete a document: its stored object, its chunks and its jobs",
        response_model=DeletedDocument,
    ),
    Route(
        "POST",
        "/v1/documents/{document_id}/reprocess",
        handlers.reprocess_document,
        "reprocessDocument",
        "Queue a document's current file for ingestion again (after a failure, or on demand)",
        response_model=handlers.ReprocessAccepted,
        success_status=202,
    ),
    Route(
        "GET",
        "/v1/usage",
        usage,
        "usage",
        "The calling team's requests, tokens, documents and chunks per UTC day and in total",
        response_model=UsageReport,
        statuses=(422,),
        query_parameters=USAGE_QUERY,
    ),
    Route(
        "GET",
        "/healthz",
        handlers.healthz,
        "health",
        "Database reachable, schema at head, embedding dimension matches",
        authenticated=False,
        response_model=handlers.Health,
    ),
    # The same check where Cloud Run can reach it: Cloud Run reserves URL paths ending in "z"
    # (its front end answers /healthz itself), so probes and monitors in the cloud use this.
    Route(
        "GET",
        "/v1/health",
        handlers.healthz,
        "healthV1",
        "Database reachable, schema at head, embedding dimension matches (Cloud Run-safe path)",
        authenticated=False,
        response_model=handlers.Health,
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        _openapi_document,
        "openapi",
        "This document",
        authenticated=False,
    ),
]

ROUTER = Router(ROUTES)


def handle(
    request: flask.Request, *, reprocess: Callable[[uuid.UUID], uuid.UUID] | None = None
) -> flask.Response:
    """Route one request and turn any outcome into a response with the request id.

    `reprocess` queues a document again: the function's entry point passes the ingestion
    flow's, which this flow may not import. (The entry point serves `/console` itself.)
    """
    settings = get_settings()
    ctx = RequestContext(
        request_id_from(request.headers.get(REQUEST_ID_HEADER)), settings, reprocess=reprocess
    )
    id_token = request_id_var.set(ctx.request_id)
    trace_token = trace_var.set(
        trace_from(request.headers.get("X-Cloud-Trace-Context"), settings.gcp_project)
    )
    operation = None
    try:
        route, params = ROUTER.match(request.method, request.path)
        operation = route.operation_id
        if route.authenticated:
            from common.platform.runtime import ensure_schema_matches

            ensure_schema_matches()
        response = route.handler(ctx, request, params)
    except Exception as error:
        response = error_response(reply_for(error))
    try:
        response.headers[REQUEST_ID_HEADER] = ctx.request_id
        if ctx.rate_limit is not None:
            response.headers.update(ctx.rate_limit.headers())
        if not response.is_streamed:
            response.headers["Server-Timing"] = ctx.server_timing()
        response.call_on_close(ctx.run_deferred)
        _access_log(request, response, ctx, operation)
    finally:
        request_id_var.reset(id_token)
        trace_var.reset(trace_token)
    return response


def framework_error(error: HTTPException) -> flask.Response:
    """An error the serving framework raises before `handle` runs, as our JSON error.

    functions-framework's catch-all route cannot match some paths (one holding a newline) and
    answers /robots.txt itself; register this with `functions_framework.errorhandler`.
    """
    if isinstance(error, NotFound):
        return handle(flask.request)  # the router's own 404, with request id and access log
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    response = error_response(ErrorReply(status, code, error.name or "error"))
    response.headers[REQUEST_ID_HEADER] = request_id_from(
        flask.request.headers.get(REQUEST_ID_HEADER)
    )
    return response


def _access_log(
    request: flask.Request, response: flask.Response, ctx: RequestContext, operation: str | None
) -> None:
    latency = time.perf_counter() - ctx.timings.started
    logger.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "httpRequest": {
                "requestMethod": request.method,
                "requestUrl": request.path,
                "status": response.status_code,
                "latency": f"{latency:.4f}s",
            },
            "operation": operation,
            "phases_ms": {k: round(v, 2) for k, v in ctx.timings.phases.items()},
            **ctx.log_fields,
        },
    )
