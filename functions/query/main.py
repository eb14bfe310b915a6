"""HTTP entry point of the query function (Cloud Run functions gen2 / functions-framework).

Thin by design: settings are validated and JSON logging configured at import (a bad setting
stops the instance with a message naming it); every request is handed to `common.query.api.handle`,
which routes it, maps every outcome to a status and sets `X-Request-ID`.

`common.query.api` (the route table: SQLAlchemy, the schema, the model clients) is imported by
the first request, not at start-up, so a new instance listens after settings and logging alone;
later requests find it loaded.
"""

from __future__ import annotations

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from common.platform.runtime import start_function

start_function()


def framework_error(error: HTTPException) -> flask.Response:
    from common.query.api import framework_error

    return framework_error(error)


# functions-framework answers some requests itself (a path its catch-all route cannot match):
# those become our JSON errors too.
functions_framework.errorhandler(HTTPException)(framework_error)


@functions_framework.http
def query(request: flask.Request) -> flask.Response:
    from common.query.api import handle  # the first request pays the import, once

    return handle(request)
