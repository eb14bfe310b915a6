"""`ai-infra dev`: the whole system on one machine, no cloud account.

Embedded Postgres + pgvector (migrated), the GCS emulator, the Pub/Sub emulator wired to the
worker as in `infra/`, the three functions under functions-framework, a demo tenant, and an
inbox folder whose files are uploaded and announced with the CloudEvent Eventarc would send.
Every part is supervised: one that dies is restarted (`common.localstack.supervisor`), and the
job sweep runs every `sweep_interval_seconds`, so a crash heals without anyone typing a
command. Ctrl-C is the only way the stack stops; nothing is left listening.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from common.localstack import functions, gcs, pubsub
from common.localstack.embedded_pg import EmbeddedPostgres
from common.localstack.inbox import InboxWatcher
from common.localstack.processes import Child, port_open
from common.localstack.push_broker import PushBroker, PushSubscription
from common.localstack.state import clear_state, running_stack_environment, write_state
from common.localstack.supervisor import ChildPart, Supervisor
from common.localstack.upload_gateway import UploadGateway
from common.platform.config import get_settings

DEMO_FILE = "demo.json"


@dataclass
class DevPorts:
    query: int = 8080
    ingest_trigger: int = 8081
    chunk_embed: int = 8082
    dead_letter: int = 8083
    gcs: int = 9023
    pubsub: int = 8085
    uploads: int = 9024


@dataclass
class PostgresPart:
    """The embedded Postgres as a supervised part: restarted in place, same socket and URL."""

    database: EmbeddedPostgres
    name: str = "postgres"

    def exit_status(self) -> str | None:
        return None if self.database.postmaster_pid() is not None else "the postmaster is gone"

    def restart(self) -> None:
        self.database.restart()

    def stop(self) -> None:
        self.database.stop()


@dataclass
class _Stack:
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(report=say))
    broker: PushBroker | None = None
    gateway: UploadGateway | None = None

    def add(
        self, name: str, start: Callable[[], Child], after_start: Callable[[], None] | None = None
    ) -> None:
        self.supervisor.watch(ChildPart(name, start(), start, after_start))

    def stop(self) -> None:
        self.supervisor.stop_all()  # last started first: functions, emulators, database
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None


def say(message: str) -> None:
    print(message, flush=True)


class DevError(RuntimeError):
    """A start-up problem the user can fix (port taken, stack already running)."""


def run_dev(
    data_dir: Path | None = None, inbox: Path | None = None, ports: DevPorts | None = None
) -> int:
    settings = get_settings()
    data_dir = (data_dir or settings.local_data_dir).resolve()
    inbox = (inbox or Path("inbox")).resolve()
    ports = ports or DevPorts()
    if running_stack_environment(data_dir) is not None:
        raise DevError(f"a dev stack is already running for {data_dir}")
    _check_ports(ports)
    stack = _Stack()
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        environment = _start(stack, settings.bucket, data_dir, ports)
        demo = _demo_tenant(data_dir)
        watcher = InboxWatcher(
            inbox,
            bucket=environment["AI_INFRA_BUCKET"],
            event_sink_url=environment["AI_INFRA_EVENT_SINK_URL"],
            aliases={"demo": demo["project_id"]},
            report=say,
        )
        watcher.prepare([demo["project_id"], "demo"])
        write_state(data_dir, environment)
        _banner(ports, inbox, demo)
        next_sweep = 0.0
        while not stopping:
            stack.supervisor.check()
            watcher.scan()
            if time.monotonic() >= next_sweep:
                _sweep()
                next_sweep = time.monotonic() + get_settings().sweep_interval_seconds
            time.sleep(0.5)
        say("stopping ...")
        return 0
    finally:
        clear_state(data_dir)
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        say("stopped; nothing is left running")


def _sweep(*, republish_queued: bool = False) -> None:
    """The job sweep; `republish_queued` after a restart of the broker (it kept no message) or
    of the worker (the emulator holds back the pushes a killed worker dropped): every queued
    job is published again at once; the worker acknowledges a duplicate without work."""
    from datetime import timedelta

    from common.ingestion.project_indexes import sync_project_indexes
    from common.ingestion.sweeper import sweep_stuck_jobs
    from common.platform.config import get_settings

    try:
        report = sweep_stuck_jobs(republish_after=timedelta(0) if republish_queued else None)
        indexes = sync_project_indexes(min_chunks=get_settings().exact_search_max_chunks)
    except Exception as error:  # e.g. Postgres restarting: say why in one line, sweep again later
        reason = " ".join(str(error).split())[:200]
        say(f"job sweep failed: {type(error).__name__}: {reason}")
        return
    if report.requeued or report.failed or report.republished:
        say(
            f"job sweep: {report.requeued} re-queued, {report.failed} failed, "
            f"{report.republished} republished"
        )
    for name in indexes.built:
        say(f"project index built: {name} ({indexes.build_seconds[name]:.1f} s)")


def _check_ports(ports: DevPorts) -> None:
    for name, port in vars(ports).items():
        if port_open(port):
            raise DevError(f"port {port} ({name}) is already in use")


def _start(stack: _Stack, bucket: str, data_dir: Path, ports: DevPorts) -> dict[str, str]:
    from common.localstack import embedded_pg
    from common.platform import migrate
    from common.platform.db import reset_engine
    from common.platform.messaging import reset_publisher
    from common.platform.storage import get_blob_store, reset_blob_store

    logs = data_dir / "logs"
    say(f"starting the embedded Postgres + pgvector (data in {data_dir / 'pg'}) ...")
    database = embedded_pg.start(data_dir / "pg")
    stack.supervisor.watch(PostgresPart(database))
    environment = {
        "AI_INFRA_MODE": "local",
        "AI_INFRA_DATABASE_URL": database.url,
        "AI_INFRA_BUCKET": bucket,
        "AI_INFRA_STORAGE_EMULATOR_HOST": gcs.emulator_url(ports.gcs),
        "AI_INFRA_EVENT_SINK_URL": f"http://127.0.0.1:{ports.ingest_trigger}/",
        # Signed upload URLs point at the upload gateway, which stores and announces the PUT.
        "AI_INFRA_SIGNED_URL_ENDPOINT": f"http://127.0.0.1:{ports.uploads}",
        # URL sources may name pages served on this machine (never in the cloud).
        "AI_INFRA_URL_FETCH_ALLOW_LOOPBACK": "true",
    }
    os.environ.update(environment)
    _refresh(reset_engine, reset_blob_store, reset_publisher)
    migrate.upgrade()
    say(f"database migrated to {migrate.head_revision()}")

    say(f"starting the GCS emulator on :{ports.gcs} ...")
    stack.add(
        "gcs-emulator",
        lambda: gcs.start_gcs_emulator(port=ports.gcs, data_dir=data_dir / "gcs", log_dir=logs),
    )
    get_blob_store().ensure_bucket(bucket)
    say(f"starting the upload gateway on :{ports.uploads} ...")
    stack.gateway = UploadGateway(ports.uploads, environment["AI_INFRA_EVENT_SINK_URL"], say)
    stack.gateway.start()

    settings = get_settings()
    worker_url = f"http://127.0.0.1:{ports.chunk_embed}/"
    if pubsub.gcloud_available():
        say(f"starting the Pub/Sub emulator on :{ports.pubsub} ...")
        environment["AI_INFRA_PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{ports.pubsub}"
        os.environ.update(environment)
        _refresh(reset_engine, reset_blob_store, reset_publisher)

        def wire() -> None:
            # The emulator keeps nothing across a restart: topics and subscriptions again
            # (lost messages are published again by the job sweep).
            reset_publisher()
            pubsub.wire_topics(
                get_settings(),
                push_endpoint=worker_url,
                dead_letter_endpoint=f"http://127.0.0.1:{ports.dead_letter}/",
            )

        def rewire_and_republish() -> None:
            wire()
            _sweep(republish_queued=True)

        stack.add(
            "pubsub-emulator",
            lambda: pubsub.start_pubsub_emulator(
                port=ports.pubsub,
                project=settings.gcp_project,
                data_dir=data_dir / "pubsub",
                log_dir=logs,
            ),
            after_start=rewire_and_republish,
        )
        wire()
    else:
        say(
            "the Google Cloud SDK (gcloud) is not installed, so the Pub/Sub emulator is not "
            f"available; using the built-in push broker on :{ports.pubsub} instead (same "
            "push format, retries with backoff and dead-lettering; see README)"
        )
        broker = PushBroker(
            ports.pubsub,
            [
                PushSubscription(
                    topic=settings.jobs_topic,
                    endpoint=worker_url,
                    max_delivery_attempts=settings.max_delivery_attempts,
                    dead_letter_topic=settings.dead_letter_topic,
                ),
                PushSubscription(
                    topic=settings.dead_letter_topic,
                    endpoint=f"http://127.0.0.1:{ports.dead_letter}/",
                    max_delivery_attempts=settings.max_delivery_attempts,
                    dead_letter_topic=None,
                ),
            ],
            dead_letter_file=data_dir / "dead-letters.jsonl",
        )
        broker.start()
        stack.broker = broker
        environment["AI_INFRA_PUBSUB_REST_URL"] = broker.url
        os.environ.update(environment)
        _refresh(reset_engine, reset_blob_store, reset_publisher)

    for name in ("chunk_embed", "dead_letter", "ingest_trigger", "query"):
        port = getattr(ports, name)
        say(f"starting {name} on :{port} ...")
        after_start = _republish_queued if name == "chunk_embed" else None
        stack.add(name, _function_starter(name, port, environment, logs), after_start)
    return environment


def _republish_queued() -> None:
    _sweep(republish_queued=True)


def _function_starter(
    name: str, port: int, environment: dict[str, str], logs: Path
) -> Callable[[], Child]:
    return lambda: functions.start_function(name, port=port, env=environment, log_dir=logs)


def _refresh(*resets: object) -> None:
    get_settings.cache_clear()
    for reset in resets:
        reset()  # type: ignore[operator]


def _demo_tenant(data_dir: Path) -> dict[str, str]:
    """The demo team/project/key, created on first run; the raw key is kept only locally."""
    from common.platform.db import transaction
    from common.platform.models import ApiKey, Project, Team
    from common.query.auth import generate_api_key, hash_api_key

    path = data_dir / DEMO_FILE
    if path.exists():
        demo: dict[str, str] = json.loads(path.read_text())
        with transaction() as session:
            if session.get(Project, uuid.UUID(demo["project_id"])) is not None:
                return demo
    raw_key = generate_api_key()
    with transaction() as session:
        team = Team(name=f"demo-{uuid.uuid4().hex[:6]}")
        session.add(team)
        session.flush()
        project = Project(team_id=team.id, name="demo")
        key = ApiKey(
            team_id=team.id, key_hash=hash_api_key(raw_key), key_prefix=raw_key[:12], name="demo"
        )
        session.add_all([project, key])
        session.flush()
        demo = {"team_id": str(team.id), "project_id": str(project.id), "api_key": raw_key}
    path.write_text(json.dumps(demo, indent=2))
    path.chmod(0o600)
    return demo


def _banner(ports: DevPorts, inbox: Path, demo: dict[str, str]) -> None:
    query = f"http://127.0.0.1:{ports.query}"
    say("")
    say("ai-infra is running locally.")
    say(f"  query API      {query}  (OpenAPI: {query}/v1/openapi.json)")
    say(f"  console        {query}/console  (sign in with the demo API key)")
    say(f"  demo project   {demo['project_id']}")
    say(f"  demo API key   {demo['api_key']}")
    say(f"  inbox          {inbox / 'demo'}  (or {inbox}/<project_id>/)")
    say("")
    say("Drop a PDF into the inbox, then ask:")
    body = json.dumps({"question": "What is this document about?"})
    say(
        f"  curl -s {query}/v1/projects/{demo['project_id']}/query "
        f"-H 'Authorization: Bearer {demo['api_key']}' -H 'Content-Type: application/json' "
        f"-d '{body}'"
    )
    say("Or upload over HTTPS (a signed URL, then a PUT of the file to it):")
    fields = '"filename": "report.pdf", "content_type": "application/pdf", "size": $SIZE'
    request = "{" + fields.replace('"', '\\"') + "}"  # inside the double-quoted -d argument
    say("  SIZE=$(wc -c < report.pdf)")
    say(
        f"  URL=$(curl -s {query}/v1/projects/{demo['project_id']}/uploads "
        f"-H 'Authorization: Bearer {demo['api_key']}' -H 'Content-Type: application/json' "
        f'-d "{request}" '
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"upload_url\"])')"
    )
    say(
        "  curl -s -X PUT --upload-file report.pdf -H 'Content-Type: application/pdf' "
        '-H "x-goog-content-length-range: 0,$SIZE" "$URL"'
    )
    say("Press Ctrl-C to stop.")
    sys.stdout.flush()
