"""Two `ai-infra dev` stacks side by side for bench/fairness.py, and their environment.

Pub/Sub: the Google Cloud SDK's emulator pushes a subscription's messages through two push loops,
one message at a time each (`FakePubsubServer$SubscriptionData` starts 2 `PushLoop`s; measured:
never more than 2 pushes outstanding), so under it at most two jobs run at once whatever the
capacity, and a backlog waits in the emulator in arrival order: fair scheduling never sees it.
Cloud Pub/Sub pushes many messages at once (as many as the endpoint keeps accepting), like the
stack's built-in push broker (a thread per delivery), which `ai-infra dev` uses where `gcloud` is
not on PATH: `pubsub="broker"` hides it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.faults_stack import Stack, Tenant, without_gcloud

if TYPE_CHECKING:
    from common.platform.storage import BlobInfo


def new_tenants(stack: Stack, names: list[str], parallel: int = 3) -> list[Tenant]:
    """A team with one project per name (`ai-infra teams create`, `projects create`), made
    before the runs so that no run waits on the CLI; no API key: the bench reads the database."""

    def make(name: str) -> Tenant:
        team = f"{name}-{uuid.uuid4().hex[:6]}"
        stack.cli("teams", "create", team)
        project = stack.cli("projects", "create", "--team", team, name)
        return Tenant(team, str(project["id"]), "")

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(make, names))


def environment(
    standin: dict[str, str],
    capacity: int,
    threads: int,
    tree: Path | None,
    pubsub: str,
    work: Path,
) -> dict[str, str]:
    """The stack's environment: Vertex AI = the stand-in, the capacity, the worker threads (and
    database connections for them), the Pub/Sub in use; `tree`: run that checkout's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
    env.update(standin)
    env.update(
        {
            "AI_INFRA_EMBEDDING_PROVIDER": "vertex",
            "AI_INFRA_EMBEDDING_DIM": "768",
            "AI_INFRA_INGEST_CAPACITY": str(capacity),
            # functions-framework's gunicorn threads, each function's process
            "THREADS": str(threads),
            "AI_INFRA_DB_POOL_SIZE": str(threads),
            "AI_INFRA_DB_MAX_OVERFLOW": "4",
        }
    )
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    if pubsub == "broker":
        env["PATH"] = without_gcloud(env.get("PATH", ""), work / "path-without-gcloud")
    return env


@dataclass
class Landing:
    """A bulk copy into the bucket, then its finalize events at once (as Eventarc after
    `gsutil -m cp`): the objects are written first, untimed, because the local GCS emulator
    takes minutes for what GCS takes seconds; `announce` is the moment the team uploads."""

    stack: Stack
    blobs: list[BlobInfo] = field(default_factory=list)

    def _environment(self) -> dict[str, str]:
        state = json.loads((self.stack.data_dir / "dev.json").read_text())
        return dict(state["environment"])

    def copy(self, tenant: Tenant, folder: Path, parallel: int = 4) -> None:
        from common.platform.config import Settings
        from common.platform.storage import build_blob_store

        env = self._environment()
        store = build_blob_store(
            Settings(storage_emulator_host=env["AI_INFRA_STORAGE_EMULATOR_HOST"])
        )
        bucket = env["AI_INFRA_BUCKET"]

        def put(path: Path) -> BlobInfo:
            name = f"{tenant.project_id}/{path.name}"
            return store.upload(bucket, name, path.read_bytes(), "text/markdown")

        with ThreadPoolExecutor(parallel) as pool:
            self.blobs += list(pool.map(put, sorted(folder.iterdir())))

    def announce(self, senders: int = 8) -> threading.Thread:
        """Send every finalize event, `senders` at a time, on a thread; returns the thread."""
        from common.platform.object_events import FINALIZED, send_storage_event

        sink = self._environment()["AI_INFRA_EVENT_SINK_URL"]

        def send(blob: BlobInfo) -> None:
            for _ in range(5):  # as Eventarc retries an event the trigger did not take
                with contextlib.suppress(httpx.HTTPError):
                    if send_storage_event(sink, FINALIZED, blob).is_success:
                        return
                time.sleep(1)

        def send_all() -> None:
            with ThreadPoolExecutor(senders) as pool:
                list(pool.map(send, self.blobs))

        thread = threading.Thread(target=send_all, daemon=True)
        thread.start()
        return thread
