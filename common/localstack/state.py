"""Where a running `ai-infra dev` stack can be found, so other `ai-infra` commands join it.

`ai-infra dev` writes `<local data dir>/dev.json` with the settings its children use; a CLI
command run in another terminal in local mode picks those up instead of starting anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE_FILE = "dev.json"


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def write_state(data_dir: Path, environment: dict[str, str]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    payload = {"pid": os.getpid(), "environment": environment}
    temporary = state_path(data_dir).with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, indent=2))
    temporary.replace(state_path(data_dir))


def clear_state(data_dir: Path) -> None:
    state_path(data_dir).unlink(missing_ok=True)


def running_stack_environment(data_dir: Path) -> dict[str, str] | None:
    """The `AI_INFRA_*` variables of a live dev stack in `data_dir`, or None."""
    try:
        payload = json.loads(state_path(data_dir).read_text())
        pid = int(payload["pid"])
        environment = {str(k): str(v) for k, v in payload["environment"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return environment
