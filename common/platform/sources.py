"""Where a document comes from, and the one `documents` upsert per object generation.

Every document enters through the bucket. An object the API wrote (a URL or manual source)
says so in its custom metadata (`source_type`, `source_url`, `title`); anything else is an
upload titled by its file name. The ingest trigger and the API that wrote the object both
record a generation with `upsert_document`, so whichever runs first, the row ends the same and
`generation` only moves forward.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from common.platform.document_attributes import object_attributes, refresh
from common.platform.models import Document, DocumentStatus, SourceType
from common.platform.storage import BlobInfo

SOURCE_TYPE_KEY = "source_type"
SOURCE_URL_KEY = "source_url"
TITLE_KEY = "title"
MAX_TITLE_CHARS = 300
MAX_URL_CHARS = 2048


@dataclass(frozen=True)
class DocumentSource:
    source_type: SourceType
    title: str
    source_url: str | None = None

    def metadata(self) -> dict[str, str]:
        """The object's custom metadata that records this source."""
        found = {SOURCE_TYPE_KEY: self.source_type.value, TITLE_KEY: self.title}
        if self.source_url is not None:
            found[SOURCE_URL_KEY] = self.source_url
        return found


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = "".join(c for c in value if c.isprintable()).strip()[:limit]
    return cleaned or None


def source_of(metadata: Mapping[str, str], path: str) -> DocumentSource:
    """The source an object's metadata records; an upload named by its file otherwise."""
    title = _clean(metadata.get(TITLE_KEY), MAX_TITLE_CHARS) or PurePosixPath(path).name
    try:
        source_type = SourceType(metadata.get(SOURCE_TYPE_KEY, SourceType.UPLOAD.value))
    except ValueError:
        source_type = SourceType.UPLOAD
    url = _clean(metadata.get(SOURCE_URL_KEY), MAX_URL_CHARS)
    if (
        source_type is not SourceType.URL
        or url is None
        or not url.startswith(("http://", "https://"))
    ):
        url = None
    return DocumentSource(source_type, title, url)


def upsert_document(
    session: Session,
    blob: BlobInfo,
    *,
    team_id: uuid.UUID,
    project_id: uuid.UUID,
    path: str,
    mime_type: str | None,
) -> uuid.UUID | None:
    """Insert or move the document to this generation; None if it already has a newer one."""
    source = source_of(blob.metadata, path)
    values = {
        "team_id": team_id,
        "project_id": project_id,
        "title": source.title,
        "source_type": source.source_type,
        "source_url": source.source_url,
        "gcs_uri": blob.gcs_uri,
        "path": path,
        "mime_type": mime_type,
        "status": DocumentStatus.UPLOADED,
        "generation": blob.generation,
        "size_bytes": blob.size,
        "content_hash": blob.md5_hex,
        "error_message": None,
    }
    statement = insert(Document).values(**values)
    moving = {key: statement.excluded[key] for key in values if key not in ("team_id",)}
    moving["updated_at"] = statement.excluded["updated_at"]
    upsert = statement.on_conflict_do_update(
        index_elements=["project_id", "gcs_uri"],
        set_=moving,
        where=Document.generation.is_(None) | (Document.generation < blob.generation),
    ).returning(Document.id)
    document_id = session.scalar(upsert)
    if document_id is None:
        # No row changed: either this generation is already recorded (a duplicate event,
        # fine) or a newer one is.
        document_id = session.scalar(
            select(Document.id).where(
                Document.project_id == project_id,
                Document.gcs_uri == blob.gcs_uri,
                Document.generation == blob.generation,
            )
        )
    if document_id is not None:
        _apply_object_metadata(session, document_id, project_id, path, blob.metadata)
    return document_id


def _apply_object_metadata(
    session: Session,
    document_id: uuid.UUID,
    project_id: uuid.UUID,
    path: str,
    metadata: Mapping[str, str],
) -> None:
    """This generation's object metadata as attributes, overlaid with the path's sidecar."""
    values, error = object_attributes(session, project_id, metadata)
    session.execute(
        update(Document)
        .where(Document.id == document_id)
        .values(object_attributes=values, object_metadata_error=error)
    )
    refresh(session, project_id, path)
