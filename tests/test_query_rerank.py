"""Reranking end to end: the served query function, the real ranking client and a local stand-in
speaking the Vertex AI ranking API (Discovery Engine `:rank`) in place of the paid endpoint.

The reranker reorders the fused candidates by the ranker's scores; a slow, rate-limited or failing
ranker leaves the fused order, within the timeout budget, and never fails the query.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.inference.rerankers.vertex_rank import (
    MAX_RECORDS_PER_REQUEST,
    VertexRanker,
    estimate_tokens,
    record_token_limit,
)
from common.inference.reranking import DeadlineReranker, RerankRecord, build_reranker
from common.platform.config import RerankProvider
from common.query.api.context import parse_server_timing
from tests.fixtures.factories import make_tenant
from tests.fixtures.model_standins import ModelStandin, start_model_standin
from tests.fixtures.query import Corpus, insert_document, serve_query, wait_for_log

QUESTION = "How often is the hinge pin of the rover replaced?"
TIMEOUT_SECONDS = 0.5
CANDIDATES = 40


class Served:
    def __init__(self, standin: ModelStandin, url: str, log: Path) -> None:
        self.standin = standin
        self.client = httpx.Client(base_url=url, timeout=60)
        self.log = log

    def ask(self, project_id: uuid.UUID, key: str, **body: object) -> httpx.Response:
        return self.client.post(
            f"/v1/projects/{project_id}/query",
            json={"question": QUESTION, **body},
            headers={"Authorization": f"Bearer {key}"},
        )


@pytest.fixture(scope="module")
def served_module(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with start_model_standin() as standin:
        log_dir = tmp_path_factory.mktemp("rerank")
        env = {
            **standin.env(),
            "AI_INFRA_DATABASE_URL": database_url,
            "AI_INFRA_GENERATION_PROVIDER": "extractive",
            "AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE": "1000000",
            "AI_INFRA_RERANK_PROVIDER": "vertex",
            "AI_INFRA_RERANK_CANDIDATES": str(CANDIDATES),
            "AI_INFRA_RERANK_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
            # A 429's pause (Retry-After) is capped by this: short, so tests do not wait.
            "AI_INFRA_MODEL_RETRY_MAX_SECONDS": "1",
        }
        child, url = serve_query(log_dir, env)
        served = Served(standin, url, log_dir / "query.log")
        try:
            yield served
        finally:
            served.client.close()
            child.stop()


@pytest.fixture
def served(served_module: Served) -> Served:
    served_module.standin.reset()
    return served_module


def scrambled(query: str, title: str, content: str) -> float:
    """A deterministic score unrelated to the fused order: a hash of the content."""
    return (zlib.crc32(content.encode()) % 10_000) / 10_000


def retrieve(served: Served, corpus: Corpus, **body: object) -> tuple[dict[str, Any], float]:
    """The body and the seconds the server spent reranking (its Server-Timing `rerank` phase):
    the phase under test, not the embedding and SQL around it that a loaded machine stretches."""
    response = served.ask(corpus.tenant.project_id, corpus.tenant.api_key, mode="retrieve", **body)
    assert response.status_code == 200, response.text
    reranking = parse_server_timing(response.headers["server-timing"]).get("rerank", 0.0) / 1000
    return response.json(), reranking


def sent_records(served: Served) -> list[dict[str, Any]]:
    requests = served.standin.requests_to("rank")
    assert requests, "the ranker was not called"
    records: list[dict[str, Any]] = requests[-1].body["records"]
    return records


def assert_fused_order(body: dict[str, Any], candidates: list[dict[str, Any]], top_k: int) -> None:
    """The fused order's first top_k: the candidates as sent (fused order), no rerank scores."""
    citations = body["citations"]
    assert [c["chunk_id"] for c in citations] == [r["id"] for r in candidates[:top_k]]
    assert [c["rank"] for c in citations] == list(range(1, top_k + 1))
    assert all(c["rerank_score"] is None for c in citations)
    rrf = [c["rrf_score"] for c in citations]
    assert rrf == sorted(rrf, reverse=True)


def log_lines(served: Served, text: str) -> list[str]:
    return [line for line in served.log.read_text().splitlines() if text in line]


