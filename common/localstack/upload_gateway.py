"""The local stand-in for a signed-URL PUT to GCS, and for the Eventarc event that follows.

The GCS emulator stores a PUT without looking at a signature and emits no events. This gateway
sits where `storage.googleapis.com` would: it checks the V4 URL as GCS does (signature, expiry,
the signed headers, `x-goog-content-length-range`), stores the object in the emulator and then
posts the finalize CloudEvent to `ingest_trigger` (retried, as Eventarc retries), so a client's
`PUT` ends up ingested exactly as in the cloud. Like the bucket's CORS configuration in
`infra/storage.tf`, it lets a browser (the console, on another port) PUT with the signed headers.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

import httpx

from common.localstack.eventarc import FINALIZED, send_storage_event
from common.platform.signed_urls import (
    SignatureError,
    custom_metadata,
    length_range,
    verify_local_put,
)
from common.platform.storage import BlobInfo, get_blob_store

logger = logging.getLogger(__name__)

EVENT_RETRY_SECONDS = 60.0
# CORS as the bucket's configuration allows it: a PUT carrying the signed headers, no cookies.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "PUT",
    "Access-Control-Max-Age": "3600",
}


def _allowed_request_headers(requested: str) -> str | None:
    """What a preflight may ask to send: the content type and GCS's own x-goog-* headers."""
    names = [name.strip().lower() for name in requested.split(",") if name.strip()]
    if all(name == "content-type" or name.startswith("x-goog-") for name in names):
        return ", ".join(names)
    return None


class UploadGateway:
    """Signed PUTs on `http://127.0.0.1:PORT/<bucket>/<object>`; start() serves in a thread."""

    def __init__(
        self,
        port: int,
        event_sink_url: str,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.port = port
        self.event_sink_url = event_sink_url
        self.report = report or (lambda message: logger.warning("%s", message))
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def announce(self, blob: BlobInfo) -> None:
        """The finalize event, retried for a while like Eventarc (the trigger may restart)."""
        deadline = time.monotonic() + EVENT_RETRY_SECONDS
        delay = 0.5
        while True:
            try:
                response = send_storage_event(self.event_sink_url, FINALIZED, blob)
                if response.is_success:
                    return
                problem = f"status {response.status_code}"
            except httpx.HTTPError as error:
                problem = type(error).__name__
            if time.monotonic() > deadline:
                self.report(f"uploads: gave up announcing {blob.name} ({problem})")
                return
            time.sleep(delay)
            delay = min(delay * 2, 8.0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_PUT(self) -> None:
                path, _, query = self.path.partition("?")
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    verify_local_put(path, query, headers)
                except SignatureError as error:
                    self._drain()
                    self._error(HTTPStatus.FORBIDDEN, "SignatureDoesNotMatch", str(error))
                    return
                bucket, _, quoted = path.lstrip("/").partition("/")
                length = headers.get("content-length", "")
                if not length.isdigit():
                    self._error(HTTPStatus.LENGTH_REQUIRED, "MissingContentLength", "")
                    return
                size = int(length)
                allowed = length_range(headers)
                if allowed is not None and not allowed[0] <= size <= allowed[1]:
                    self._drain()
                    self._error(
                        HTTPStatus.BAD_REQUEST,
                        "EntityTooLarge" if size > allowed[1] else "EntityTooSmall",
                        f"{size} bytes is outside the signed range {allowed[0]}-{allowed[1]}",
                    )
                    return
                data = self.rfile.read(size)
                name = urllib.parse.unquote(quoted)
                blob = get_blob_store().upload(
                    bucket, name, data, headers.get("content-type"), custom_metadata(headers)
                )
                self._reply(HTTPStatus.OK, b"", "text/plain")
                threading.Thread(target=gateway.announce, args=(blob,), daemon=True).start()

            def _drain(self) -> None:
                length = self.headers.get("Content-Length", "")
                remaining = int(length) if length.isdigit() else 0
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)

            def do_OPTIONS(self) -> None:
                """The browser's CORS preflight of a cross-origin PUT."""
                allowed = _allowed_request_headers(
                    self.headers.get("Access-Control-Request-Headers", "")
                )
                if self.headers.get("Access-Control-Request-Method") != "PUT" or allowed is None:
                    self._error(HTTPStatus.FORBIDDEN, "CorsNotAllowed", "PUT with x-goog-* only")
                    return
                self.send_response(HTTPStatus.NO_CONTENT)
                for name, value in CORS_HEADERS.items():
                    self.send_header(name, value)
                if allowed:
                    self.send_header("Access-Control-Allow-Headers", allowed)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowed", "PUT only")

            def do_POST(self) -> None:
                self.do_GET()

            def _error(self, status: HTTPStatus, code: str, message: str) -> None:
                body = (
                    "<?xml version='1.0' encoding='UTF-8'?><Error>"
                    f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
                )
                self._reply(status, body.encode(), "application/xml")

            def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header(
                    "Access-Control-Allow-Origin", CORS_HEADERS["Access-Control-Allow-Origin"]
                )
                self.end_headers()
                self.wfile.write(body)

        return Handler
