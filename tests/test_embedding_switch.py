"""Changing a project's embedding model on the real stack, while it is being asked questions.

The project starts on the local model (inline vectors); it switches to the Vertex AI stand-in's
gemini-embedding-001 at 768 dimensions while a thread keeps asking and a document is added and
another deleted, rolls back, switches to 768 again (reusing the kept vectors), then to 3,072
(halfvec) and finishes. Every question answers throughout; every ready document ends with
vectors in exactly the active space; and a fresh project ingested straight into that space
ranks the same documents. The re-embedding runs as ordinary jobs in the stack's chunk_embed.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from common.ingestion import embedding_switch
from common.platform.config import Settings, get_settings
from common.platform.db import transaction
from common.platform.models import DocumentStatus, Project
from common.platform.spaces import EmbeddingSpace, ensure_space, project_spaces
from common.query.auth import Principal
from common.query.schemas import QueryRequest
from common.query.service import run_query
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.stack import IngestionStack
from tests.test_cli import cli_json
from tests.test_ingestion import finalize, upload, wait_for_document

pytestmark = pytest.mark.timeout(600)
FACTS = {
    "ferry": "The night ferry to Skye leaves the harbour at 23:40 on weekdays.",
    "boiler": "The boiler in hall B is serviced every March by the caretaker.",
    "orchard": "The orchard ships four thousand crates of cider apples each autumn.",
    "lighthouse": "The lighthouse keeper tests the fog horn on Fridays at noon.",
    "warehouse": "The warehouse lease of the eastern dock ends in 2031.",
}
QUESTIONS = {
    "ferry": "When does the night ferry leave?",
    "boiler": "When is the boiler in hall B serviced?",
    "orchard": "How many crates of apples does the orchard ship?",
    "lighthouse": "When is the fog horn tested?",
}


def _ingest(stack: IngestionStack, tenant: Tenant, name: str) -> uuid.UUID:
    body = f"{FACTS[name]} " + " ".join(f"Routine note {n} about {name}." for n in range(30))
    blob = upload(stack, tenant, f"{name}.txt", body.encode(), "text/plain")
    finalize(stack, blob)
    return wait_for_document(stack, tenant, blob, {DocumentStatus.READY}).id


def _ask(
    tenant: Tenant,
    question: str,
    document_filter: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> list[str]:
    request = QueryRequest(question=question, mode="retrieve", top_k=3, filter=document_filter)
    principal = Principal(tenant.team_id, None)
    result = run_query(principal, tenant.project_id, request, "switch-test", settings=settings)
    return [citation.title for citation in result.citations]


class Asker(threading.Thread):
    """Asks every question in turn until stopped; records failures (there must be none)."""

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(daemon=True)
        self.tenant = tenant
        self.stopped = threading.Event()
        self.asked = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            for question in QUESTIONS.values():
                try:
                    if not _ask(self.tenant, question):
                        self.failures.append(f"no citations for {question!r}")
                except Exception as error:  # the point: every query must answer
                    self.failures.append(f"{type(error).__name__}: {error}")
                self.asked += 1


def _spaces(tenant: Tenant) -> Any:
    with transaction() as session:
        return project_spaces(session, tenant.project_id, get_settings())


def _wait_active(tenant: Tenant, space: EmbeddingSpace, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _spaces(tenant).active != space:
        assert time.monotonic() < deadline, cli_json(
            "embeddings", "status", "-p", str(tenant.project_id)
        )
        time.sleep(0.3)


def _vectors_per_space(tenant: Tenant, space: EmbeddingSpace) -> tuple[int, int]:
    """(chunks of the project's ready documents, those with a vector in `space`)."""
    with transaction() as session:
        chunks = session.scalar(
            text(
                "SELECT count(*) FROM document_chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.project_id = :p AND d.status = 'ready'"
            ),
            {"p": tenant.project_id},
        )
        if space.table is None:
            held = session.scalar(
                text(
                    "SELECT count(*) FROM document_chunks WHERE project_id = :p "
                    "AND embedding IS NOT NULL"
                ),
                {"p": tenant.project_id},
            )
        else:
            held = session.scalar(
                text(f"SELECT count(*) FROM {space.table} WHERE project_id = :p"),
                {"p": tenant.project_id},
            )
    return int(chunks or 0), int(held or 0)


def _space(model: str, dimensions: int) -> EmbeddingSpace:
    with transaction() as session:
        return ensure_space(session, model, dimensions, get_settings())


def test_a_project_switches_model_while_asked_rolls_back_and_finishes(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    for name in ("ferry", "boiler", "orchard", "warehouse"):
        _ingest(ingestion_stack, tenant, name)
    inline = _spaces(tenant).active
    asker = Asker(tenant)
    asker.start()
    try:
        switched = cli_json(
            "embeddings", "switch", "--model", "gemini-embedding-001", "--dimensions", "768",
            "--project", str(tenant.project_id), "--yes",
        )  # fmt: skip
        assert switched["estimate"]["documents"] == 4 and switched["estimate"]["requests"] >= 1
        small = _space("gemini-embedding-001", 768)
        # During the switch: a new document lands in both spaces, a deleted one leaves both.
        _ingest(ingestion_stack, tenant, "lighthouse")
        with transaction() as session:
            session.execute(
                text("DELETE FROM documents WHERE project_id = :p AND title = 'warehouse.txt'"),
                {"p": tenant.project_id},
            )
        _wait_active(tenant, small)
        assert _spaces(tenant).previous == inline
        chunks, held = _vectors_per_space(tenant, small)
        assert held == chunks > 0
        status = {row["project_id"]: row for row in cli_json("embeddings", "status")}
        assert status[str(tenant.project_id)]["active"] == small.label

        rolled = cli_json("embeddings", "rollback", "--project", str(tenant.project_id))
        assert "active again" in rolled[0]["result"]
        assert _spaces(tenant).active == inline and _spaces(tenant).previous == small
        # Back again: the kept vectors are reused, nothing is re-embedded.
        again = cli_json(
            "embeddings", "switch", "-m", "gemini-embedding-001", "-d", "768",
            "-p", str(tenant.project_id), "--yes",
        )  # fmt: skip
        assert again["projects"][0]["jobs_queued"] == 0
        assert _spaces(tenant).active == small

        cli_json(
            "embeddings", "switch", "-m", "gemini-embedding-001", "-d", "3072",
            "-p", str(tenant.project_id), "--yes",
        )  # fmt: skip
        big = _space("gemini-embedding-001", 3072)
        assert big.vector_type == "halfvec"
        _wait_active(tenant, big)
        finished = cli_json("embeddings", "finish", "-p", str(tenant.project_id), "--yes")
        assert finished[0]["dropped"] == small.label
    finally:
        asker.stopped.set()
        asker.join(timeout=60)
    assert asker.asked > 0 and asker.failures == [], asker.failures[:5]
    spaces = _spaces(tenant)
    assert (spaces.active, spaces.pending, spaces.previous) == (big, None, None)
    chunks, held = _vectors_per_space(tenant, big)
    assert held == chunks > 0
    assert _vectors_per_space(tenant, inline)[1] == 0, "no vectors left inline"
    with transaction() as session:
        left = session.scalar(text("SELECT to_regclass(:t)"), {"t": small.table})
    assert left is None, "the 768 space's table went with its last project"
    # Filtered questions in a space of its own (a halfvec table), ranked exactly and through
    # the graph: only the named document answers, whatever the question is about.
    graph = get_settings().model_copy(update={"exact_search_max_chunks": 0})
    for settings in (None, graph):
        for name in ("ferry", "orchard"):
            only = {"equals": {"key": "path", "value": f"{name}.txt"}}
            titles = _ask(tenant, QUESTIONS["boiler"], only, settings)
            assert titles and set(titles) == {f"{name}.txt"}, (name, titles)

    # A fresh project ingested straight into the same space ranks the same documents.
    fresh = make_tenant("fresh-3072")
    with transaction() as session:
        session.get_one(Project, fresh.project_id).active_space_id = big.id
    for name in ("ferry", "boiler", "orchard", "lighthouse"):
        _ingest(ingestion_stack, fresh, name)
    for name, question in QUESTIONS.items():
        # The document that answers, first in both. (The chunks themselves differ a little: a
        # fresh project cuts them for its own model's tokenizer, a switch keeps the old cut.)
        switched, ingested = _ask(tenant, question), _ask(fresh, question)
        assert switched[0] == ingested[0] == f"{name}.txt", (question, switched, ingested)


def test_a_cancelled_switch_leaves_the_active_space_and_nothing_pending(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    _ingest(ingestion_stack, tenant, "ferry")
    inline = _spaces(tenant).active
    space = _space("gemini-embedding-001", 1536)
    with transaction() as session:
        embedding_switch.start(session, tenant.project_id, space, get_settings())
    rolled = cli_json("embeddings", "rollback", "-p", str(tenant.project_id))
    assert "cancelled" in rolled[0]["result"]
    spaces = _spaces(tenant)
    assert (spaces.active, spaces.pending) == (inline, None)
    assert _ask(tenant, QUESTIONS["ferry"]) == ["ferry.txt"]
