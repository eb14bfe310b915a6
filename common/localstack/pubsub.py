"""The Pub/Sub emulator (Google Cloud SDK) and the wiring Terraform does in the cloud.

Topics: jobs + dead letter. The jobs subscription pushes to the chunk_embed function with a
dead-letter policy and backoff, as in `infra/`; the dead-letter subscription keeps messages
for inspection.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from common.localstack.processes import Child, spawn
from common.platform.config import Settings
from common.platform.messaging import pubsub_clients

JOBS_SUBSCRIPTION = "chunk-embed-push"
LOCAL_ACK_DEADLINE_SECONDS = 30
DEAD_LETTER_SUBSCRIPTION = "dead-letters"
DEAD_LETTER_PUSH_SUBSCRIPTION = "dead-letter-handler"


def gcloud_available() -> bool:
    return shutil.which("gcloud") is not None


def start_pubsub_emulator(*, port: int, project: str, data_dir: Path, log_dir: Path) -> Child:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise RuntimeError("the Pub/Sub emulator needs the Google Cloud SDK (gcloud)")
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        gcloud,
        "beta",
        "emulators",
        "pubsub",
        "start",
        f"--host-port=127.0.0.1:{port}",
        f"--project={project}",
        f"--data-dir={data_dir}",
        "--quiet",
    ]
    child = spawn("pubsub-emulator", command, port=port, log_path=log_dir / "pubsub-emulator.log")
    child.wait_ready(90)
    return child


def wire_topics(
    settings: Settings, *, push_endpoint: str, dead_letter_endpoint: str | None = None
) -> None:
    """Create the topics and subscriptions (idempotent)."""
    from google.api_core.exceptions import AlreadyExists

    publisher, subscriber = pubsub_clients(settings)
    project = settings.gcp_project
    jobs = f"projects/{project}/topics/{settings.jobs_topic}"
    dead = f"projects/{project}/topics/{settings.dead_letter_topic}"
    for topic in (jobs, dead):
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=topic)
    subscriptions = [
        {
            "name": f"projects/{project}/subscriptions/{JOBS_SUBSCRIPTION}",
            "topic": jobs,
            "push_config": {"push_endpoint": push_endpoint},
            # Short on purpose: pushes held by a worker that was killed are redelivered within
            # this, not after the function timeout; a redelivery of a job still running is
            # acknowledged by the worker (its lease is live), so a long job loses nothing.
            "ack_deadline_seconds": LOCAL_ACK_DEADLINE_SECONDS,
            "dead_letter_policy": {
                "dead_letter_topic": dead,
                "max_delivery_attempts": settings.max_delivery_attempts,
            },
            "retry_policy": {
                "minimum_backoff": {"seconds": 1},
                "maximum_backoff": {"seconds": 10},
            },
        },
        {"name": f"projects/{project}/subscriptions/{DEAD_LETTER_SUBSCRIPTION}", "topic": dead},
    ]
    if dead_letter_endpoint:
        subscriptions.append(
            {
                "name": f"projects/{project}/subscriptions/{DEAD_LETTER_PUSH_SUBSCRIPTION}",
                "topic": dead,
                "push_config": {"push_endpoint": dead_letter_endpoint},
                "ack_deadline_seconds": 60,
            }
        )
    for request in subscriptions:
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(request=request)