def test_reranking_reorders_the_fused_candidates_by_the_rankers_scores(
    served: Served, corpus: Corpus
) -> None:
    served.standin.rank_score = scrambled
    body, _ = retrieve(served, corpus, top_k=5)
    (request,) = served.standin.requests_to("rank")
    assert request.path == (
        "/v1/projects/standin-project/locations/global/rankingConfigs/default_ranking_config:rank"
    )
    assert request.headers["authorization"].startswith("Bearer ")
    sent = request.body
    assert sent["model"] == "semantic-ranker-default-004"
    assert sent["query"] == QUESTION
    assert sent["topN"] == 5
    assert sent["ignoreRecordDetailsInResponse"] is True
    records = sent["records"]
    assert len(records) == CANDIDATES  # the top CANDIDATES fused results, in fused order
    assert len({r["id"] for r in records}) == CANDIDATES
    expected = sorted(
        records, key=lambda r: -scrambled(QUESTION, r["title"], r["content"])
    )  # stable: ties keep the fused order, as the stand-in does
    citations = body["citations"]
    assert [c["chunk_id"] for c in citations] == [r["id"] for r in expected[:5]]
    assert [c["rank"] for c in citations] == [1, 2, 3, 4, 5]
    assert [c["source"] for c in citations] == [1, 2, 3, 4, 5]  # = rank when retrieving
    for citation, record in zip(citations, expected, strict=False):
        assert citation["rerank_score"] == pytest.approx(
            scrambled(QUESTION, record["title"], record["content"])
        )
        assert citation["content"] == record["content"]
    # The fused order is not the reranked one (else this test would prove nothing).
    assert [c["chunk_id"] for c in citations] != [r["id"] for r in records[:5]]
    assert not log_lines(served, "rerank fell back")


def test_the_answer_is_generated_from_the_reranked_sources(served: Served, corpus: Corpus) -> None:
    """Answer mode: the reranker's best chunk is source [1]; citations carry its score."""
    planted = corpus.planted["hinge_pin"]

    def planted_last(query: str, title: str, content: str) -> float:
        return 0.01 if "XK-4471B" in content else 0.5 + scrambled(query, title, content) / 4

    served.standin.rank_score = planted_last
    response = served.ask(corpus.tenant.project_id, corpus.tenant.api_key, top_k=3)
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [c["chunk_id"] for c in body["citations"]]
    assert str(planted) in {r["id"] for r in sent_records(served)}  # a candidate...
    assert str(planted) not in ids  # ...ranked out of the top 3 by the ranker
    assert body["citations"] and all(c["rerank_score"] >= 0.5 for c in body["citations"])
    log, citations = wait_for_log(body["request_id"])
    assert log.top_k == 3
    assert {str(c.chunk_id) for c in citations} == set(ids)


def test_a_slow_ranker_falls_back_to_the_fused_order_within_the_timeout(
    served: Served, corpus: Corpus
) -> None:
    retrieve(served, corpus, top_k=4)  # warm: the first query of a process pays for imports
    served.standin.reset()
    served.standin.latency = 5.0
    body, reranking = retrieve(served, corpus, top_k=4)
    assert reranking < TIMEOUT_SECONDS + 1.0, reranking  # cut at the budget, not the ranker's 5 s
    assert_fused_order(body, sent_records(served), 4)
    served.standin.latency = 0.0
    lines = log_lines(served, "rerank fell back")
    assert lines and '"rerank_status": "timeout"' in lines[-1]
    assert '"severity": "WARNING"' in lines[-1]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_failing_ranker_falls_back_to_the_fused_order(
    served: Served, corpus: Corpus, status: int
) -> None:
    served.standin.fail_next(1, status, retry_after=0 if status == 429 else None)
    body, reranking = retrieve(served, corpus, top_k=5)
    assert reranking < TIMEOUT_SECONDS + 1.0, reranking
    assert_fused_order(body, sent_records(served), 5)
    assert len(served.standin.requests_to("rank")) == 1  # no retry within the budget
    reason = "rate_limited" if status == 429 else "unavailable"
    assert f'"rerank_status": "{reason}"' in log_lines(served, "rerank fell back")[-1]


def test_a_429_pauses_reranking_for_its_retry_after(served: Served, corpus: Corpus) -> None:
    """No query hammers a rate-limited ranker: the pause (capped at 1 s here) skips the call."""
    served.standin.fail_next(1, 429, retry_after=30)
    retrieve(served, corpus)
    body, _ = retrieve(served, corpus)
    assert len(served.standin.requests_to("rank")) == 1  # the second query did not call
    assert all(c["rerank_score"] is None for c in body["citations"])
    assert '"rerank_status": "backing_off"' in log_lines(served, "rerank fell back")[-1]
    time.sleep(1.1)
    body, _ = retrieve(served, corpus)
    assert len(served.standin.requests_to("rank")) == 2
    assert all(c["rerank_score"] is not None for c in body["citations"])


