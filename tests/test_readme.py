"""The README is the newcomer's contract: its commands and settings stay true."""

from __future__ import annotations

from pathlib import Path

from common.platform.config import ENV_PREFIX, Settings


def test_readme_documents_every_setting(project_root: Path) -> None:
    readme = (project_root / "README.md").read_text()
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in readme
    ]
    assert not missing, f"README configuration table lacks {missing}"


def test_ci_runs_the_readme_test_command(project_root: Path) -> None:
    readme = (project_root / "README.md").read_text()
    ci = (project_root / ".ci" / "run").read_text()
    command = "uv run --extra local pytest"
    assert f"    {command}\n" in readme
    assert ci.rstrip().splitlines()[-1] == command
    assert "    uv run --extra local ai-infra dev\n" in readme
