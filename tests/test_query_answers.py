"""Answers, retrieval results, streaming and the audit rows, through the served function."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import httpx
import pytest

from common.query.service import NOTHING_FOUND_ANSWER
from tests.fixtures.factories import make_tenant
from tests.fixtures.query import Corpus, QueryApi, insert_document, parse_sse, wait_for_log

PARKING = "Is there free parking for guests at the Portugal branch?"


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_answer_cites_exactly_the_sources_it_uses(query_api: QueryApi, corpus: Corpus) -> None:
    body = _ok(
        query_api.post_query(corpus.tenant.project_id, {"question": PARKING}, corpus.tenant.api_key)
    )
    assert body["used_rag"] is True
    assert body["model"] == "extractive"
    assert "park" in body["answer"]
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])]
    assert [c["source"] for c in body["citations"]] == list(dict.fromkeys(markers))
    assert uuid.UUID(body["citations"][0]["chunk_id"]) == corpus.planted["parking"]
    citation = body["citations"][0]
    assert citation["title"] == "Notes on parking"
    assert citation["gcs_uri"].startswith("gs://")
    assert citation["page_start"] == 1 and citation["page_end"] == 1
    assert citation["snippet"].startswith("Visitors to the Lisbon office")
    assert citation["content"] is None
    assert body["usage"]["prompt_tokens"] > 0
    assert body["latency_ms"] >= 0
    assert body["request_id"]


def test_retrieve_mode_returns_ranked_chunks_without_an_answer(
    query_api: QueryApi, corpus: Corpus
) -> None:
    body = _ok(
        query_api.post_query(
            corpus.tenant.project_id,
            {"question": "What is part XK-4471B?", "mode": "retrieve", "top_k": 7},
            corpus.tenant.api_key,
        )
    )
    assert body["answer"] is None
    assert body["model"] is None
    assert body["used_rag"] is True
    assert [c["rank"] for c in body["citations"]] == list(range(1, 8))
    assert [c["source"] for c in body["citations"]] == list(range(1, 8))
    assert uuid.UUID(body["citations"][0]["chunk_id"]) == corpus.planted["hinge_pin"]
    assert "XK-4471B" in body["citations"][0]["content"]


def test_default_top_k_applies(query_api: QueryApi, corpus: Corpus) -> None:
    body = _ok(
        query_api.post_query(
            corpus.tenant.project_id,
            {"question": "hydraulic pump", "mode": "retrieve"},
            corpus.tenant.api_key,
        )
    )
    assert len(body["citations"]) == 5


def test_document_filter_and_min_score_over_http(query_api: QueryApi, corpus: Corpus) -> None:
    only = corpus.planted_documents["sourdough"]
    body = _ok(
        query_api.post_query(
            corpus.tenant.project_id,
            {"question": PARKING, "mode": "retrieve", "document_ids": [str(only)], "top_k": 10},
            corpus.tenant.api_key,
        )
    )
    assert [uuid.UUID(c["document_id"]) for c in body["citations"]] == [only]
    body = _ok(
        query_api.post_query(
            corpus.tenant.project_id,
            {"question": PARKING, "mode": "retrieve", "min_score": 0.5, "top_k": 20},
            corpus.tenant.api_key,
        )
    )
    assert body["citations"]
    assert all(c["score"] >= 0.5 for c in body["citations"])


def test_nothing_found_is_answered_honestly_without_a_model(
    query_api: QueryApi, database_url: str
) -> None:
    empty = make_tenant("empty")
    body = _ok(query_api.post_query(empty.project_id, {"question": PARKING}, empty.api_key))
    assert body["answer"] == NOTHING_FOUND_ANSWER
    assert body["used_rag"] is False
    assert body["model"] is None
    assert body["citations"] == []
    log, citations = wait_for_log(body["request_id"])
    assert log.used_rag is False and log.model is None and citations == []


def test_query_log_and_citation_rows_are_written(query_api: QueryApi, corpus: Corpus) -> None:
    request_id = f"log-test-{uuid.uuid4().hex}"
    body = _ok(
        query_api.post_query(
            corpus.tenant.project_id,
            {"question": PARKING, "top_k": 6},
            corpus.tenant.api_key,
            headers={"X-Request-ID": request_id},
        )
    )
    log, citations = wait_for_log(request_id)
    assert log.question_hash == hashlib.sha256(PARKING.encode()).hexdigest()
    assert log.team_id == corpus.tenant.team_id
    assert log.project_id == corpus.tenant.project_id
    assert log.api_key_id == corpus.tenant.api_key_id
    assert log.used_rag is True
    assert log.top_k == 6
    assert log.model == "extractive"
    assert log.latency_ms == body["latency_ms"]
    assert log.prompt_tokens == body["usage"]["prompt_tokens"]
    assert log.completion_tokens == body["usage"]["completion_tokens"]
    assert [(c.chunk_id, c.rank) for c in citations] == [
        (uuid.UUID(c["chunk_id"]), c["rank"]) for c in body["citations"]
    ]
    assert [c.score for c in citations] == pytest.approx([c["score"] for c in body["citations"]])


def test_retrieve_mode_logs_every_returned_chunk(query_api: QueryApi, corpus: Corpus) -> None:
    body = _ok(
        query_api.post_query(
            corpus.tenant.project_id,
            {"question": "hydraulic pump", "mode": "retrieve", "top_k": 12},
            corpus.tenant.api_key,
        )
    )
    log, citations = wait_for_log(body["request_id"])
    assert log.model is None and log.top_k == 12
    assert [c.rank for c in citations] == list(range(1, 13))


def test_streaming_sends_deltas_then_done_with_citations(
    query_api: QueryApi, corpus: Corpus
) -> None:
    response = query_api.post_query(
        corpus.tenant.project_id, {"question": PARKING, "stream": True}, corpus.tenant.api_key
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"}
    done = events[-1][1]
    assert "".join(data["text"] for name, data in events[:-1]) == done["answer"]
    assert done["request_id"] == response.headers["x-request-id"]
    assert uuid.UUID(done["citations"][0]["chunk_id"]) == corpus.planted["parking"]
    assert done["usage"]["prompt_tokens"] > 0
    _, citations = wait_for_log(done["request_id"])
    assert len(citations) == len(done["citations"])


def test_streaming_when_nothing_is_found(query_api: QueryApi, database_url: str) -> None:
    empty = make_tenant("empty-stream")
    response = query_api.post_query(
        empty.project_id, {"question": PARKING, "stream": True}, empty.api_key
    )
    events = parse_sse(response.text)
    assert events[0] == ("delta", {"text": NOTHING_FOUND_ANSWER})
    assert events[-1][0] == "done" and events[-1][1]["used_rag"] is False


def test_errors_before_streaming_starts_keep_their_status(
    query_api: QueryApi, corpus: Corpus
) -> None:
    response = query_api.post_query(
        corpus.other.project_id, {"question": PARKING, "stream": True}, corpus.tenant.api_key
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_chunks_of_another_embedding_model_are_refused_with_409(
    query_api: QueryApi, database_url: str
) -> None:
    tenant = make_tenant("mismatch")
    insert_document(
        tenant, "legacy", ["Old vectors from another model."], embedding_model="text-embedding-005"
    )
    response = query_api.post_query(tenant.project_id, {"question": "old vectors"}, tenant.api_key)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "embedding_model_mismatch"
    assert "text-embedding-005" in error["message"]


def test_secrets_and_questions_never_reach_the_logs(query_api: QueryApi, corpus: Corpus) -> None:
    """The function's log holds ids and hashes only (checked after real traffic)."""
    question = f"Where is the secret lab {uuid.uuid4().hex}?"
    body = _ok(
        query_api.post_query(
            corpus.tenant.project_id, {"question": question}, corpus.tenant.api_key
        )
    )
    wait_for_log(body["request_id"])
    log = query_api.child.log_path.read_text()
    assert body["request_id"] in log
    assert question not in log
    assert corpus.tenant.api_key not in log
    assert hashlib.sha256(question.encode()).hexdigest() in log