def test_long_chunks_are_cut_to_the_models_record_limit(served: Served, database_url: str) -> None:
    tenant = make_tenant("rerank-long")
    long_text = "The hinge pin of the rover is replaced every 400 hours. " + "Filler words " * 2000
    short_text = "The rover hinge pin is replaced on schedule."
    insert_document(tenant, "A very long manual " * 40, [long_text, short_text])
    response = served.ask(tenant.project_id, tenant.api_key, mode="retrieve")
    assert response.status_code == 200, response.text
    limit = record_token_limit("semantic-ranker-default-004")
    assert limit == 1024
    records = sent_records(served)
    assert len(records) == 2
    for record in records:
        assert estimate_tokens(record["title"]) + estimate_tokens(record["content"]) <= limit
    long_record = next(r for r in records if r["content"].startswith("The hinge pin of the rover"))
    assert long_text.startswith(long_record["content"])
    assert len(long_record["content"]) < len(long_text)
    assert estimate_tokens(long_record["title"]) <= limit // 4
    # The response still carries the whole chunk.
    contents = {c["content"] for c in response.json()["citations"]}
    assert long_text in contents


# --- the client and the stand-in, without the query function -----------------------------------


@pytest.fixture
def standin() -> Iterator[ModelStandin]:
    with start_model_standin() as standin:
        yield standin


def test_the_client_never_sends_more_records_than_the_api_takes(standin: ModelStandin) -> None:
    ranker = VertexRanker(standin.settings(rerank_provider=RerankProvider.VERTEX))
    records = [RerankRecord(str(i), f"title {i}", f"text {i}") for i in range(250)]
    ranked = ranker.rank("text", records, top_n=10)
    assert len(ranked) == 10
    (request,) = standin.requests_to("rank")
    assert len(request.body["records"]) == MAX_RECORDS_PER_REQUEST == 200


def test_the_standin_refuses_what_the_real_api_refuses(standin: ModelStandin) -> None:
    ranker = VertexRanker(standin.settings(rerank_provider=RerankProvider.VERTEX))
    headers = {"Authorization": "Bearer standin-token"}

    def post(records: list[dict[str, str]], model: str = "semantic-ranker-fast-004") -> Any:
        body = {"model": model, "query": "q", "records": records}
        return httpx.post(ranker.url, json=body, headers=headers)

    too_many = post([{"id": str(i), "content": "c"} for i in range(201)])
    assert too_many.status_code == 400
    assert too_many.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "200" in too_many.json()["error"]["message"]
    assert post([{"id": "1"}]).status_code == 400  # neither title nor content
    assert post([{"id": "1", "content": "c"}], model="text-embedding-005").status_code == 400
    ok = post([{"id": str(i), "content": "c"} for i in range(200)])
    assert ok.status_code == 200
    assert len(ok.json()["records"]) == 200
    assert set(ok.json()["records"][0]) == {"id", "score", "title", "content"}


def test_a_refused_request_falls_back_and_is_not_raised(standin: ModelStandin) -> None:
    reranker = build_reranker(
        standin.settings(rerank_provider=RerankProvider.VERTEX, rerank_model="not-a-ranker")
    )
    outcome = reranker.rerank("q", [RerankRecord("1", "t", "c")], top_n=1)
    assert outcome.fell_back
    assert outcome.status == "refused"
    assert "400" in outcome.detail


def test_the_rankers_own_http_timeout_is_a_timeout(standin: ModelStandin) -> None:
    """The HTTP client's read timeout equals the budget, so it can fire a moment before the
    deadline does (a race the served test above once lost): reported as a timeout all the
    same. Here the client's timeout is the shorter one, so it always fires first."""
    settings = standin.settings(rerank_provider=RerankProvider.VERTEX, rerank_timeout_seconds=0.2)
    reranker = DeadlineReranker(VertexRanker(settings), timeout_seconds=30.0)
    standin.latency = 2.0
    try:
        outcome = reranker.rerank("q", [RerankRecord("1", "t", "c")], top_n=1)
    finally:
        standin.latency = 0.0
    assert outcome.fell_back and outcome.status == "timeout", outcome
    assert "ReadTimeout" in outcome.detail and outcome.elapsed_ms < 2000
