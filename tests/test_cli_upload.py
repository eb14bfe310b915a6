"""`ai-infra upload` against a real GCS emulator and a real HTTP receiver of the CloudEvents.

The receiver stands where Eventarc's target (ingest_trigger) stands in the local stack; the
end-to-end test at the bottom uses the real ingestion functions instead.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from common.localstack import gcs
from common.localstack.eventarc import FINALIZED
from common.localstack.processes import free_port
from common.platform.config import get_settings
from common.platform.storage import get_blob_store, reset_blob_store
from tests import pdfs
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.test_cli import (
    assert_user_error,
    cli,
    cli_json,
    refresh_settings,
    restore_settings,  # noqa: F401 - autouse fixture shared with test_cli
)

BUCKET = "cli-upload-test"


@dataclass
class Sink:
    """Records every CloudEvent posted to it; refuses objects whose name contains 'reject'."""

    url: str = ""
    events: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> list[str]:
        with self.lock:
            return [body["name"] for _, body in self.events]

    def clear(self) -> None:
        with self.lock:
            self.events.clear()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    received = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with received.lock:
                received.events.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(400 if "reject" in body["name"] else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    child = gcs.start_gcs_emulator(
        port=port, data_dir=None, log_dir=tmp_path_factory.mktemp("cli-gcs")
    )
    yield gcs.emulator_url(port)
    child.stop()


@pytest.fixture
def stack(
    database_url: str, gcs_emulator: str, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> Sink:
    """This process's settings point at the emulator, the bucket and the sink (undone after)."""
    monkeypatch.setenv("AI_INFRA_STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.setenv("AI_INFRA_BUCKET", BUCKET)
    monkeypatch.setenv("AI_INFRA_EVENT_SINK_URL", sink.url)
    refresh_settings()
    get_blob_store().ensure_bucket(BUCKET)
    sink.clear()
    return sink


def make_tree(root: Path) -> Path:
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha document\n")
    (root / "docs" / "sub" / "b.md").write_text("# Beta\n\nbeta document\n")
    (root / "docs" / ".hidden").write_text("secret")
    (root / "docs" / ".git").mkdir()
    (root / "docs" / ".git" / "config").write_text("[core]")
    return root / "docs"


def test_upload_sends_a_folder_recursively_and_announces_each_object(
    stack: Sink, tenant: Tenant, tmp_path: Path
) -> None:
    folder = make_tree(tmp_path)
    records = cli_json("upload", "--project", str(tenant.project_id), str(folder))

    expected = {f"{tenant.project_id}/a.txt", f"{tenant.project_id}/sub/b.md"}
    assert {r["object"] for r in records} == expected
    assert {r["result"] for r in records} == {"uploaded"}
    assert {r["gcs_uri"] for r in records} == {f"gs://{BUCKET}/{name}" for name in expected}
    assert sorted(stack.names()) == sorted(expected)
    for headers, body in stack.events:
        assert headers["ce-type"] == FINALIZED
        assert headers["ce-subject"] == f"objects/{body['name']}"
        assert body["bucket"] == BUCKET
    stored = get_blob_store().stat(BUCKET, f"{tenant.project_id}/sub/b.md")
    assert stored is not None
    assert stored.size == len("# Beta\n\nbeta document\n")


def test_a_second_upload_skips_unchanged_files_and_sends_only_changed_ones(
    stack: Sink, tenant: Tenant, tmp_path: Path
) -> None:
    folder = make_tree(tmp_path)
    cli_json("upload", "--project", str(tenant.project_id), str(folder))
    stack.clear()

    again = cli_json("upload", "--project", str(tenant.project_id), str(folder))
    assert {r["result"] for r in again} == {"unchanged"}
    assert stack.names() == []

    (folder / "a.txt").write_text("alpha document, second edition\n")
    third = {
        r["object"]: r["result"]
        for r in cli_json("upload", "-p", str(tenant.project_id), str(folder))
    }
    assert third == {
        f"{tenant.project_id}/a.txt": "uploaded",
        f"{tenant.project_id}/sub/b.md": "unchanged",
    }
    assert stack.names() == [f"{tenant.project_id}/a.txt"]


def test_upload_of_single_files_by_project_name_prints_a_summary(
    stack: Sink, tenant: Tenant, tmp_path: Path
) -> None:
    one, two = tmp_path / "one.txt", tmp_path / "two.html"
    one.write_text("one")
    two.write_text("<p>two</p>")
    with_name = cli_json("projects", "list", "--team", str(tenant.team_id))[0]["name"]

    result = cli("upload", "--project", with_name, str(one), str(two))
    assert result.exit_code == 0, result.output
    assert "one.txt" in result.stdout
    assert "2 uploaded" in result.stdout
    info = get_blob_store().stat(BUCKET, f"{tenant.project_id}/two.html")
    assert info is not None
    assert info.content_type == "text/html"


def test_upload_refuses_a_missing_file_before_sending_anything(
    stack: Sink, tenant: Tenant, tmp_path: Path
) -> None:
    present = tmp_path / "present.txt"
    present.write_text("here")
    result = cli(
        "upload", "--project", str(tenant.project_id), str(present), str(tmp_path / "gone.pdf")
    )
    assert_user_error(result, "no such file or folder", "gone.pdf")
    assert stack.names() == []
    assert get_blob_store().stat(BUCKET, f"{tenant.project_id}/present.txt") is None


def test_upload_refuses_an_unknown_project_and_an_empty_folder(stack: Sink, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert_user_error(cli("upload", "-p", str(uuid.uuid4()), str(tmp_path)), "unknown project")
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("upload", "-p", "whatever", str(tmp_path / "empty")), "nothing to upload")


def test_an_event_the_sink_refuses_is_reported_and_fails_the_command(
    stack: Sink, tenant: Tenant, tmp_path: Path
) -> None:
    (tmp_path / "fine.txt").write_text("fine")
    (tmp_path / "reject-me.txt").write_text("refused")
    result = cli("--json", "upload", "-p", str(tenant.project_id), str(tmp_path))
    assert_user_error(result, "1 of 2 files not uploaded or not announced")
    records = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert records["fine.txt"]["result"] == "uploaded"
    assert records["reject-me.txt"]["result"] == "error"
    assert "400" in records["reject-me.txt"]["error"]


def test_waiting_gives_up_after_the_timeout_when_nothing_ingests(
    stack: Sink, tenant: Tenant, tmp_path: Path
) -> None:
    (tmp_path / "lonely.txt").write_text("nobody ingests me")
    started = time.monotonic()
    result = cli(
        "--json", "upload", "-p", str(tenant.project_id), "--wait", "--timeout", "1", str(tmp_path)
    )
    assert_user_error(result, "timed out after 1s")
    assert time.monotonic() - started < 30
    (record,) = json.loads(result.stdout)
    assert record["status"] == "not seen"


def test_upload_in_local_mode_without_a_dev_stack_says_to_start_one(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "f.txt").write_text("x")
    monkeypatch.delenv("AI_INFRA_STORAGE_EMULATOR_HOST", raising=False)
    refresh_settings()
    assert_user_error(cli("upload", "-p", "p", str(tmp_path)), "start `ai-infra dev` first")

    monkeypatch.delenv("AI_INFRA_DATABASE_URL")
    monkeypatch.setenv("AI_INFRA_LOCAL_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    reset_blob_store()
    assert_user_error(cli("upload", "-p", "p", str(tmp_path)), "start `ai-infra dev` first")
    assert not (tmp_path / "data").exists()


def _poll(check: Any, deadline_seconds: float = 120.0) -> Any:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met before the deadline")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_upload_wait_documents_reprocess_and_ask_through_the_real_pipeline(
    ingestion_stack: IngestionStack,
    tenant: Tenant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's tour: upload and wait, see the failure, retry it, ask with citations."""
    monkeypatch.setenv("AI_INFRA_EVENT_SINK_URL", ingestion_stack.trigger_url)
    refresh_settings()
    pages = [pdfs.page_text(n, words=80) for n in range(1, 4)]
    pages[1] += " The lighthouse keeper's cat is named Biscuit and sleeps on the lamp room stairs."
    (tmp_path / "keeper.pdf").write_bytes(pdfs.make_pdf(pages))
    (tmp_path / "broken.pdf").write_bytes(pdfs.make_corrupt_pdf())
    project = str(tenant.project_id)

    result = cli("--json", "upload", "-p", project, "--wait", "--timeout", "120", str(tmp_path))
    assert_user_error(result, "1 of 2 documents failed")
    records = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert records["keeper.pdf"]["status"] == "ready", ingestion_stack.logs()
    assert records["keeper.pdf"]["chunks"] >= 1
    assert records["broken.pdf"]["status"] == "failed"
    assert records["broken.pdf"]["error"]

    (failed,) = cli_json("documents", "list", "-p", project, "--status", "failed")
    assert failed["title"] == "broken.pdf"
    before = cli_json("documents", "show", failed["id"])
    assert before["job_status"] == "failed"

    queued = cli_json("documents", "reprocess", "--failed", "-p", project)
    assert [q["document_id"] for q in queued] == [failed["id"]]

    def failed_again() -> bool:
        shown = cli_json("documents", "show", failed["id"])
        return bool(
            shown["status"] == "failed" and shown["job_finished_at"] != before["job_finished_at"]
        )

    _poll(failed_again)

    retrieved = cli_json("ask", "-p", project, "--retrieve", "What is the cat called?")
    assert retrieved["answer"] is None
    top = retrieved["citations"][0]
    assert top["title"] == "keeper.pdf"
    assert top["page_start"] <= 2 <= top["page_end"]

    answered = cli("ask", "--project", project, "What is the name of the keeper's cat?")
    assert answered.exit_code == 0, answered.output
    assert "Biscuit" in answered.stdout
    assert "[1] keeper.pdf, p" in answered.stdout


def test_asking_an_unknown_project_or_an_empty_question_is_refused(tenant: Tenant) -> None:
    assert_user_error(cli("ask", "-p", str(uuid.uuid4()), "anything?"), "unknown project")
    assert_user_error(cli("ask", "-p", str(tenant.project_id), "   "), "invalid question")


def test_attributes_from_the_cli_upload_set_meta_list_and_ask_with_a_filter(
    ingestion_stack: IngestionStack,
    tenant: Tenant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_INFRA_EVENT_SINK_URL", ingestion_stack.trigger_url)
    refresh_settings()
    project = str(tenant.project_id)
    (tmp_path / "legal").mkdir()
    (tmp_path / "legal" / "lease.txt").write_text("The warehouse lease runs until 2031.")
    (tmp_path / "hr.txt").write_text("The warehouse staff rota changes every month.")
    legal = cli_json(
        "upload",
        "-p",
        project,
        "--wait",
        "--meta",
        "department=legal",
        "--meta",
        "year=2025",
        str(tmp_path / "legal"),
    )
    assert legal[0]["status"] == "ready"
    cli_json("upload", "-p", project, "--wait", "--meta", "department=hr", str(tmp_path / "hr.txt"))
    assert_user_error(
        cli("upload", "-p", project, "--meta", "year=soon", str(tmp_path / "hr.txt")),
        "--meta year: is a number in this project",
    )
    only_legal = '{"equals": {"key": "department", "value": "legal"}}'
    [listed] = cli_json("documents", "list", "-p", project, "--filter", only_legal)
    assert listed["title"] == "lease.txt" and listed["attributes"]["year"] == 2025
    assert_user_error(
        cli("documents", "list", "-p", project, "--filter", '{"equals": {"key": "dept"}}'),
        "--filter.equals",
    )
    changed = cli_json(
        "documents", "set-meta", listed["id"], "reviewed=true", 'tags=["lease"]', "--unset", "year"
    )
    assert changed["attributes"]["reviewed"] is True and changed["attributes"]["tags"] == ["lease"]
    assert "year" not in changed["attributes"]
    # Same content, another attribute: uploaded again, the chunks reused (no new embedding).
    again = cli_json(
        "upload", "-p", project, "--wait", "--meta", "department=people", str(tmp_path / "hr.txt")
    )
    assert again[0]["result"] == "uploaded" and again[0]["status"] == "ready"
    retrieved = cli_json(
        "ask", "-p", project, "--retrieve", "--filter", only_legal, "What changes at the warehouse?"
    )
    assert {c["title"] for c in retrieved["citations"]} == {"lease.txt"}
    people = '{"equals": {"key": "department", "value": "people"}}'
    [hr] = cli_json("documents", "list", "-p", project, "--filter", people)
    assert hr["title"] == "hr.txt"
