"""V4 signed URLs for uploads: one PUT of one object name, content type and size range.

In the cloud the function signs as its own service account through the IAM Credentials API
(`signBlob`; no key file, `roles/iam.serviceAccountTokenCreator` on itself). Locally the same
google-cloud-storage code signs with a fixed, public HMAC key for the local upload gateway
(`common/localstack/upload_gateway.py`), which checks the URL the way GCS does and then emits
the finalize event Eventarc would. The local key protects against mistakes, not attackers:
the emulator behind it has no access control at all.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from common.platform.config import Settings, get_settings
from common.platform.errors import ApiError, TransientError

if TYPE_CHECKING:
    from google.cloud.storage import Client

LOCAL_SIGNER_EMAIL = "local-uploads@ai-infra-local.iam.gserviceaccount.com"
_LOCAL_KEY = b"ai-infra local upload gateway (not a secret)"
LENGTH_RANGE_HEADER = "x-goog-content-length-range"
# Custom metadata (document attributes) travels as signed `x-goog-meta-<name>` headers.
METADATA_HEADER_PREFIX = "x-goog-meta-"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class SignedUpload:
    url: str
    headers: dict[str, str]  # every one of them must be sent with the PUT, as given
    expires_at: datetime


class UploadSigner(Protocol):
    def sign_put(
        self,
        bucket: str,
        name: str,
        content_type: str,
        max_bytes: int,
        ttl: timedelta,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> SignedUpload: ...


def _upload_headers(
    content_type: str, max_bytes: int, metadata: Mapping[str, str] | None
) -> dict[str, str]:
    """What the PUT must send: its type, the size range and the object's custom metadata."""
    return {
        "Content-Type": content_type,
        LENGTH_RANGE_HEADER: f"0,{max_bytes}",
        **{f"{METADATA_HEADER_PREFIX}{key}": value for key, value in (metadata or {}).items()},
    }


