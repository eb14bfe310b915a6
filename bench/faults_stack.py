"""`ai-infra dev` driven from outside, as a user (and an unlucky cloud) would: bench/faults.py.

Starts the stack as a subprocess on free ports with a fresh data folder and inbox, reads the
demo tenant from its banner, creates tenants with the `ai-infra` CLI, drops files into
`inbox/<project_id>/`, polls the documents API, reads chunks and jobs from its database, and
kills its parts the way they die in production: a function's process group, the Postgres
postmaster, the Pub/Sub emulator's process group (all SIGKILL). Stops it with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AI_INFRA = str(Path(sys.executable).parent / "ai-infra")


class Output:
    """The stack's terminal output, collected on a thread (and copied to a file)."""

    def __init__(self, process: subprocess.Popen[str], copy: Path) -> None:
        self.lines: list[tuple[float, str]] = []
        self._copy = copy
        self._thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self._thread.start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with self._copy.open("a") as copy:
            for line in process.stdout:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                copy.write(line)
                copy.flush()

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def count(self, needle: str) -> int:
        return sum(needle in line for _, line in list(self.lines))

    def matching(self, pattern: str) -> list[tuple[float, str]]:
        found = re.compile(pattern)
        return [(at, line) for at, line in list(self.lines) if found.search(line)]


@dataclass
class Tenant:
    team: str
    project_id: str
    api_key: str


