"""`GET /v1/usage?from=&to=`: the calling team's usage per UTC day (see `common.query.usage`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from common.platform.db import transaction
from common.platform.errors import ApiError
from common.query.api.handlers import principal_of
from common.query.api.responses import json_response
from common.query.usage import UsageRangeError, parse_day, resolve_range, team_usage, today_utc

if TYPE_CHECKING:
    import flask

    from common.query.api.context import RequestContext

PARAMETERS = ("from", "to")
QUERY_PARAMETERS: tuple[tuple[str, dict[str, object], str], ...] = (
    (
        "from",
        {"type": "string", "format": "date"},
        "First UTC day, YYYY-MM-DD (default: 29 days before `to`).",
    ),
    (
        "to",
        {"type": "string", "format": "date"},
        "Last UTC day, inclusive (default: today). At most 366 days in all.",
    ),
)


def usage(
    ctx: RequestContext, request: flask.Request, params: dict[str, uuid.UUID]
) -> flask.Response:
    principal = principal_of(ctx, request)
    unknown = sorted(set(request.args) - set(PARAMETERS))
    if unknown:
        raise ApiError(422, "validation_error", f"{unknown[0][:64]}: unknown parameter")
    try:
        start, end = resolve_range(
            parse_day(request.args.get("from"), "from"),
            parse_day(request.args.get("to"), "to"),
            today=today_utc(),
        )
    except UsageRangeError as error:
        raise ApiError(422, "validation_error", str(error)) from None
    ctx.log_fields.update(usage_from=str(start), usage_to=str(end))
    with transaction() as session:
        report = team_usage(session, principal.team_id, start, end)
    return json_response(report.model_dump(mode="json"))
