"""A new instance listens after settings and logging alone: the flows load with the first call.

Cloud Run starts a process on every scale-out and the request that caused it waits for the
start. Each `functions/<name>/main.py` therefore imports functions-framework, the settings and
the logging set-up only; the database layer, the schema, numpy, the model and cloud clients are
imported by the first request that needs them (bench/coldstart.py measures both). A fresh
interpreter per function, as functions-framework loads the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("query", "ingest_trigger", "chunk_embed", "dead_letter", "sweep")
# What a function needs only once it works: none of it may load at start-up.
DEFERRED = (
    "sqlalchemy",
    "pg8000",
    "numpy",
    "pgvector",
    "httpx",
    "google.genai",
    "google.cloud.storage",
    "google.cloud.pubsub_v1",
    "pypdf",
    "common.platform.db",
    "common.platform.models",
    "common.ingestion.jobs",
    "common.query.api.app",
)
LOAD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["main"] = module
spec.loader.exec_module(module)
assert callable(getattr(module, sys.argv[2]))
print(json.dumps([name for name in json.loads(sys.argv[3]) if name in sys.modules]))
"""


@pytest.mark.parametrize("name", FUNCTIONS)
def test_importing_a_function_loads_no_database_model_or_cloud_client(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_INFRA_")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD,
            str(ROOT / "functions" / name / "main.py"),
            name,
            json.dumps(DEFERRED),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