@dataclass
class Stack:
    process: subprocess.Popen[str]
    output: Output
    ports: dict[str, int]
    data_dir: Path
    inbox: Path
    env: dict[str, str]
    demo: Tenant | None = None
    _engine: Any = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['query']}"

    # --- tenants and files -----------------------------------------------------------------
    def cli(self, *args: str) -> Any:
        """`ai-infra --json ARGS` against this stack; its JSON answer."""
        done = subprocess.run(
            [AI_INFRA, "--json", *args],
            cwd=PROJECT_ROOT,
            env={**self.env, "AI_INFRA_LOCAL_DATA_DIR": str(self.data_dir)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ai-infra {' '.join(args)} failed: {done.stderr.strip()}")
        return json.loads(done.stdout)

    def new_tenant(self, name: str) -> Tenant:
        team = f"{name}-{uuid.uuid4().hex[:6]}"
        self.cli("teams", "create", team)
        project = self.cli("projects", "create", "--team", team, name)
        key = self.cli("keys", "create", "--team", team, "--name", "bench")
        return Tenant(team, str(project["id"]), str(key["key"]))

    def upload(self, tenant: Tenant, folder: Path) -> subprocess.Popen[bytes]:
        """`ai-infra upload --project P FOLDER`, running in the background."""
        return subprocess.Popen(
            [AI_INFRA, "upload", "--project", tenant.project_id, str(folder)],
            cwd=PROJECT_ROOT,
            env={**self.env, "AI_INFRA_LOCAL_DATA_DIR": str(self.data_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def drop(self, tenant: Tenant, staged: Path) -> float:
        """Move a staged file into the tenant's inbox folder (atomically); when it was dropped."""
        folder = self.inbox / tenant.project_id
        folder.mkdir(parents=True, exist_ok=True)
        staged.replace(folder / staged.name)
        return time.monotonic()

    def documents(self, tenant: Tenant) -> list[dict[str, Any]] | None:
        """Every document of the tenant's project through the API; None while it is down."""
        documents: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            while True:
                params: dict[str, Any] = {"limit": 100}
                if cursor:
                    params["cursor"] = cursor
                page = httpx.get(
                    f"{self.base}/v1/projects/{tenant.project_id}/documents",
                    params=params,
                    headers={"Authorization": f"Bearer {tenant.api_key}"},
                    timeout=30,
                )
                if page.status_code != 200:
                    return None
                body = page.json()
                documents += body["documents"]
                cursor = body.get("next_cursor")
                if not cursor:
                    return documents
        except httpx.HTTPError:
            return None

    # --- the database ----------------------------------------------------------------------
    def sql(self, query: str, **params: Any) -> list[Any] | None:
        """Rows of one read-only query; None while the database is unreachable."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        if self._engine is None:
            url = json.loads((self.data_dir / "dev.json").read_text())["environment"][
                "AI_INFRA_DATABASE_URL"
            ]
            self._engine = create_engine(url, pool_pre_ping=True, pool_size=1)
        try:
            with self._engine.connect() as connection:
                return list(connection.execute(text(query), params).all())
        except (SQLAlchemyError, OSError):
            return None

    def running_jobs(self, tenant: Tenant) -> int:
        rows = self.sql(
            "SELECT count(*) FROM ingestion_jobs j JOIN documents d ON d.id = j.document_id"
            " WHERE d.project_id = :p AND j.status = 'running'",
            p=tenant.project_id,
        )
        return int(rows[0][0]) if rows else 0

    # --- faults ----------------------------------------------------------------------------
    def family(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return children

    def _group_leader(self, needle: str) -> int:
        for child in self.family():
            with contextlib.suppress(psutil.Error):
                if needle in " ".join(child.cmdline()) and os.getpgid(child.pid) == child.pid:
                    return int(child.pid)
        raise RuntimeError(f"no process group running {needle!r}")

    def kill_function(self, name: str) -> None:
        """SIGKILL to the function's process group, as when Cloud Run loses an instance."""
        os.killpg(self._group_leader(f"--target {name}"), signal.SIGKILL)

    def kill_postgres(self) -> None:
        pid = int((self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)

    def kill_pubsub(self) -> None:
        os.killpg(self._group_leader("emulators pubsub start"), signal.SIGKILL)

    # --- stop ------------------------------------------------------------------------------
    def stop(self) -> str:
        """Ctrl-C and wait; SIGKILL the group if it hangs. How it ended, in words."""
        if self._engine is not None:
            self._engine.dispose()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            return "did not stop within 90 s of Ctrl-C; killed"
        clean = "nothing is left running" in self.output.text()
        return f"exit {self.process.returncode}" + ("" if clean else " (no clean-stop line)")


def start_stack(work: Path, env: dict[str, str], timeout: float = 300) -> Stack:
    """`ai-infra dev` on free ports (the upload gateway's too, so two stacks can run side by
    side) with its own data folder and inbox under `work`."""
    from common.localstack.processes import free_port

    names = ("query", "ingest", "chunk", "dead", "gcs", "pubsub", "uploads")
    ports = {name: free_port() for name in names}
    data_dir, inbox = work / "data", work / "inbox"
    command = [
        AI_INFRA, "dev",
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
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stack = Stack(process, Output(process, work / "dev-output.log"), ports, data_dir, inbox, env)
    deadline = time.monotonic() + timeout
    while "Press Ctrl-C to stop." not in stack.output.text():
        if process.poll() is not None or time.monotonic() > deadline:
            stack.stop()
            raise RuntimeError(f"ai-infra dev did not come up:\n{stack.output.text()[-3000:]}")
        time.sleep(0.2)
    banner = stack.output.text()
    project = re.search(r"demo project\s+(\S+)", banner)
    key = re.search(r"demo API key\s+(\S+)", banner)
    assert project and key, banner
    stack.demo = Tenant("demo", project.group(1), key.group(1))
    return stack


def without_gcloud(path: str, shadow: Path) -> str:
    """PATH without `gcloud` (so `ai-infra dev` uses its push broker): every folder holding it
    replaced by one of links to its other programs."""
    folders = []
    for number, entry in enumerate(path.split(os.pathsep)):
        if not entry or not (Path(entry) / "gcloud").exists():
            folders.append(entry)
            continue
        copy = shadow / str(number)
        copy.mkdir(parents=True, exist_ok=True)
        for item in Path(entry).iterdir():
            if item.name != "gcloud" and not (copy / item.name).exists():
                (copy / item.name).symlink_to(item)
        folders.append(str(copy))
    return os.pathsep.join(folders)
