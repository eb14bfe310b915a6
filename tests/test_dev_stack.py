"""`ai-infra dev` end to end, started exactly as the README says, stopped with Ctrl-C.

Drop a multi-page PDF into the inbox, wait until it is ready through the query API, ask a
question with the printed key, check the answer cites the right page, then SIGINT and check
that no child process or port is left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from common.localstack.processes import free_port, port_open
from tests.pdfs import make_pdf, page_text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

README_COMMAND = ["uv", "run", "--extra", "local", "ai-infra", "dev"]
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


def test_dev_stack_ingests_an_inbox_pdf_and_answers_citing_its_page(
    project_root: Path, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("query", "ingest", "chunk", "dead", "gcs", "pubsub")}
    command = [
        *README_COMMAND,
        "--data-dir", str(tmp_path / "data"),
        "--inbox", str(tmp_path / "inbox"),
        "--query-port", str(ports["query"]),
        "--ingest-port", str(ports["ingest"]),
        "--chunk-port", str(ports["chunk"]),
        "--dead-letter-port", str(ports["dead"]),
        "--gcs-port", str(ports["gcs"]),
        "--pubsub-port", str(ports["pubsub"]),
    ]  # fmt: skip
    # A newcomer's shell: no AI_INFRA_* settings from this test session.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
    process = subprocess.Popen(
        command,
        cwd=project_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(process)
    try:
        output.wait_for("Press Ctrl-C to stop.", 240, process)
        banner = output.text()
        project_id = re.search(r"demo project\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        api_key = re.search(r"demo API key\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        assert "curl" in banner and api_key in banner
        family = psutil.Process(process.pid).children(recursive=True)

        pages = [page_text(1, 80), page_text(2, 80), f"{page_text(3, 40)} {FACT}", page_text(4, 80)]
        drop = tmp_path / "staging" / "zephyr manual.pdf"
        drop.parent.mkdir()
        drop.write_bytes(make_pdf(pages))
        shutil.copy(drop, tmp_path / "inbox" / "demo" / drop.name)

        base = f"http://127.0.0.1:{ports['query']}"
        headers = {"Authorization": f"Bearer {api_key}"}
        deadline = time.monotonic() + 240
        status = None
        while time.monotonic() < deadline:
            listing = httpx.get(f"{base}/v1/projects/{project_id}/documents", headers=headers)
            assert listing.status_code == 200, listing.text
            documents = listing.json()["documents"]
            status = documents[0]["status"] if documents else None
            if status in ("ready", "failed"):
                break
            time.sleep(0.5)
        assert status == "ready", output.text()

        answer = httpx.post(
            f"{base}/v1/projects/{project_id}/query",
            headers=headers,
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
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0, output.text()
    assert "nothing is left running" in output.text()
    for child in family:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child
    for port in ports.values():
        assert not port_open(port), f"port {port} still open"
