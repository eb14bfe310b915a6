"""Documents over HTTPS: signed uploads, URL sources and manual text, all through the bucket.

Nothing here creates chunks or jobs: an upload URL lets the client write the object itself, and
a URL or manual source is written as an object whose metadata records where it came from. The
finalize event then runs the one ingestion path (document upsert, job, embedding, unchanged
skip). A source's object name is derived from what identifies it (the URL, or the title), so
posting it again updates the same document.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from sqlalchemy import select

from common.platform.attributes import attributes_schema
from common.platform.config import Settings
from common.platform.db import transaction
from common.platform.errors import ApiError
from common.platform.formats import ACCEPTED_TYPES, accepted_list, base_type
from common.platform.models import Document, SourceType
from common.platform.object_events import announce_finalized
from common.platform.signed_urls import get_upload_signer
from common.platform.sources import (
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    DocumentSource,
    upsert_document,
)
from common.platform.storage import BlobInfo, get_blob_store
from common.query.auth import authorize_project
from common.query.document_metadata import object_metadata
from common.query.schemas import StorableText
from common.query.url_fetch import UrlFetcher

logger = logging.getLogger(__name__)

MAX_PATH_BYTES = 512
MAX_SEGMENT_BYTES = 255
# Objects the API writes for URL and manual sources; uploads may not name this folder.
SOURCES_FOLDER = "_sources"
_CONTENT_TYPE_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~/;= \""
)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: Annotated[StorableText, Field(min_length=1, max_length=1024)] = Field(
        description="A file name or relative path (`reports/q3.pdf`); becomes the object name "
        "under the project's folder."
    )
    content_type: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description=f"The file's type; one of {accepted_list()} (parameters allowed)."
    )
    size: int = Field(ge=1, description="The file's size in bytes (the upload may not exceed it).")
    metadata: (
        Annotated[dict[str, Any], WithJsonSchema(attributes_schema(removals=False))] | None
    ) = Field(
        default=None,
        description="Attributes of the document, sent as signed `x-goog-meta-*` headers the "
        "PUT must carry (names in lower case: HTTP headers ignore case; printable ASCII "
        "values; set others later with PATCH /v1/documents/{id}).",
    )


class UploadTicket(BaseModel):
    upload_url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    object: str
    document_path: str
    expires_at: datetime


class SourceRequest(BaseModel):
    """`{url, title?}` fetches a page or file; `{title, text, mime_type?}` stores text as is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[StorableText, Field(min_length=1, max_length=MAX_URL_CHARS)] | None = None
    title: Annotated[StorableText, Field(min_length=1, max_length=MAX_TITLE_CHARS)] | None = None
    text: Annotated[StorableText, Field(min_length=1)] | None = None
    mime_type: Literal["text/plain", "text/markdown"] | None = None
    metadata: (
        Annotated[dict[str, Any], WithJsonSchema(attributes_schema(removals=False))] | None
    ) = Field(default=None, description="Attributes of the document (see README 'Attributes').")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceRequest:
        if (self.url is None) == (self.text is None):
            raise ValueError("give either url or text")
        if self.text is not None and self.title is None:
            raise ValueError("title: required with text")
        if self.url is not None and self.mime_type is not None:
            raise ValueError("mime_type: only with text (a URL's type is what the server sends)")
        if self.text is not None and not self.text.strip():
            raise ValueError("text: is blank")
        return self


class SourceAccepted(BaseModel):
    document_id: uuid.UUID
    status: str
    object: str


def clean_document_path(filename: str) -> str:
    """The object path under the project for a client's file name; 422 naming the problem."""
    path = unicodedata.normalize("NFC", filename).strip()

    def bad(reason: str) -> ApiError:
        return ApiError(422, "invalid_filename", f"filename: {reason}")

    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in path):
        raise bad("control characters are not allowed")
    if "\\" in path:
        raise bad("use / to separate folders, not \\")
    if path.startswith("/"):
        raise bad("must be relative (no leading /)")
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise bad("empty, '.' and '..' path segments are not allowed")
    if any(s != s.strip() for s in segments):
        raise bad("path segments may not start or end with spaces")
    if len(path.encode()) > MAX_PATH_BYTES or any(
        len(s.encode()) > MAX_SEGMENT_BYTES for s in segments
    ):
        raise bad(f"longer than {MAX_PATH_BYTES} bytes (or a segment over {MAX_SEGMENT_BYTES})")
    if segments[0] == SOURCES_FOLDER or path.startswith(".well-known/acme-challenge"):
        raise bad(f"the folder {segments[0]!r} is reserved")
    return path


