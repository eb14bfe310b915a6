"""Cold starts: what a fresh instance of each function costs before it does useful work.

Cloud Run starts a new process on every scale-out; the request that caused it waits for the
whole start. For each function (query, ingest_trigger, chunk_embed, dead_letter, sweep), in
`--runs` fresh processes each (default 5; median, min and max reported):

- import: a fresh interpreter loads `functions/<name>/main.py` as functions-framework does
  (`spec_from_file_location("main", ...)`, then the target looked up), timed with
  `perf_counter` inside the child (functions-framework's own Flask import included, since
  main.py imports it); `deployed` is the same for the source archive's generated root
  `main.py` (`ai-infra package`), which is what Cloud Run loads: it re-exports all five entry
  points. `process` is the child's wall time seen from outside (interpreter start to exit).
- first answer: `python -m functions_framework` serving the function over real HTTP (as
  `ai-infra dev` does), against an embedded Postgres (migrated, one team, project and API key,
  a 12-chunk document), the GCS emulator, a built-in Pub/Sub push broker and the Vertex AI
  stand-in (`common/localstack/vertex_standin.py`: embeddings and Gemini answers). Timed from
  just before the process is spawned until the first request's 200: for query an answer-mode
  `POST /v1/projects/{id}/query` (question embedded by Vertex, hybrid retrieval, Gemini answer);
  for chunk_embed one job message for a new 3-chunk text document (download, extraction,
  chunking, Vertex embeddings, the chunk write); for ingest_trigger the finalize event of a new
  object; for dead_letter the dead letter of a queued job; for sweep an empty sweep. `listen`
  is when the port first accepted a connection, `second` the latency of a second, equal request
  (deferred imports must be paid once, by the first).

Run: uv run --extra local python -m bench.coldstart [--runs 5] [--no-requests]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS: dict[str, str] = {
    "query": "http",
    "ingest_trigger": "cloudevent",
    "chunk_embed": "cloudevent",
    "dead_letter": "cloudevent",
    "sweep": "http",
}
# Reported per child: which of these the import pulled in.
HEAVY = (
    "sqlalchemy",
    "sqlalchemy.orm",
    "numpy",
    "pgvector",
    "httpx",
    "google.genai",
    "google.cloud.storage",
    "google.cloud.pubsub_v1",
    "pydantic",
    "pydantic_settings",
)
IMPORT_CHILD = """
import time
started = time.perf_counter()
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["main"] = module
spec.loader.exec_module(module)
getattr(module, sys.argv[2])
elapsed = time.perf_counter() - started
heavy = [name for name in json.loads(sys.argv[3]) if name in sys.modules]
print(json.dumps({"import_s": elapsed, "modules": len(sys.modules), "heavy": heavy}))
"""
QUESTION = "How long may a bicycle ride on the ferry without a ticket?"
DOCUMENT = [
    "Bicycles ride the harbour ferry free of charge on weekdays before nine.",
    "A bicycle on the ferry after nine needs a day ticket of two euros.",
    "Dogs on a lead travel free; other animals need a cage.",
    "The ferry leaves the north pier every twenty minutes from six to midnight.",
    "Tickets are sold at the pier machines and on board, cash or card.",
    "Children under six travel free with an adult.",
    "Season tickets cover the ferry and the harbour buses for a month.",
    "The last ferry on Sundays leaves at eleven.",
    "Luggage up to two bags is free; more needs a luggage ticket.",
    "Electric scooters must be folded on board.",
    "In storms the ferry may be cancelled; check the board at the pier.",
    "Lost items are kept at the north pier office for thirty days.",
]


def stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


# --- import time --------------------------------------------------------------------------
def measure_import(source: Path, target: str, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHILD, str(source), target, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=False,
        cwd=source.parent,
        env=env,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"importing {source} failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["process_s"] = wall
    return figures


def import_times(runs: int, env: dict[str, str], work: Path) -> dict[str, dict[str, Any]]:
    from common.platform.packaging import entry_points, render_main

    deployed = work / "archive"
    deployed.mkdir()
    (deployed / "main.py").write_text(render_main(entry_points()))
    results: dict[str, dict[str, Any]] = {}
    for name in FUNCTIONS:
        local = [
            measure_import(PROJECT_ROOT / "functions" / name / "main.py", name, env)
            for _ in range(runs)
        ]
        archive = [measure_import(deployed / "main.py", name, env) for _ in range(runs)]
        results[name] = {
            "import_s": stats([r["import_s"] for r in local]),
            "process_s": stats([r["process_s"] for r in local]),
            "deployed_s": stats([r["import_s"] for r in archive]),
            "modules": local[-1]["modules"],
            "heavy": local[-1]["heavy"],
        }
    return results


# --- first answered request ---------------------------------------------------------------
@dataclass
class Stack:
    env: dict[str, str]
    bucket: str
    tenant: Any
    logs: Path


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline: float) -> float:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the function exited before listening")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return time.perf_counter()
        time.sleep(0.005)
    raise RuntimeError(f"nothing listened on {port}")


def first_answer(
    name: str, stack: Stack, request: Callable[[str], Any], log: Path
) -> dict[str, float]:
    """Spawn the function, wait for its port, send `request` twice; seconds from the spawn."""
    import httpx

    from common.localstack.processes import free_port, spawn

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(PROJECT_ROOT / "functions" / name / "main.py"),
        "--target",
        name,
        "--signature-type",
        FUNCTIONS[name],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    child = spawn(name, command, port=port, log_path=log, env=stack.env)
    try:
        listening = _wait_listening(port, child.process, time.monotonic() + 60)
        response: httpx.Response = request(url)
        answered = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:500]}")
        again: httpx.Response = request(url)
        second = time.perf_counter() - answered
        if again.status_code != 200:
            raise RuntimeError(f"{name} answered {again.status_code}: {again.text[:500]}")
    except Exception as error:
        raise RuntimeError(f"{error}\n--- {name} log\n{child.log_tail(40)}") from None
    finally:
        child.stop()
    return {
        "listen_s": listening - started,
        "first_s": answered - started,
        "second_s": second,
    }


def _job_message(stack: Stack, text: str) -> dict[str, Any]:
    from common.platform.events import JobMessage
    from common.platform.storage import get_blob_store
    from tests.fixtures.factories import record_upload

    name = f"{stack.tenant.project_id}/cold/{uuid.uuid4().hex}.txt"
    blob = get_blob_store().upload(stack.bucket, name, text.encode(), "text/plain")
    document_id, job_id = record_upload(stack.tenant, blob)
    message = JobMessage(job_id, document_id, blob.bucket, blob.name, blob.generation, None)
    return message.to_payload()


def _post_job(url: str, payload: dict[str, Any]) -> Any:
    import httpx

    body = {
        "message": {
            "data": base64.b64encode(json.dumps(payload).encode()).decode(),
            "attributes": {},
            "messageId": uuid.uuid4().hex,
            "publishTime": "2026-11-25T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/cold-start",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-id": uuid.uuid4().hex,
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/ingest-jobs",
        "Content-Type": "application/json",
    }
    return httpx.post(url + "/", headers=headers, content=json.dumps(body), timeout=120)


def requests_for(stack: Stack) -> dict[str, Callable[[str], Any]]:
    import httpx

    from common.platform.object_events import FINALIZED, send_storage_event
    from common.platform.storage import get_blob_store

    def query(url: str) -> Any:
        return httpx.post(
            f"{url}/v1/projects/{stack.tenant.project_id}/query",
            headers={"Authorization": f"Bearer {stack.tenant.api_key}"},
            json={"question": QUESTION, "mode": "answer"},
            timeout=120,
        )

    def chunk_embed(url: str) -> Any:
        text = "\n\n".join(" ".join(DOCUMENT) * 4 for _ in range(3))
        return _post_job(url, _job_message(stack, text))

    def dead_letter(url: str) -> Any:
        return _post_job(url, _job_message(stack, DOCUMENT[0]))

    def ingest_trigger(url: str) -> Any:
        name = f"{stack.tenant.project_id}/cold/{uuid.uuid4().hex}.txt"
        blob = get_blob_store().upload(stack.bucket, name, DOCUMENT[1].encode(), "text/plain")
        return send_storage_event(url + "/", FINALIZED, blob, timeout=120)

    def sweep(url: str) -> Any:
        return httpx.post(url + "/", json={}, timeout=120)

    return {
        "query": query,
        "ingest_trigger": ingest_trigger,
        "chunk_embed": chunk_embed,
        "dead_letter": dead_letter,
        "sweep": sweep,
    }


def seed(stack: Stack) -> None:
    """One team, project and key with one ready 12-chunk document embedded by the stand-in."""
    from tests.fixtures.factories import make_tenant
    from tests.fixtures.query import insert_document

    stack.tenant = make_tenant("cold")
    insert_document(stack.tenant, "Ferry rules", DOCUMENT)


def first_answers(runs: int, work: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    from common.localstack import embedded_pg, gcs
    from common.localstack.processes import free_port
    from common.localstack.push_broker import PushBroker
    from common.platform import migrate
    from common.platform.config import get_settings
    from common.platform.db import reset_engine
    from common.platform.messaging import reset_publisher
    from common.platform.storage import get_blob_store, reset_blob_store

    logs = work / "logs"
    database = embedded_pg.start(work / "pg", database="cold")
    gcs_port = free_port()
    storage = gcs.start_gcs_emulator(port=gcs_port, data_dir=None, log_dir=logs)
    # No subscriptions: what the functions publish is accepted and dropped (quietly).
    logging.getLogger("common.localstack.push_broker").setLevel(logging.ERROR)
    broker = PushBroker(free_port(), [], work / "dead-letters.jsonl")
    broker.start()
    stack_env = {
        **env,
        "AI_INFRA_DATABASE_URL": database.url,
        "AI_INFRA_STORAGE_EMULATOR_HOST": gcs.emulator_url(gcs_port),
        "AI_INFRA_PUBSUB_REST_URL": broker.url,
    }
    os.environ.update(stack_env)
    results: dict[str, dict[str, Any]] = {}
    try:
        get_settings.cache_clear()
        reset_engine()
        reset_blob_store()
        reset_publisher()
        migrate.upgrade()
        stack = Stack(stack_env, get_settings().bucket, None, logs)
        get_blob_store().ensure_bucket(stack.bucket)
        seed(stack)
        requests = requests_for(stack)
        for name in FUNCTIONS:
            samples = [
                first_answer(name, stack, requests[name], logs / f"{name}-{i}.log")
                for i in range(runs)
            ]
            results[name] = {
                key: stats([s[key] for s in samples]) for key in ("listen_s", "first_s", "second_s")
            }
    finally:
        reset_engine()
        broker.stop()
        storage.stop()
        database.stop()
    return results


# --- report -------------------------------------------------------------------------------
def report(imports: dict[str, dict[str, Any]], answers: dict[str, dict[str, Any]]) -> None:
    def cell(figures: dict[str, float]) -> str:
        return f"{figures['median']:.3f} ({figures['min']:.2f}-{figures['max']:.2f})"

    print("seconds: median (min-max)")
    print(f"{'function':<15} {'import':>17} {'process':>17} {'deployed':>17} {'modules':>7}  heavy")
    for name, figures in imports.items():
        print(
            f"{name:<15} {cell(figures['import_s']):>17} {cell(figures['process_s']):>17} "
            f"{cell(figures['deployed_s']):>17} {figures['modules']:>7}  "
            f"{','.join(figures['heavy']) or '-'}"
        )
    if answers:
        print()
        print(f"{'function':<15} {'listen':>17} {'first answer':>17} {'second':>17}")
        for name, figures in answers.items():
            print(
                f"{name:<15} {cell(figures['listen_s']):>17} {cell(figures['first_s']):>17} "
                f"{cell(figures['second_s']):>17}"
            )
    summary: dict[str, Any] = {}
    for name, figures in imports.items():
        summary[f"{name}_import_s"] = round(figures["import_s"]["median"], 3)
        summary[f"{name}_process_s"] = round(figures["process_s"]["median"], 3)
        summary[f"{name}_deployed_import_s"] = round(figures["deployed_s"]["median"], 3)
    for name, figures in answers.items():
        summary[f"{name}_listen_s"] = round(figures["listen_s"]["median"], 3)
        summary[f"{name}_first_answer_s"] = round(figures["first_s"]["median"], 3)
        summary[f"{name}_second_request_s"] = round(figures["second_s"]["median"], 4)
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per figure")
    parser.add_argument(
        "--no-requests", action="store_true", help="import times only (no database, no HTTP)"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from common.localstack.vertex_standin import start_model_standin

    work = Path(tempfile.mkdtemp(prefix="ai-infra-bench-cold-"))
    try:
        with start_model_standin() as standin:
            env = {
                **os.environ,
                **standin.env(),
                "PYTHONPATH": str(PROJECT_ROOT),
                "PYTHONUNBUFFERED": "1",
                "AI_INFRA_EMBEDDING_PROVIDER": "vertex",
                "AI_INFRA_EMBEDDING_MODEL": "text-embedding-005",
                "AI_INFRA_EMBEDDING_DIM": "768",
                "AI_INFRA_GENERATION_PROVIDER": "gemini",
                "AI_INFRA_MODEL_RETRY_BASE_SECONDS": "0.0",
                "AI_INFRA_LOG_LEVEL": "WARNING",
            }
            imports = import_times(args.runs, env, work)
            answers = {} if args.no_requests else first_answers(args.runs, work, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(imports, answers)


if __name__ == "__main__":
    main()
