"""Storage CloudEvents exactly as Eventarc delivers them, for where there is no Eventarc.

Binary content mode by default (`ce-*` headers, JSON body of the object's metadata), structured
mode on request; the `data` payload follows `google.events.cloud.storage.v1.StorageObjectData`
as JSON, where int64 fields are strings. `announce_finalized` is what a writer of an object
calls: nothing in the cloud (Eventarc sends the event), a POST to `ingest_trigger` locally
(`AI_INFRA_EVENT_SINK_URL`, as the inbox, `ai-infra upload` and the upload gateway do).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from common.platform.config import get_settings
from common.platform.errors import TransientError
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


def announce_finalized(blob: BlobInfo) -> None:
    """The finalize event for an object just written, where no Eventarc sends it (local)."""
    sink = get_settings().event_sink_url
    if not sink:
        return
    try:
        response = send_storage_event(sink, FINALIZED, blob, timeout=30.0)
    except httpx.HTTPError as error:
        raise TransientError(f"the storage event could not be delivered: {error}") from error
    if not response.is_success:
        raise TransientError(f"ingest_trigger answered {response.status_code} to the event")