def _checked_content_type(value: str) -> str:
    if not set(value) <= _CONTENT_TYPE_CHARS:
        raise ApiError(422, "validation_error", "content_type: not a valid media type")
    if base_type(value) not in ACCEPTED_TYPES:
        raise ApiError(
            422,
            "unsupported_type",
            f"content_type: {base_type(value)} is not a supported type "
            f"(supported: {accepted_list()})",
        )
    return value.strip()


def create_upload(
    team_id: uuid.UUID, project_id: uuid.UUID, body: UploadRequest, settings: Settings
) -> UploadTicket:
    """A signed PUT URL for `<project_id>/<path>`, after every check (nothing is issued else)."""
    path = clean_document_path(body.filename)
    content_type = _checked_content_type(body.content_type)
    if body.size > settings.max_file_bytes:
        raise ApiError(
            422,
            "file_too_large",
            f"size: exceeds the {settings.max_file_bytes}-byte file limit",
        )
    with transaction() as session:
        authorize_project(session, team_id, project_id)
        metadata = header_metadata(object_metadata(session, project_id, body.metadata))
    name = f"{project_id}/{path}"
    signed = get_upload_signer().sign_put(
        settings.bucket,
        name,
        content_type,
        body.size,
        timedelta(seconds=settings.upload_url_ttl_seconds),
        metadata=metadata,
    )
    return UploadTicket(
        upload_url=signed.url,
        method="PUT",
        headers=signed.headers,
        object=f"gs://{settings.bucket}/{name}",
        document_path=path,
        expires_at=signed.expires_at,
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def add_source(
    team_id: uuid.UUID, project_id: uuid.UUID, body: SourceRequest, settings: Settings
) -> SourceAccepted:
    """Fetch or take the content, write it as an object with its source, record the document."""
    with transaction() as session:
        authorize_project(session, team_id, project_id)
        attributes = object_metadata(session, project_id, body.metadata)
    if body.url is not None:
        fetched = UrlFetcher(
            max_bytes=settings.max_file_bytes,
            timeout=settings.url_fetch_timeout_seconds,
            allow_loopback=settings.url_fetch_allow_loopback,
        ).fetch(body.url)
        source = DocumentSource(SourceType.URL, body.title or body.url[:MAX_TITLE_CHARS], body.url)
        path = f"{SOURCES_FOLDER}/url/{_digest(body.url)}"
        data, content_type = fetched.content, fetched.content_type
    else:
        assert body.text is not None and body.title is not None
        source = DocumentSource(SourceType.MANUAL, body.title)
        path = f"{SOURCES_FOLDER}/manual/{_digest(body.title)}"
        data = body.text.encode()
        content_type = f"{body.mime_type or 'text/plain'}; charset=utf-8"
        if len(data) > settings.max_file_bytes:
            raise ApiError(422, "file_too_large", "text: exceeds the file limit")
    blob = _write(
        settings.bucket, f"{project_id}/{path}", data, content_type, source, attributes=attributes
    )
    with transaction() as session:
        document_id = upsert_document(
            session,
            blob,
            team_id=team_id,
            project_id=project_id,
            path=path,
            mime_type=base_type(content_type),
        )
        # None: a newer generation (a concurrent post) is already recorded; report that one.
        row = session.execute(
            select(Document.id, Document.status).where(
                Document.id == document_id
                if document_id is not None
                else (Document.project_id == project_id) & (Document.gcs_uri == blob.gcs_uri)
            )
        ).one()
    logger.info(
        "document source stored",
        extra={"document_id": str(row.id), "source_type": source.source_type.value},
    )
    return SourceAccepted(document_id=row.id, status=row.status.value, object=blob.gcs_uri)


def header_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Attributes a signed PUT can carry as headers: lower-case names, printable ASCII values."""
    for key, value in metadata.items():
        if key != key.lower():
            raise ApiError(
                422, "invalid_metadata", f"metadata.{key}: names in uploads are lower case"
            )
        if not (value.isascii() and value.isprintable()):
            raise ApiError(
                422,
                "invalid_metadata",
                f"metadata.{key}: upload headers carry printable ASCII only; "
                "set this value with PATCH /v1/documents/{id} after the upload",
            )
    return metadata


def _write(
    bucket: str,
    name: str,
    data: bytes,
    content_type: str,
    source: DocumentSource,
    *,
    attributes: dict[str, str],
) -> BlobInfo:
    from google.api_core.exceptions import NotFound

    try:
        blob = get_blob_store().upload(
            bucket, name, data, content_type, {**attributes, **source.metadata()}
        )
    except NotFound:  # the bucket itself: a deployment problem, not the caller's
        logger.error("the upload bucket does not exist", extra={"bucket": bucket})
        raise ApiError(503, "misconfigured", "the service is misconfigured") from None
    announce_finalized(blob)
    return blob
