"""HTTP entry point of the query function (Cloud Run functions gen2 / functions-framework).

Thin by design: settings are validated and JSON logging configured at import (a bad setting
stops the instance with a message naming it); every request is handed to `common.query.api.handle`,
which routes it, maps every outcome to a status and sets `X-Request-ID`.
"""

from __future__ import annotations

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from common.platform.runtime import start_function
from common.query.api import framework_error, handle

start_function()
# functions-framework answers some requests itself (a path its catch-all route cannot match):
# those become our JSON errors too.
functions_framework.errorhandler(HTTPException)(framework_error)


@functions_framework.http
def query(request: flask.Request) -> flask.Response:
    return handle(request)
