"""Scheduled job sweep (Cloud Scheduler, authenticated POST): stuck jobs moved on, overdue counted.

`overdue_minutes` comes from the query string or a JSON body (default 30). The figures are
answered as JSON and logged as ONE structured line, which the log-based metrics in
infra/monitoring.tf read; the line is a warning when jobs are overdue.

The sweep (SQLAlchemy, the schema, the publisher) is imported by the first call, not at start-up.
"""

from __future__ import annotations

import json
import logging

import flask
import functions_framework

from common.platform.errors import TransientError
from common.platform.runtime import start_function

start_function()
logger = logging.getLogger("functions.sweep")


@functions_framework.http
def sweep(request: flask.Request) -> flask.Response:
    from common.ingestion.monitoring import (  # the first call pays the import, once
        InvalidOverdueMinutesError,
        overdue_minutes,
        sweep_and_measure,
    )

    if request.method not in ("GET", "POST"):
        response = _error(405, "method_not_allowed", "use POST (or GET)")
        response.headers["Allow"] = "GET, POST"
        return response
    raw: object = request.args.get("overdue_minutes")
    body = request.get_data(cache=False)
    if raw is None and body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            return _error(400, "malformed_json", "the body is not valid JSON")
        if not isinstance(parsed, dict):
            return _error(400, "malformed_json", "the body must be a JSON object")
        raw = parsed.get("overdue_minutes")
    try:
        minutes = overdue_minutes(raw)
    except InvalidOverdueMinutesError as error:
        return _error(422, "invalid_overdue_minutes", str(error))
    try:
        figures = sweep_and_measure(minutes)
    except TransientError as error:
        logger.error("job sweep interrupted: %s", error)
        return _error(503, "unavailable", "the sweep could not publish; the next run retries")
    level = logging.WARNING if figures.overdue_jobs else logging.INFO
    logger.log(level, "job sweep finished", extra=figures.as_record())
    teams = figures.team_records()
    for team in teams:
        logger.warning("team has overdue ingestion jobs", extra=team)
    return flask.jsonify({**figures.as_record(), "overdue_teams": teams})


def _error(status: int, code: str, message: str) -> flask.Response:
    response = flask.jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response
