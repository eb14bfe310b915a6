"""`ai-infra dev` end to end, started exactly as the README says, stopped with Ctrl-C.

Drop a multi-page PDF into the inbox, wait until it is ready through the query API, ask a
question with the printed key, check the answer cites the right page, then SIGINT and check
that no child process or port is left behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from common.localstack.processes import free_port, port_open
from tests.pdfs import make_pdf, page_text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

README_COMMAND = ["uv", "run", "--extra", "local", "ai-infra", "dev"]
CLI = ["uv", "run", "--extra", "local", "ai-infra"]
FACT = "The Zephyr turbine warranty lasts exactly seven years from installation."


class Output:
    """Collects the stack's terminal output on a thread so reads never block the test."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self._thread.start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float, process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"never saw {needle!r}; output:\n{self.text()}")


@dataclass
class DevStack:
    """A running `ai-infra dev`, started as the README says, with its ports and banner values."""

    process: subprocess.Popen[str]
    output: Output
    ports: dict[str, int]
    data_dir: Path
    inbox: Path
    project_id: str = ""
    api_key: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['query']}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def documents(self) -> list[dict[str, Any]]:
        listing = httpx.get(
            f"{self.base}/v1/projects/{self.project_id}/documents", headers=self.headers
        )
        assert listing.status_code == 200, listing.text
        documents: list[dict[str, Any]] = listing.json()["documents"]
        return documents

    def family(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return children


def start_dev_stack(
    project_root: Path, tmp_path: Path, settings: dict[str, str] | None = None
) -> DevStack:
    """`ai-infra dev` as a newcomer starts it; `settings`: AI_INFRA_* variables to set."""
    ports = {
        name: free_port()
        for name in ("query", "ingest", "chunk", "dead", "gcs", "pubsub", "uploads")
    }
    data_dir, inbox = tmp_path / "data", tmp_path / "inbox"
    command = [
        *README_COMMAND,
        "--data-dir", str(data_dir),
        "--inbox", str(inbox),
        "--query-port", str(ports["query"]),
        "--ingest-port", str(ports["ingest"]),
        "--chunk-port", str(ports["chunk"]),
        "--dead-letter-port", str(ports["dead"]),
        "--gcs-port", str(ports["gcs"]),
        "--pubsub-port", str(ports["pubsub"]),
        "--uploads-port", str(ports["uploads"]),
    ]  # fmt: skip
    # A newcomer's shell: no AI_INFRA_* settings from this test session.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
    env.update(settings or {})
    process = subprocess.Popen(
        command,
        cwd=project_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stack = DevStack(process, Output(process), ports, data_dir, inbox)
    try:
        stack.output.wait_for("Press Ctrl-C to stop.", 240, process)
    except BaseException:
        stop_dev_stack(stack)
        raise
    banner = stack.output.text()
    stack.project_id = re.search(r"demo project\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
    stack.api_key = re.search(r"demo API key\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
    return stack


def function_process(stack: DevStack, name: str) -> psutil.Process:
    """The process `ai-infra dev` started for a function (the leader of its process group)."""
    [leader] = [
        p
        for p in stack.family()
        if f"--target {name}" in " ".join(p.cmdline()) and os.getpgid(p.pid) == p.pid
    ]
    return leader


def stop_dev_stack(stack: DevStack) -> None:
    """Ctrl-C, then check it ended cleanly and left no process or port behind."""
    family = stack.family() if stack.process.poll() is None else []
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
    try:
        stack.process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(stack.process.pid, signal.SIGKILL)
        raise
    assert stack.process.returncode == 0, stack.output.text()
    assert "nothing is left running" in stack.output.text()
    for child in family:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child
    for port in stack.ports.values():
        assert not port_open(port), f"port {port} still open"


def wait_for_status(
    stack: DevStack, title: str, wanted: set[str], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    document: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        document = next((d for d in stack.documents() if d["title"] == title), None)
        if document is not None and document["status"] in wanted:
            return document
        time.sleep(0.2)
    raise AssertionError(f"{title} is {document}, not {wanted}:\n{stack.output.text()}")


def _ingests_an_inbox_pdf_and_answers_citing_its_page(stack: DevStack, tmp_path: Path) -> None:
    """A PDF dropped into the inbox with a Bedrock-style sidecar: ready, filtered by its
    attributes, and cited by its page."""
    assert "curl" in stack.output.text() and stack.api_key in stack.output.text()
    pages = [page_text(1, 80), page_text(2, 80), f"{page_text(3, 40)} {FACT}", page_text(4, 80)]
    drop = tmp_path / "staging" / "zephyr manual.pdf"
    drop.parent.mkdir(exist_ok=True)
    drop.write_bytes(make_pdf(pages))
    # Its attributes come as a Bedrock-style sidecar dropped next to it (in either order).
    sidecar = stack.inbox / "demo" / f"{drop.name}.metadata.json"
    sidecar.write_text(json.dumps({"metadataAttributes": {"product": "zephyr", "year": 2025}}))
    shutil.copy(drop, stack.inbox / "demo" / drop.name)

    document = wait_for_status(stack, drop.name, {"ready", "failed"}, 240)
    assert document["status"] == "ready", stack.output.text()
    assert {k: document["attributes"].get(k) for k in ("product", "year")} == {
        "product": "zephyr",
        "year": 2025,
    }
    patched = httpx.patch(
        f"{stack.base}/v1/documents/{document['id']}",
        headers=stack.headers,
        json={"metadata": {"year": 2026}},
        timeout=60,
    )
    assert patched.status_code == 200 and patched.json()["attributes"]["year"] == 2026
    for wanted, hits in ((2026, True), (2025, False)):
        filtered = httpx.post(
            f"{stack.base}/v1/projects/{stack.project_id}/query",
            headers=stack.headers,
            json={
                "question": "How long does the Zephyr turbine warranty last?",
                "mode": "retrieve",
                "filter": {"equals": {"key": "year", "value": wanted}},
            },
            timeout=120,
        )
        assert filtered.status_code == 200, filtered.text
        assert bool(filtered.json()["citations"]) is hits

    answer = httpx.post(
        f"{stack.base}/v1/projects/{stack.project_id}/query",
        headers=stack.headers,
        json={"question": "How long does the Zephyr turbine warranty last?"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "seven years" in body["answer"]
    assert body["citations"], body
    cited = body["citations"][0]
    assert cited["title"] == "zephyr manual.pdf"
    assert cited["page_start"] <= 3 <= cited["page_end"]


def _chunks(stack: DevStack, document_id: str) -> list[tuple[int, str, int | None]]:
    from sqlalchemy import create_engine, text

    url = json.loads((stack.data_dir / "dev.json").read_text())["environment"][
        "AI_INFRA_DATABASE_URL"
    ]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT chunk_index, content, page_start FROM document_chunks"
                    " WHERE document_id = :id ORDER BY chunk_index"
                ),
                {"id": document_id},
            ).all()
    finally:
        engine.dispose()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


# Kill tests: a lost job is taken over once its lease runs out and a sweep republishes it; the
# shortest lease the settings allow and frequent sweeps keep those tests short.
FAST_RECOVERY = {"AI_INFRA_JOB_LEASE_SECONDS": "15", "AI_INFRA_SWEEP_INTERVAL_SECONDS": "3"}


def test_an_inbox_pdf_is_cited_by_its_page_and_killed_processes_heal_unaided(
    project_root: Path, tmp_path: Path
) -> None:
    """The README's stack (one stack for both parts: each start costs half a minute):

    1. a PDF dropped into the inbox with a sidecar becomes ready, filters by its attributes and
       answers citing its page;
    2. kill -9 of chunk_embed while it embeds: the stack restarts it, the job is taken over once
       its lease runs out, and the document ends ready with exactly a clean run's chunks; then
       Postgres is killed under a waiting `ai-infra upload --wait`."""
    # Short leases and sweeps only to keep the kills short; the mechanism is the same.
    stack = start_dev_stack(project_root, tmp_path, FAST_RECOVERY)
    try:
        _ingests_an_inbox_pdf_and_answers_citing_its_page(stack, tmp_path)
        pdf = make_pdf([page_text(n, 400) for n in range(1, 41)])
        staging = tmp_path / "staging"
        staging.mkdir(exist_ok=True)
        (staging / "crash.pdf").write_bytes(pdf)
        shutil.copy(staging / "crash.pdf", stack.inbox / "demo" / "crash.pdf")
        wait_for_status(stack, "crash.pdf", {"processing"}, 120)
        time.sleep(1.0)  # well inside the embedding stage
        # The whole function (functions-framework's server and its worker), as when Cloud Run
        # loses an instance: SIGKILL to its process group.
        os.killpg(function_process(stack, "chunk_embed").pid, signal.SIGKILL)
        killed_at = time.monotonic()
        healed = wait_for_status(stack, "crash.pdf", {"ready", "failed"}, 120)
        assert healed["status"] == "ready", stack.output.text()
        assert time.monotonic() - killed_at <= 120
        assert healed["last_job"]["attempts"] == 2
        lines = stack.output.text()
        assert re.search(r"chunk_embed stopped \(killed by signal 9\); restarting in \d+s", lines)
        assert "chunk_embed restarted" in lines
        assert "Traceback" not in lines

        # A clean run of the same bytes under another name: the same chunks, none twice.
        (staging / "clean.pdf").write_bytes(pdf)
        shutil.copy(staging / "clean.pdf", stack.inbox / "demo" / "clean.pdf")
        clean = wait_for_status(stack, "clean.pdf", {"ready", "failed"}, 120)
        assert clean["status"] == "ready"
        healed_chunks = _chunks(stack, healed["id"])
        assert healed_chunks and healed_chunks == _chunks(stack, clean["id"])

        # Postgres killed while a user waits on `ai-infra upload --wait`: the stack restarts
        # it and the command rides out the outage, with no traceback.
        (staging / "outage.pdf").write_bytes(make_pdf([page_text(n, 400) for n in range(1, 21)]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
        env["AI_INFRA_LOCAL_DATA_DIR"] = str(stack.data_dir)
        upload = subprocess.Popen(
            [*CLI, "upload", "--project", stack.project_id, str(staging / "outage.pdf"), "--wait"],
            cwd=project_root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_status(stack, "outage.pdf", {"processing"}, 120)
        postmaster = int((stack.data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        stdout, stderr = upload.communicate(timeout=200)
        assert upload.returncode == 0, stdout + stderr
        assert "Traceback" not in stdout + stderr
        assert "ready" in stdout
        stack.output.wait_for("postgres restarted", 60, stack.process)
        assert "postgres stopped (the postmaster is gone)" in stack.output.text()
    finally:
        stop_dev_stack(stack)


def wait_for_any_status(stack: DevStack, titles: list[str], wanted: str, timeout: float) -> str:
    """The title of the first of `titles` seen in status `wanted`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for document in stack.documents():
            if document["title"] in titles and document["status"] == wanted:
                return str(document["title"])
        time.sleep(0.2)
    raise AssertionError(f"none of {titles} became {wanted}:\n{stack.output.text()}")


def _deferred(stack: DevStack) -> int:
    from sqlalchemy import create_engine, text

    url = json.loads((stack.data_dir / "dev.json").read_text())["environment"][
        "AI_INFRA_DATABASE_URL"
    ]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM ingestion_jobs WHERE deferred_at IS NOT NULL")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_deferred_jobs_and_a_model_switch_survive_killed_workers_unaided(
    project_root: Path, tmp_path: Path
) -> None:
    """One stack, two kill -9s of chunk_embed, each healed by the restarted stack alone.

    1. One ingestion slot: one job runs, the rest wait deferred; the worker is killed mid-job:
       the job is taken over and the deferred ones are released one by one, none spending an
       attempt.
    2. `ai-infra embeddings switch` (Vertex AI: the stand-in, slow on purpose); the worker is
       killed while the re-embedding jobs run: they are taken over and the project switches
       once every document has its new vectors."""
    from common.localstack.vertex_standin import STANDIN_TOKEN, start_model_standin

    with start_model_standin() as standin:
        standin.latency = 0.4  # each embedding request: a re-embedding job takes a while
        vertex = {
            "AI_INFRA_VERTEX_BASE_URL": standin.base_url,
            "AI_INFRA_VERTEX_ACCESS_TOKEN": STANDIN_TOKEN,
            **FAST_RECOVERY,
        }
        stack = start_dev_stack(project_root, tmp_path, {"AI_INFRA_INGEST_CAPACITY": "1", **vertex})
        try:
            names = _deferred_jobs_survive_a_kill(stack, tmp_path)
            _model_switch_survives_a_kill(stack, project_root, standin, vertex, len(names))
        finally:
            stop_dev_stack(stack)


def _deferred_jobs_survive_a_kill(stack: DevStack, tmp_path: Path) -> list[str]:
    staging = tmp_path / "staging"
    staging.mkdir()
    names = [f"queue-{n}.pdf" for n in range(3)]
    for number, name in enumerate(names):
        (staging / name).write_bytes(make_pdf([page_text(p, 300) for p in range(1, 9 + number)]))
    for name in names:
        shutil.copy(staging / name, stack.inbox / "demo" / name)
    running = wait_for_any_status(stack, names, "processing", 120)
    deadline = time.monotonic() + 60
    while _deferred(stack) == 0:
        assert time.monotonic() < deadline, "no job was deferred"
        time.sleep(0.2)
    os.killpg(function_process(stack, "chunk_embed").pid, signal.SIGKILL)
    for name in names:
        document = wait_for_status(stack, name, {"ready", "failed"}, 240)
        assert document["status"] == "ready", stack.output.text()
        assert document["last_job"]["attempts"] == (2 if name == running else 1), name
    assert _deferred(stack) == 0
    return names


def _model_switch_survives_a_kill(
    stack: DevStack, project_root: Path, standin: Any, vertex: dict[str, str], documents: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
    env.update({"AI_INFRA_LOCAL_DATA_DIR": str(stack.data_dir), **vertex})
    restarts = stack.output.text().count("chunk_embed restarted")
    switch = subprocess.run(
        [*CLI, "--json", "embeddings", "switch", "-m", "gemini-embedding-001",
         "-d", "768", "-p", stack.project_id, "--yes"],
        cwd=project_root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert switch.returncode == 0, switch.stdout + switch.stderr
    assert json.loads(switch.stdout)["projects"][0]["jobs_queued"] == documents
    deadline = time.monotonic() + 60
    while not standin.requests:
        assert time.monotonic() < deadline, "no re-embedding request reached Vertex"
        time.sleep(0.1)
    os.killpg(function_process(stack, "chunk_embed").pid, signal.SIGKILL)
    deadline = time.monotonic() + 240
    while True:
        status = subprocess.run(
            [*CLI, "--json", "embeddings", "status", "-p", stack.project_id],
            cwd=project_root, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert status.returncode == 0, status.stdout + status.stderr
        [row] = json.loads(status.stdout)
        if row["active"].startswith("gemini-embedding-001 (768)"):
            break
        assert time.monotonic() < deadline, (row, stack.output.text())
        time.sleep(1)
    assert row["pending"] is None and row["previous"].startswith("all-MiniLM-L6-v2")
    assert stack.output.text().count("chunk_embed restarted") > restarts
    answer = httpx.post(
        f"{stack.base}/v1/projects/{stack.project_id}/query",
        headers=stack.headers,
        json={"question": "What does page 3 say about topic3x1?", "mode": "retrieve"},
        timeout=120,
    )
    assert answer.status_code == 200 and answer.json()["citations"], answer.text
