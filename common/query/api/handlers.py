"""The route handlers: parse, authorize, call one function in `common`, shape the reply."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from sqlalchemy import text

from common.platform.attributes import CachedRegistry, attributes_schema
from common.platform.db import transaction
from common.platform.errors import ApiError
from common.platform.models import DocumentStatus
from common.query import documents
from common.query.api.body import (
    check_declared_size,
    describe,
    parse_model,
    read_body,
    require_json,
)
from common.query.api.errors import reply_for
from common.query.api.responses import json_response, sse_event, sse_response
from common.query.auth import Principal, authenticate, authorize_project
from common.query.document_metadata import patch_attributes
from common.query.filters import compile_filter, parse_filter_text
from common.query.projects import team_projects
from common.query.rate_limit import RateLimitExceededError
from common.query.schemas import QueryRequest, QueryResult, StorableText
from common.query.service import run_query, stream_query

if TYPE_CHECKING:
    import flask

    from common.query.api.context import RequestContext

logger = logging.getLogger(__name__)

_KEY_CHARS = re.compile(r"[\x21-\x7e]{1,512}")


class DocumentListParams(BaseModel):
    """Query parameters of the document listing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=documents.DEFAULT_PAGE_SIZE, ge=1, le=documents.MAX_PAGE_SIZE)
    cursor: StorableText | None = Field(default=None, min_length=1, max_length=512)
    status: DocumentStatus | None = None
    # A filter as JSON text (the query's `filter` language).
    filter: StorableText | None = Field(default=None, min_length=2, max_length=8192)


def bearer_key(request: flask.Request) -> str:
    """The key of `Authorization: Bearer KEY`; 401 for anything that cannot be a key.

    Keys are printable ASCII, so a key with any other character (NUL, a control character, a
    non-ASCII byte) is refused here, never hashed or looked up.
    """
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or not _KEY_CHARS.fullmatch(key):
        raise ApiError(401, "unauthenticated", "missing or invalid API key")
    return key


def principal_of(ctx: RequestContext, request: flask.Request) -> Principal:
    key = bearer_key(request)
    mark = time.perf_counter()
    try:
        with transaction() as session:
            principal = authenticate(
                session, key, default_rpm=ctx.settings.default_requests_per_minute
            )
    except RateLimitExceededError as refused:
        ctx.rate_limit = refused.state
        raise
    ctx.timings.add("sql", mark)
    ctx.rate_limit = principal.rate_limit
    ctx.log_fields["team_id"] = str(principal.team_id)
    ctx.log_fields["api_key_id"] = str(principal.api_key_id)
    return principal


def project_json_request[M: BaseModel](
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID], model: type[M]
) -> tuple[uuid.UUID, Principal, M]:
    """A JSON POST to a project route: declared size (413 before auth), key, content type, body."""
    project_id = params["project_id"]
    ctx.log_fields["project_id"] = str(project_id)
    check_declared_size(request, ctx.settings.max_request_bytes)
    principal = principal_of(ctx, request)
    require_json(request)
    body = parse_model(model, read_body(request, ctx.settings.max_request_bytes))
    return project_id, principal, body


