"""Object storage behind one small interface: GCS in the cloud, the GCS emulator locally.

Both go through the real `google-cloud-storage` client; the emulator is reached by pointing
the client at `AI_INFRA_STORAGE_EMULATOR_HOST` (the client's own `STORAGE_EMULATOR_HOST` knob).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from common.platform.config import Settings, get_settings
from common.platform.errors import PermanentIngestionError, TransientError

if TYPE_CHECKING:
    from google.cloud.storage import Client


@dataclass(frozen=True)
class BlobInfo:
    bucket: str
    name: str
    generation: int
    size: int
    md5_hex: str | None
    content_type: str | None
    # Custom metadata (`x-goog-meta-*`): where an API-created object came from (see
    # `common.platform.sources`).
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def gcs_uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class ObjectGoneError(PermanentIngestionError):
    """That generation of the object no longer exists (overwritten or deleted)."""


class BlobStore(Protocol):
    def upload(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo: ...

    def download(self, bucket: str, name: str, generation: int | None = None) -> bytes: ...

    def stat(self, bucket: str, name: str) -> BlobInfo | None: ...

    def delete(self, bucket: str, name: str) -> bool: ...

    def ensure_bucket(self, bucket: str) -> None: ...


def md5_base64_to_hex(value: str | None) -> str | None:
    """GCS reports MD5 as base64; we store hex everywhere."""
    return base64.b64decode(value).hex() if value else None


class GcsBlobStore:
    """google-cloud-storage; transient HTTP failures become `TransientError` (retried)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo:
        blob = self._client.bucket(bucket).blob(name)
        if metadata:
            blob.metadata = dict(metadata)
        with _translated():
            blob.upload_from_string(data, content_type=content_type or "application/octet-stream")
        return _info(bucket, blob)

    def download(self, bucket: str, name: str, generation: int | None = None) -> bytes:
        from google.api_core.exceptions import NotFound

        blob = self._client.bucket(bucket).blob(name, generation=generation)
        try:
            with _translated():
                return bytes(blob.download_as_bytes())
        except NotFound as error:
            raise ObjectGoneError(
                f"object gs://{bucket}/{name} generation {generation} no longer exists"
            ) from error

    def stat(self, bucket: str, name: str) -> BlobInfo | None:
        with _translated():
            blob = self._client.bucket(bucket).get_blob(name)
        return _info(bucket, blob) if blob is not None else None

    def delete(self, bucket: str, name: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            with _translated():
                self._client.bucket(bucket).blob(name).delete()
        except NotFound:
            return False
        return True

    def ensure_bucket(self, bucket: str) -> None:
        from google.api_core.exceptions import Conflict

        try:
            with _translated():
                self._client.create_bucket(bucket)
        except Conflict:
            pass


def _info(bucket: str, blob: object) -> BlobInfo:
    return BlobInfo(
        bucket=bucket,
        name=blob.name,  # type: ignore[attr-defined]
        generation=int(blob.generation),  # type: ignore[attr-defined]
        size=int(blob.size or 0),  # type: ignore[attr-defined]
        md5_hex=md5_base64_to_hex(blob.md5_hash),  # type: ignore[attr-defined]
        content_type=blob.content_type,  # type: ignore[attr-defined]
        metadata=dict(blob.metadata or {}),  # type: ignore[attr-defined]
    )


@contextmanager
def _translated() -> Iterator[None]:
    """Map retryable GCS/transport failures to TransientError; let the rest through."""
    from google.api_core import exceptions as gexc
    from requests import exceptions as rexc

    retryable = (
        gexc.TooManyRequests,
        gexc.InternalServerError,
        gexc.BadGateway,
        gexc.ServiceUnavailable,
        gexc.GatewayTimeout,
        rexc.ConnectionError,
        rexc.Timeout,
    )
    try:
        yield
    except retryable as error:
        raise TransientError(f"storage unavailable: {type(error).__name__}") from error


_lock = threading.Lock()
_store: BlobStore | None = None


def build_blob_store(settings: Settings) -> BlobStore:
    from google.cloud import storage

    if settings.storage_emulator_host:
        from google.auth.credentials import AnonymousCredentials

        client = storage.Client(
            project=settings.gcp_project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": settings.storage_emulator_host},
        )
    else:
        client = storage.Client(project=settings.gcp_project)
    return GcsBlobStore(client)


def get_blob_store() -> BlobStore:
    """The process-wide store, built lazily (cold starts import nothing they don't use)."""
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = build_blob_store(get_settings())
    return _store


def reset_blob_store() -> None:
    global _store
    _store = None