def _signed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Every header the signature covers (all but the type, which is signed on its own)."""
    return {key: value for key, value in headers.items() if key != "Content-Type"}


def _blob(client: Client, bucket: str, name: str) -> Any:
    return client.bucket(bucket).blob(name)


class IamUploadSigner:
    """Signs through IAM Credentials `signBlob` as the runtime service account (ADC)."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._credentials: Any = None

    def _token(self) -> tuple[Client, str, str]:
        import google.auth
        import google.auth.transport.requests
        from google.auth.exceptions import GoogleAuthError
        from google.cloud import storage

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _ = google.auth.default(
                        scopes=["https://www.googleapis.com/auth/cloud-platform"]
                    )
                    self._client = storage.Client(
                        project=self._project, credentials=self._credentials
                    )
                if not self._credentials.valid:
                    self._credentials.refresh(google.auth.transport.requests.Request())
            except GoogleAuthError as error:
                raise TransientError(f"cannot get a token to sign with: {error}") from error
            email = getattr(self._credentials, "service_account_email", None)
            assert self._client is not None
            return self._client, str(email), str(self._credentials.token)

    def sign_put(
        self,
        bucket: str,
        name: str,
        content_type: str,
        max_bytes: int,
        ttl: timedelta,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> SignedUpload:
        from google.auth.exceptions import TransportError

        client, email, token = self._token()
        headers = _upload_headers(content_type, max_bytes, metadata)
        expires_at = datetime.now(UTC) + ttl
        try:
            url = _blob(client, bucket, name).generate_signed_url(
                version="v4",
                expiration=ttl,
                method="PUT",
                headers=_signed_headers(headers),
                content_type=content_type,
                service_account_email=email,
                access_token=token,
            )
        except TransportError as error:  # signBlob failed (quota, outage, missing grant)
            raise TransientError(f"signing the upload URL failed: {error}") from error
        return SignedUpload(str(url), headers, expires_at)


def _local_credentials() -> Any:
    from google.auth.credentials import Signing

    class _LocalSigning(Signing):
        def sign_bytes(self, message: bytes) -> bytes:
            return hmac.new(_LOCAL_KEY, message, hashlib.sha256).digest()

        @property
        def signer_email(self) -> str:
            return LOCAL_SIGNER_EMAIL

        @property
        def signer(self) -> None:
            return None

    return _LocalSigning()


class LocalUploadSigner:
    """The same V4 URL, signed with the local key, pointing at the local upload gateway."""

    def __init__(self, endpoint: str) -> None:
        from google.cloud import storage

        self._endpoint = endpoint.rstrip("/")
        self._client = storage.Client.create_anonymous_client()

    def sign_put(
        self,
        bucket: str,
        name: str,
        content_type: str,
        max_bytes: int,
        ttl: timedelta,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> SignedUpload:
        headers = _upload_headers(content_type, max_bytes, metadata)
        url = _blob(self._client, bucket, name).generate_signed_url(
            version="v4",
            expiration=ttl,
            method="PUT",
            headers=_signed_headers(headers),
            content_type=content_type,
            credentials=_local_credentials(),
            api_access_endpoint=self._endpoint,
        )
        return SignedUpload(str(url), headers, datetime.now(UTC) + ttl)


class SignatureError(ValueError):
    """A PUT the signed URL does not allow (GCS answers 403 SignatureDoesNotMatch / expired)."""


def verify_local_put(
    path: str, query: str, headers: Mapping[str, str], *, now: datetime | None = None
) -> None:
    """Check a PUT to the local gateway as GCS checks a V4 URL: signature, expiry, headers.

    `path` is the raw (percent-encoded) request path, `headers` the request's headers with
    lower-case names. The signature is recomputed by the code that made it, so both agree.
    """
    from google.cloud.storage._signing import generate_signed_url_v4

    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    try:
        signature = params.pop("X-Goog-Signature")
        date = params.pop("X-Goog-Date")
        expires = int(params.pop("X-Goog-Expires"))
        signed_names = params.pop("X-Goog-SignedHeaders").split(";")
        credential = params.pop("X-Goog-Credential")
        algorithm = params.pop("X-Goog-Algorithm")
        issued = datetime.strptime(date, _DATE_FORMAT).replace(tzinfo=UTC)
    except (KeyError, ValueError) as error:
        raise SignatureError(f"not a signed URL: {error}") from None
    if params or algorithm != "GOOG4-RSA-SHA256" or not credential.startswith(LOCAL_SIGNER_EMAIL):
        raise SignatureError("not a URL this stack signed")
    if (now or datetime.now(UTC)) > issued + timedelta(seconds=expires):
        raise SignatureError("the signed URL has expired")
    missing = [name for name in signed_names if name not in headers]
    if missing:
        raise SignatureError(f"signed headers missing from the request: {', '.join(missing)}")
    signed = {name: headers[name] for name in signed_names}
    host = signed.pop("host")
    expected = generate_signed_url_v4(
        _local_credentials(),
        resource=path,
        expiration=expires,
        api_access_endpoint=f"http://{host}",
        method="PUT",
        headers=signed,
        _request_timestamp=date,
    )
    expected_signature = expected.rsplit("X-Goog-Signature=", 1)[1]
    if not hmac.compare_digest(expected_signature, signature):
        raise SignatureError("the request does not match the signature")


def custom_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """The object's custom metadata a PUT carries (`x-goog-meta-*`, lower-case header names)."""
    return {
        name.removeprefix(METADATA_HEADER_PREFIX): value
        for name, value in headers.items()
        if name.startswith(METADATA_HEADER_PREFIX)
    }


def length_range(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """The `x-goog-content-length-range: MIN,MAX` a PUT carries (None when absent/bad)."""
    low, _, high = headers.get(LENGTH_RANGE_HEADER, "").partition(",")
    try:
        return int(low), int(high)
    except ValueError:
        return None


_lock = threading.Lock()
_signer: UploadSigner | None = None


class _NoUploadGateway:
    """Local storage emulator but no upload gateway: a URL would store without ingesting."""

    def sign_put(
        self,
        bucket: str,
        name: str,
        content_type: str,
        max_bytes: int,
        ttl: timedelta,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> SignedUpload:
        raise ApiError(
            503,
            "uploads_unavailable",
            "signed uploads need the local upload gateway (AI_INFRA_SIGNED_URL_ENDPOINT)",
        )


def build_upload_signer(settings: Settings) -> UploadSigner:
    if settings.signed_url_endpoint:
        return LocalUploadSigner(settings.signed_url_endpoint)
    if settings.storage_emulator_host:
        return _NoUploadGateway()
    return IamUploadSigner(settings.gcp_project)


def get_upload_signer() -> UploadSigner:
    """The process-wide signer, built lazily."""
    global _signer
    if _signer is None:
        with _lock:
            if _signer is None:
                _signer = build_upload_signer(get_settings())
    return _signer


def reset_upload_signer() -> None:
    global _signer
    _signer = None
