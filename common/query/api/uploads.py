"""Handlers of the routes that bring documents in: signed uploads and URL/manual sources."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from common.query import intake
from common.query.api.handlers import project_json_request
from common.query.api.responses import json_response

if TYPE_CHECKING:
    import flask

    from common.query.api.context import RequestContext


def create_upload(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    project_id, principal, body = project_json_request(ctx, request, params, intake.UploadRequest)
    ticket = intake.create_upload(principal.team_id, project_id, body, ctx.settings)
    ctx.log_fields["upload_bytes"] = body.size
    return json_response(ticket.model_dump(mode="json"), status=201)


def add_document(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    project_id, principal, body = project_json_request(ctx, request, params, intake.SourceRequest)
    accepted = intake.add_source(principal.team_id, project_id, body, ctx.settings)
    ctx.log_fields["document_id"] = str(accepted.document_id)
    return json_response(accepted.model_dump(mode="json"), status=202)
