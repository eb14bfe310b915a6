"""Publishing job messages: Pub/Sub in the cloud, the Pub/Sub emulator locally (same client)."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, Protocol

from common.platform.config import Settings, get_settings
from common.platform.errors import TransientError

if TYPE_CHECKING:
    from google.cloud.pubsub_v1 import PublisherClient

PUBLISH_TIMEOUT_SECONDS = 30.0


class Publisher(Protocol):
    def publish(self, topic: str, data: dict[str, Any], attributes: dict[str, str]) -> str:
        """Publish and wait until the service has it; returns the message id."""
        ...


class PubSubPublisher:
    def __init__(self, client: PublisherClient, project: str) -> None:
        self._client = client
        self._project = project

    def topic_path(self, topic: str) -> str:
        return (
            topic if topic.startswith("projects/") else f"projects/{self._project}/topics/{topic}"
        )

    def publish(self, topic: str, data: dict[str, Any], attributes: dict[str, str]) -> str:
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        try:
            future = self._client.publish(self.topic_path(topic), payload, **attributes)
            return str(future.result(timeout=PUBLISH_TIMEOUT_SECONDS))
        except Exception as error:
            # Any failure to hand the message over is retryable: the event is redelivered and
            # the job row (unique per generation) makes the second attempt idempotent.
            raise TransientError(f"publishing to {topic} failed: {type(error).__name__}") from error


class RestPublisher:
    """Publishes with the Pub/Sub REST call; used with the local push broker (no gcloud)."""

    def __init__(self, base_url: str, project: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._project = project

    def publish(self, topic: str, data: dict[str, Any], attributes: dict[str, str]) -> str:
        import base64

        import httpx

        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        body = {
            "messages": [{"data": base64.b64encode(payload).decode(), "attributes": attributes}]
        }
        url = f"{self._base_url}/v1/projects/{self._project}/topics/{topic}:publish"
        try:
            response = httpx.post(url, json=body, timeout=PUBLISH_TIMEOUT_SECONDS)
            response.raise_for_status()
            return str(response.json()["messageIds"][0])
        except (httpx.HTTPError, KeyError, ValueError) as error:
            raise TransientError(f"publishing to {topic} failed: {type(error).__name__}") from error


def pubsub_clients(settings: Settings) -> tuple[Any, Any]:
    """(publisher, subscriber) clients for the cloud or the emulator."""
    from google.cloud import pubsub_v1

    host = settings.pubsub_emulator_host
    if not host:
        return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    import grpc
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    publisher = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    )
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    )
    return publisher, subscriber


_lock = threading.Lock()
_publisher: Publisher | None = None


def get_publisher() -> Publisher:
    """The process-wide publisher, built lazily."""
    global _publisher
    if _publisher is None:
        with _lock:
            if _publisher is None:
                settings = get_settings()
                if settings.pubsub_rest_url and not settings.pubsub_emulator_host:
                    _publisher = RestPublisher(settings.pubsub_rest_url, settings.gcp_project)
                else:
                    client, _ = pubsub_clients(settings)
                    _publisher = PubSubPublisher(client, settings.gcp_project)
    return _publisher


def reset_publisher() -> None:
    global _publisher
    _publisher = None
