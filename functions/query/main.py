"""HTTP entry point of the query function (Cloud Run functions gen2 / functions-framework).

Thin by design: settings are validated and JSON logging configured at import (a bad setting
stops the instance with a message naming it); every request is handed to `common.query.api.handle`,
which routes it, maps every outcome to a status and sets `X-Request-ID`, except the console's
static files (`/console`), answered by `common.query.console.serve` without loading the API.

`common.query.api` (the route table: SQLAlchemy, the schema, the model clients) is imported by
the first request, not at start-up, so a new instance listens after settings and logging alone;
later requests find it loaded.
"""

from __future__ import annotations

import functools
import importlib
import threading
import uuid

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from common.platform.runtime import start_function
from common.query.console import serve as console

start_function()


def framework_error(error: HTTPException) -> flask.Response:
    from common.query.api import framework_error

    return framework_error(error)


# functions-framework answers some requests itself (a path its catch-all route cannot match):
# those become our JSON errors too.
functions_framework.errorhandler(HTTPException)(framework_error)


def reprocess(document_id: uuid.UUID) -> uuid.UUID:
    """`POST /v1/documents/{id}/reprocess`: the query flow never imports ingestion, so the
    entry point, which may import both flows, hands it the trigger's (as the CLI calls it)."""
    from common.ingestion.trigger import reprocess_document

    return reprocess_document(document_id)


@functools.cache
def load_api_soon() -> None:
    """Someone opened the console: load the API in the background while they paste a key."""
    threading.Thread(
        target=importlib.import_module, args=("common.query.api",), daemon=True
    ).start()


@functions_framework.http
def query(request: flask.Request) -> flask.Response:
    if console.serves(request.path):  # static files: the API need not be loaded for them
        load_api_soon()
        return console.respond(request)
    from common.query.api import handle  # the first API request pays the import, once

    return handle(request, reprocess=reprocess)
