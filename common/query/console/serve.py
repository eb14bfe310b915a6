"""`GET /console` and `/console/<asset>`: the console's files, unauthenticated, with strict headers.

The files are read once per process. The policy allows scripts, styles and connections from
this origin only, plus connections to where signed uploads go (the local upload gateway, or
GCS in the cloud), so an injected string can neither run nor send data anywhere else.

The query function's entry point answers these paths before it imports the API (SQLAlchemy,
the models, the model clients: seconds on a cold instance), so the page opens at once; this
module imports nothing heavier than Flask and the settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import flask

from common.platform.config import get_settings
from common.platform.formats import FORMATS

if TYPE_CHECKING:
    from common.platform.config import Settings

logger = logging.getLogger(__name__)

PREFIX = "/console"
ASSET_DIR = Path(__file__).resolve().parent / "assets"
GCS_ORIGIN = "https://storage.googleapis.com"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# Generated from the one table of formats, so the console names files as the API accepts them.
FORMATS_ASSET = "formats.json"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def formats_document() -> bytes:
    """Extension -> the media type to declare for it, and every type the API accepts."""
    extensions: dict[str, str] = {}
    for fmt in FORMATS:
        for extension in fmt.extensions:
            guessed = mimetypes.types_map.get(extension)
            extensions[extension] = guessed if guessed in fmt.mime_types else fmt.mime_types[0]
    accepted = sorted({mime for fmt in FORMATS for mime in fmt.mime_types})
    return json.dumps({"extensions": extensions, "types": accepted}, sort_keys=True).encode()


@lru_cache(maxsize=1)
def assets() -> dict[str, Asset]:
    """Every servable file by name (a fixed set: no path from the request reaches the disk)."""
    found = {
        path.name: _asset(path.read_bytes(), _TYPES[path.suffix])
        for path in sorted(ASSET_DIR.iterdir())
        if path.is_file() and path.suffix in _TYPES
    }
    found[FORMATS_ASSET] = _asset(formats_document(), _TYPES[".json"])
    return found


def upload_origin(settings: Settings) -> str:
    """The origin signed upload URLs point at: the browser PUTs files there directly."""
    parts = urlsplit(settings.signed_url_endpoint or GCS_ORIGIN)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {upload_origin(settings)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            # No string can become HTML: the console sets text only (textContent).
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    )


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


def serves(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _error(status: int, code: str, message: str, headers: dict[str, str]) -> flask.Response:
    """The API's error shape, `{"error": {"code", "message"}}`."""
    body = json.dumps({"error": {"code": code, "message": message}})
    return flask.Response(body, status=status, mimetype="application/json", headers=headers)


def respond(request: flask.Request, settings: Settings | None = None) -> flask.Response:
    """The asset the path names (`/console` and `/console/` are the page), or a 404/405."""
    started = time.perf_counter()
    headers = {**security_headers(settings or get_settings()), "X-Request-ID": uuid.uuid4().hex}
    name = request.path.removeprefix(PREFIX).removeprefix("/") or "index.html"
    asset = assets().get(name)
    if request.method not in ("GET", "HEAD"):
        headers["Allow"] = "GET, HEAD"
        response = _error(405, "method_not_allowed", "allowed methods: GET, HEAD", headers)
    elif asset is None:
        response = _error(404, "not_found", "no such console file", headers)
    elif asset.etag in request.headers.get("If-None-Match", ""):
        response = flask.Response(status=304, headers={**headers, "ETag": asset.etag})
    else:
        response = flask.Response(
            asset.body,
            status=200,
            content_type=asset.content_type,
            headers={**headers, "ETag": asset.etag},
        )
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
                "latency": f"{time.perf_counter() - started:.4f}s",
            },
            "operation": "console",
        },
    )
    return response
