"""Send storage CloudEvents exactly as Eventarc delivers them (the local stack has no Eventarc).

Binary content mode by default (`ce-*` headers, JSON body of the object's metadata), structured
mode on request; the `data` payload follows `google.events.cloud.storage.v1.StorageObjectData`
as JSON, where int64 fields are strings.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from common.platform.storage import BlobInfo

FINALIZED = "google.cloud.storage.object.v1.finalized"
DELETED = "google.cloud.storage.object.v1.deleted"


def storage_object_data(blob: BlobInfo) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    data: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{blob.bucket}/{blob.name}/{blob.generation}",
        "name": blob.name,
        "bucket": blob.bucket,
        "generation": str(blob.generation),
        "metageneration": "1",
        "contentType": blob.content_type or "application/octet-stream",
        "timeCreated": now,
        "updated": now,
        "storageClass": "STANDARD",
        "size": str(blob.size),
    }
    if blob.metadata:
        data["metadata"] = dict(blob.metadata)
    if blob.md5_hex:
        data["md5Hash"] = base64.b64encode(bytes.fromhex(blob.md5_hex)).decode()
    return data


def storage_event(
    event_type: str, blob: BlobInfo, event_id: str | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """(CloudEvent attributes, data) for one object change."""
    attributes = {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": f"//storage.googleapis.com/projects/_/buckets/{blob.bucket}",
        "type": event_type,
        "subject": f"objects/{blob.name}",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
    }
    return attributes, storage_object_data(blob)


def send_storage_event(
    url: str,
    event_type: str,
    blob: BlobInfo,
    *,
    mode: Literal["binary", "structured"] = "binary",
    event_id: str | None = None,
    timeout: float = 60.0,
) -> httpx.Response:
    attributes, data = storage_event(event_type, blob, event_id)
    if mode == "binary":
        headers = {f"ce-{k}": v for k, v in attributes.items() if k != "datacontenttype"}
        headers["Content-Type"] = "application/json"
        return httpx.post(url, headers=headers, content=json.dumps(data), timeout=timeout)
    envelope = {**attributes, "data": data}
    return httpx.post(
        url,
        headers={"Content-Type": "application/cloudevents+json"},
        content=json.dumps(envelope),
        timeout=timeout,
    )
