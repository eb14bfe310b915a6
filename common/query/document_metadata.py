"""Attributes set through the API and the CLI, stored where the ingest trigger reads them.

Attributes given with a new document (`POST /documents`, signed uploads, `ai-infra upload
--meta`) travel as the object's custom metadata; a change to an existing document
(`PATCH /v1/documents/{id}`, `ai-infra documents set-meta`) is written as its
`<path>.metadata.json` sidecar and applied at once, so the bucket stays the source of truth and
the sidecar's finalize event, when it arrives, changes nothing more. Values are typed against
the project's registry before anything is written: a conflict is a 422 naming the attribute.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.platform.attributes import (
    SIDECAR_SUFFIX,
    AttributeValue,
    AttributeValueError,
    check_limits,
    parse_json_attributes,
    register_types,
)
from common.platform.config import Settings
from common.platform.db import transaction
from common.platform.document_attributes import record_sidecar, refresh
from common.platform.errors import ApiError
from common.platform.models import Document, DocumentSidecar
from common.platform.object_events import announce_finalized
from common.platform.storage import get_blob_store
from common.query import documents


def invalid(error: AttributeValueError) -> ApiError:
    return ApiError(422, "invalid_metadata", str(error))


def object_metadata(
    session: Session, project_id: uuid.UUID, raw: Mapping[str, object] | None
) -> dict[str, str]:
    """API attributes as custom metadata strings (`x-goog-meta-*`), typed and registered first
    so the trigger reads them back with the same types."""
    if not raw:
        return {}
    try:
        parsed = parse_json_attributes(raw)
        values = register_types(
            session,
            project_id,
            {name: value for name, value in parsed.items() if value is not None},
        )
    except AttributeValueError as error:
        raise invalid(error) from None
    return {name: _as_text(value) for name, value in values.items()}


def _as_text(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def patch_attributes(
    team_id: uuid.UUID, document_id: uuid.UUID, patch: Mapping[str, object], settings: Settings
) -> documents.DocumentView:
    """Merge `patch` into the document's attributes (null removes one) as its sidecar.

    The document row stays locked from the read of the current sidecar to the record of the new
    one, so concurrent patches of one document apply one after the other, none lost.
    """
    with transaction() as session:
        document = session.scalar(
            select(Document)
            .where(Document.id == document_id, Document.team_id == team_id)
            .with_for_update()
        )
        if document is None or document.path is None:
            raise ApiError(404, "not_found", "document not found")
        current = session.get(DocumentSidecar, (document.project_id, document.path))
        merged = _merged(
            dict(current.attributes) if current is not None and not current.error else {},
            patch,
            set(document.object_attributes),
        )
        kept = {name: value for name, value in merged.items() if value is not None}
        try:
            register_types(session, document.project_id, kept, path="metadata")
        except AttributeValueError as error:
            raise invalid(error) from None
        name = f"{document.project_id}/{document.path}{SIDECAR_SUFFIX}"
        body = json.dumps({"metadataAttributes": merged}, ensure_ascii=False).encode()
        blob = get_blob_store().upload(settings.bucket, name, body, "application/json")
        record_sidecar(
            session,
            project_id=document.project_id,
            path=document.path,
            generation=blob.generation,
            attributes=merged,
            error=None,
        )
        refresh(session, document.project_id, document.path)
    announce_finalized(blob)
    with transaction() as session:
        return documents.get_document(session, team_id, document_id)


def _merged(
    sidecar: dict[str, object], patch: Mapping[str, object], from_object: set[str]
) -> dict[str, AttributeValue | None]:
    """JSON merge patch of the sidecar: a null removes the name, kept as null only where it
    must hide the object's own attribute of that name."""
    try:
        changes = parse_json_attributes(patch, removals=True)
    except AttributeValueError as error:
        raise invalid(error) from None
    result: dict[str, AttributeValue | None] = dict(sidecar)  # type: ignore[arg-type]
    for name, value in changes.items():
        if value is None and name not in from_object:
            result.pop(name, None)
        else:
            result[name] = value
    try:
        check_limits(result, path="metadata")
    except AttributeValueError as error:
        raise invalid(error) from None
    return result
