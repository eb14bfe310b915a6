"""The GCS emulator (`gcp-storage-emulator`), in its own process, data on disk between runs."""

from __future__ import annotations

import sys
from pathlib import Path

from common.localstack.processes import Child, spawn

_LAUNCH = (
    "import sys\n"
    "from gcp_storage_emulator.server import create_server\n"
    "server = create_server('127.0.0.1', int(sys.argv[1]), in_memory=sys.argv[2] == 'memory',"
    " data_dir=sys.argv[2] if sys.argv[2] != 'memory' else None)\n"
    "server.run()\n"
)


def start_gcs_emulator(*, port: int, data_dir: Path | None, log_dir: Path) -> Child:
    """`data_dir=None` keeps objects in memory (tests); otherwise they persist there."""
    where = "memory"
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        where = str(data_dir)
    command = [sys.executable, "-c", _LAUNCH, str(port), where]
    child = spawn("gcs-emulator", command, port=port, log_path=log_dir / "gcs-emulator.log")
    child.wait_ready(30)
    return child


def emulator_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"
