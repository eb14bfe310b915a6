"""Typed views of the CloudEvents the functions receive; bad ones raise `MalformedEventError`.

Storage events follow `google.events.cloud.storage.v1.StorageObjectData` (int64 fields arrive as
strings); job messages arrive as `google.cloud.pubsub.topic.v1.messagePublished` with the JSON job
in base64 `message.data`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from common.platform.storage import BlobInfo, md5_base64_to_hex

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
STORAGE_DELETED = "google.cloud.storage.object.v1.deleted"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


class MalformedEventError(ValueError):
    """An event that can never be processed: log it and acknowledge."""


@dataclass(frozen=True, kw_only=True)
class StorageObjectEvent(BlobInfo):
    """The object's metadata as the event reports it, plus the event's own id and type."""

    event_id: str
    event_type: str


@dataclass(frozen=True)
class JobMessage:
    job_id: uuid.UUID
    document_id: uuid.UUID
    bucket: str
    name: str
    generation: int
    message_id: str | None

    def to_payload(self) -> dict[str, Any]:
        return {
            "job_id": str(self.job_id),
            "document_id": str(self.document_id),
            "bucket": self.bucket,
            "name": self.name,
            "generation": str(self.generation),
        }


def parse_storage_event(attributes: dict[str, Any], data: Any) -> StorageObjectEvent:
    if not isinstance(data, dict):
        raise MalformedEventError("storage event without a JSON object payload")
    try:
        md5 = data.get("md5Hash")
        return StorageObjectEvent(
            event_id=str(attributes.get("id", "")),
            event_type=str(attributes.get("type", "")),
            bucket=str(data["bucket"]),
            name=str(data["name"]),
            generation=int(data["generation"]),
            size=int(data.get("size") or 0),
            md5_hex=md5_base64_to_hex(md5) if md5 else None,
            content_type=data.get("contentType"),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise MalformedEventError(f"storage event is missing or has a bad field: {error}") from None


def parse_job_message(data: Any) -> JobMessage:
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise MalformedEventError("Pub/Sub event without a message")
    message = data["message"]
    try:
        payload = json.loads(base64.b64decode(message.get("data") or "", validate=True))
        return JobMessage(
            job_id=uuid.UUID(str(payload["job_id"])),
            document_id=uuid.UUID(str(payload["document_id"])),
            bucket=str(payload["bucket"]),
            name=str(payload["name"]),
            generation=int(payload["generation"]),
            message_id=message.get("messageId") or message.get("message_id"),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise MalformedEventError(f"job message is missing or has a bad field: {error}") from None
