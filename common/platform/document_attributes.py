"""Applying attributes to documents: the object's own metadata and its sidecar, in any order.

A document's effective attributes are its object's custom metadata overlaid with the live
`<path>.metadata.json` sidecar (a sidecar key set to null removes the object's). The sidecar
lives in its own row (`document_sidecars`), keyed by project and path, so it may arrive before
its file, after it, or be changed while the file is re-uploaded: whenever either side changes,
`refresh` recomputes the document's attributes under its row lock. Each side moves only forward
by object generation, as documents do, so duplicated and reordered events end in the state of
the newest generation. Attributes never touch chunks: no re-embedding.

A bad sidecar or bad object metadata (invalid JSON, a name or type conflict) is recorded as the
document's `metadata_error` and leaves the other side's attributes in force; the document and its
chunks are untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from common.platform.attributes import (
    SIDECAR_SUFFIX,
    AttributeValue,
    AttributeValueError,
    check_limits,
    known_types,
    parse_object_metadata,
    parse_sidecar,
    register_types,
)
from common.platform.models import Document, DocumentSidecar


def sidecar_target(path: str) -> str | None:
    """The document path a sidecar object's path describes; None when it is no sidecar."""
    if path.endswith(SIDECAR_SUFFIX) and len(path) > len(SIDECAR_SUFFIX):
        return path[: -len(SIDECAR_SUFFIX)]
    return None


def object_attributes(
    session: Session, project_id: uuid.UUID, metadata: Mapping[str, str]
) -> tuple[dict[str, AttributeValue], str | None]:
    """The attributes of an object's custom metadata, typed and registered, or an error."""
    try:
        values = parse_object_metadata(metadata, known_types(session, project_id))
        return register_types(session, project_id, values, path="metadata"), None
    except AttributeValueError as error:
        return {}, f"object metadata not applied: {error}"


def sidecar_attributes(
    session: Session, project_id: uuid.UUID, data: bytes, name: str
) -> tuple[dict[str, AttributeValue | None], str | None]:
    """A sidecar's attributes, typed and registered (nulls kept: they remove), or an error."""
    try:
        values = parse_sidecar(data)
        kept = {key: value for key, value in values.items() if value is not None}
        typed = register_types(session, project_id, kept, path="sidecar")
        return {**typed, **{key: None for key, value in values.items() if value is None}}, None
    except AttributeValueError as error:
        return {}, f"sidecar {name} not applied: {error}"


def record_sidecar(
    session: Session,
    *,
    project_id: uuid.UUID,
    path: str,
    generation: int,
    attributes: Mapping[str, AttributeValue | None],
    error: str | None,
) -> bool:
    """Store a sidecar generation unless a newer one is stored; True when it was stored."""
    statement = insert(DocumentSidecar).values(
        project_id=project_id,
        path=path,
        generation=generation,
        attributes=dict(attributes),
        error=error,
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["project_id", "path"],
        set_={
            "generation": statement.excluded.generation,
            "attributes": statement.excluded.attributes,
            "error": statement.excluded.error,
            "updated_at": statement.excluded.updated_at,
        },
        where=DocumentSidecar.generation < generation,
    ).returning(DocumentSidecar.generation)
    return session.scalar(upsert) is not None


_FORGET = text(
    "DELETE FROM document_sidecars WHERE project_id = :project_id AND path = :path "
    "AND generation <= :generation"
)


def forget_sidecar(session: Session, *, project_id: uuid.UUID, path: str, generation: int) -> bool:
    """The sidecar's object was deleted: drop it unless a newer generation replaced it."""
    result = session.execute(
        _FORGET, {"project_id": project_id, "path": path, "generation": generation}
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def refresh(session: Session, project_id: uuid.UUID, path: str) -> Document | None:
    """Recompute the effective attributes of the document at `path` (locked), if it exists."""
    document = session.scalar(
        select(Document)
        .where(Document.project_id == project_id, Document.path == path)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if document is None:
        return None
    # populate_existing: the row may have been written by `record_sidecar` (Core) after this
    # session loaded it.
    sidecar = session.get(DocumentSidecar, (project_id, path), populate_existing=True)
    effective: dict[str, AttributeValue] = dict(document.object_attributes)  # type: ignore[arg-type]
    errors = [document.object_metadata_error] if document.object_metadata_error else []
    if sidecar is not None and sidecar.error:
        errors.append(sidecar.error)
    elif sidecar is not None:
        for name, value in sidecar.attributes.items():
            if value is None:
                effective.pop(name, None)
            else:
                effective[name] = value  # type: ignore[assignment]
    try:
        check_limits(effective, path="attributes")
    except AttributeValueError as error:
        errors.append(f"attributes not applied: {error}")
        effective = dict(document.attributes)  # type: ignore[arg-type]
    document.attributes = effective  # type: ignore[assignment]
    document.metadata_error = "; ".join(errors) or None
    return document
