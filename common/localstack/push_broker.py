"""A small Pub/Sub stand-in for machines without the Google Cloud SDK.

It speaks the Pub/Sub REST publish call (`POST /v1/projects/P/topics/T:publish`) and pushes
each message to its subscription's endpoint in the push-envelope format the Pub/Sub emulator
uses, with the same semantics we configure in the cloud: redelivery with exponential backoff on
any non-2xx answer, and after `max_delivery_attempts` the message moves to the dead-letter
topic (kept in memory and appended to a JSON-lines file for inspection). Used only by
`ai-infra dev` when `gcloud` is missing; the functions publish to it through `RestPublisher`.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)
_PUBLISH = re.compile(r"^/v1/projects/([^/]+)/topics/([^/:]+):publish$")


@dataclass(frozen=True)
class PushSubscription:
    topic: str
    endpoint: str
    max_delivery_attempts: int
    dead_letter_topic: str | None
    minimum_backoff: float = 1.0
    maximum_backoff: float = 10.0


@dataclass(order=True)
class _Delivery:
    due: float
    sequence: int
    message: dict[str, Any] = field(compare=False)
    subscription: PushSubscription = field(compare=False)
    attempt: int = field(default=1, compare=False)


class PushBroker:
    def __init__(
        self, port: int, subscriptions: list[PushSubscription], dead_letter_file: Path
    ) -> None:
        self.port = port
        self.subscriptions = subscriptions
        self.dead_letter_file = dead_letter_file
        self.dead_letters: list[dict[str, Any]] = []
        self._queue: list[_Delivery] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._deliver_forever, daemon=True),
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._condition:
            self._condition.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def publish(self, topic: str, messages: list[dict[str, Any]]) -> list[str]:
        ids = []
        for message in messages:
            message_id = uuid.uuid4().hex
            stored = {
                "data": message.get("data", ""),
                "attributes": message.get("attributes", {}),
                "messageId": message_id,
                "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
            ids.append(message_id)
            for subscription in self.subscriptions:
                if subscription.topic == topic:
                    self._schedule(
                        _Delivery(time.monotonic(), next(self._sequence), stored, subscription)
                    )
            if not any(s.topic == topic for s in self.subscriptions):
                self._dead_letter(topic, stored, reason="no subscription")
        return ids

    def _schedule(self, delivery: _Delivery) -> None:
        with self._condition:
            heapq.heappush(self._queue, delivery)
            self._condition.notify()

    def _deliver_forever(self) -> None:
        while not self._stopped.is_set():
            with self._condition:
                while not self._stopped.is_set() and (
                    not self._queue or self._queue[0].due > time.monotonic()
                ):
                    timeout = self._queue[0].due - time.monotonic() if self._queue else None
                    self._condition.wait(timeout)
                if self._stopped.is_set():
                    return
                delivery = heapq.heappop(self._queue)
            threading.Thread(target=self._push, args=(delivery,), daemon=True).start()

    def _push(self, delivery: _Delivery) -> None:
        subscription = delivery.subscription
        envelope = {
            "message": delivery.message,
            "subscription": f"push-broker/{subscription.topic}",
            "deliveryAttempt": delivery.attempt,
        }
        try:
            response = httpx.post(subscription.endpoint, json=envelope, timeout=600)
            if response.is_success:
                return
            reason = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            reason = type(error).__name__
        if delivery.attempt >= subscription.max_delivery_attempts:
            target = subscription.dead_letter_topic or subscription.topic
            self._dead_letter(target, delivery.message, reason=reason)
            return
        backoff = min(
            subscription.maximum_backoff, subscription.minimum_backoff * 2 ** (delivery.attempt - 1)
        )
        delivery.attempt += 1
        delivery.due = time.monotonic() + backoff
        delivery.sequence = next(self._sequence)
        self._schedule(delivery)

    def _dead_letter(self, topic: str, message: dict[str, Any], *, reason: str) -> None:
        entry = {"topic": topic, "reason": reason, "message": message}
        self.dead_letters.append(entry)
        with self.dead_letter_file.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        logger.warning("message dead-lettered", extra={"topic": topic, "reason": reason})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = _PUBLISH.match(self.path)
                if match is None:
                    self._reply(404, {"error": {"message": "unknown path"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    messages = list(body["messages"])
                except (ValueError, KeyError, TypeError):
                    self._reply(400, {"error": {"message": "body must be {'messages': [...]}"}})
                    return
                self._reply(200, {"messageIds": broker.publish(match.group(2), messages)})

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
