"""Serve a function target with `functions-framework`, one process per function (as Cloud Run)."""

from __future__ import annotations

import sys
from pathlib import Path

from common.localstack.processes import Child, spawn

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# name -> (source file, target, signature type)
FUNCTIONS: dict[str, tuple[str, str, str]] = {
    "query": ("functions/query/main.py", "query", "http"),
    "ingest_trigger": ("functions/ingest_trigger/main.py", "ingest_trigger", "cloudevent"),
    "chunk_embed": ("functions/chunk_embed/main.py", "chunk_embed", "cloudevent"),
    "dead_letter": ("functions/dead_letter/main.py", "dead_letter", "cloudevent"),
}


def start_function(
    name: str, *, port: int, env: dict[str, str], log_dir: Path, timeout: float = 60.0
) -> Child:
    source, target, signature = FUNCTIONS[name]
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(PROJECT_ROOT / source),
        "--target",
        target,
        "--signature-type",
        signature,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # The source folder's parent is not on sys.path under functions-framework; the project
    # root is, so `common` and `functions` import as packages.
    child_env = {"PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1", **env}
    child = spawn(name, command, port=port, log_path=log_dir / f"{name}.log", env=child_env)
    child.wait_ready(timeout)
    return child