def query(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    project_id, principal, body = project_json_request(ctx, request, params, QueryRequest)
    ctx.log_fields.update(mode=body.mode, stream=body.stream, top_k=body.top_k)
    if body.stream:
        events = stream_query(
            principal, project_id, body, ctx.request_id, settings=ctx.settings, timings=ctx.timings
        )
        first = next(events)  # runs retrieval and the first model call: errors are a status
        return sse_response(_sse(ctx, first, events))
    result = run_query(
        principal,
        project_id,
        body,
        ctx.request_id,
        settings=ctx.settings,
        timings=ctx.timings,
        defer=ctx.defer,
    )
    ctx.log_fields["citations"] = len(result.citations)
    return json_response(result.to_json())


def _sse(
    ctx: RequestContext, first: str | QueryResult, rest: Iterator[str | QueryResult]
) -> Iterator[str]:
    """`delta` events, then `done` (the full result); a failure after the first byte is `error`."""
    item = first
    try:
        while True:
            if isinstance(item, QueryResult):
                yield sse_event("done", item.to_json())
            else:
                yield sse_event("delta", {"text": item})
            item = next(rest)
    except StopIteration:
        return
    except Exception as error:  # the status line is gone: report in-band, like the JSON path
        reply = reply_for(error)
        body = reply.body()
        body["error"]["request_id"] = ctx.request_id
        yield sse_event("error", body)


def list_documents(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    project_id = params["project_id"]
    ctx.log_fields["project_id"] = str(project_id)
    principal = principal_of(ctx, request)
    try:
        query_params = DocumentListParams.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise ApiError(422, "validation_error", describe(error)) from None
    with transaction() as session:
        authorize_project(session, principal.team_id, project_id)
        document_filter = None
        if query_params.filter is not None:
            document_filter = compile_filter(
                parse_filter_text(query_params.filter), CachedRegistry(session, project_id)
            )
        page = documents.list_documents(
            session,
            principal.team_id,
            project_id,
            limit=query_params.limit,
            cursor=query_params.cursor,
            status=query_params.status,
            document_filter=document_filter,
        )
    ctx.log_fields["documents"] = len(page.documents)
    return json_response(page.model_dump(mode="json"))


def get_document(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    principal = principal_of(ctx, request)
    ctx.log_fields["document_id"] = str(params["document_id"])
    with transaction() as session:
        view = documents.get_document(session, principal.team_id, params["document_id"])
    return json_response(view.model_dump(mode="json"))


class MetadataPatch(BaseModel):
    """The body of `PATCH /v1/documents/{id}`: a JSON merge patch of the attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metadata: Annotated[
        dict[str, Any],
        Field(min_length=1),
        WithJsonSchema({**attributes_schema(removals=True), "minProperties": 1}),
    ] = Field(description="Attributes to set; null removes one. Nothing is re-embedded.")


def patch_document(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    check_declared_size(request, ctx.settings.max_request_bytes)
    principal = principal_of(ctx, request)
    ctx.log_fields["document_id"] = str(params["document_id"])
    require_json(request)
    body = parse_model(MetadataPatch, read_body(request, ctx.settings.max_request_bytes))
    view = patch_attributes(principal.team_id, params["document_id"], body.metadata, ctx.settings)
    return json_response(view.model_dump(mode="json"))


def delete_document(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    principal = principal_of(ctx, request)
    ctx.log_fields["document_id"] = str(params["document_id"])
    deleted = documents.delete_document(params["document_id"], principal.team_id)
    return json_response(deleted.model_dump(mode="json"))


class ReprocessAccepted(BaseModel):
    document_id: uuid.UUID
    job_id: uuid.UUID
    status: DocumentStatus = Field(description="The document's status now: `uploaded` (queued).")


def reprocess_document(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    """Queue the document's current file again (after a failure, or on demand).

    The query flow never imports ingestion: the function's entry point hands the flow the
    ingestion trigger's `reprocess_document` as `ctx.reprocess` (as the CLI calls it directly).
    """
    principal = principal_of(ctx, request)
    document_id = params["document_id"]
    ctx.log_fields["document_id"] = str(document_id)
    with transaction() as session:
        documents.get_document(session, principal.team_id, document_id)  # 404 for other teams
    if ctx.reprocess is None:
        raise ApiError(503, "unavailable", "reprocessing is not available in this deployment")
    try:
        job_id = ctx.reprocess(document_id)
    except LookupError:  # deleted meanwhile, or never had a stored file
        raise ApiError(404, "not_found", "document not found or never uploaded") from None
    ctx.log_fields["job_id"] = str(job_id)
    accepted = ReprocessAccepted(
        document_id=document_id, job_id=job_id, status=DocumentStatus.UPLOADED
    )
    return json_response(accepted.model_dump(mode="json"), status=202)


def list_projects(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    principal = principal_of(ctx, request)
    if request.args:
        name = sorted(request.args)[0][:64]
        raise ApiError(422, "validation_error", f"{name}: unknown parameter")
    with transaction() as session:
        listing = team_projects(session, principal.team_id)
    ctx.log_fields["projects"] = len(listing.projects)
    return json_response(listing.model_dump(mode="json"))


class Health(BaseModel):
    status: str
    schema_revision: str | None


@lru_cache(maxsize=1)
def _head_revision() -> str | None:
    from common.platform import migrate

    return migrate.head_revision()


def healthz(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    """200 only when the database answers, is migrated to head and fits the configured model."""
    from sqlalchemy.exc import ProgrammingError

    from common.platform.db import check_embedding_dimension

    try:
        with transaction() as session:  # a database outage becomes a 503 in reply_for
            current = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except ProgrammingError:  # no alembic_version table: never migrated
        current = None
    if current is None or current != _head_revision():
        raise ApiError(
            503, "schema_outdated", "the database schema is not at the expected revision"
        )
    check_embedding_dimension(ctx.settings)
    return json_response(Health(status="ok", schema_revision=current).model_dump(mode="json"))
