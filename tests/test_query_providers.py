"""Gemini and OpenAI-compatible answers end to end: the served query function, the real client
code, and a local stand-in speaking each provider's REST API in place of the paid endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.model_standins import ModelStandin, start_model_standin
from tests.fixtures.query import Corpus, parse_sse, serve_query, wait_for_log

PARKING = "Is there free parking for guests at the Portugal branch?"


class Served:
    def __init__(self, kind: str, standin: ModelStandin, url: str) -> None:
        self.kind = kind
        self.standin = standin
        self.client = httpx.Client(base_url=url, timeout=60)

    def ask(self, corpus: Corpus, **body: object) -> httpx.Response:
        return self.client.post(
            f"/v1/projects/{corpus.tenant.project_id}/query",
            json={"question": PARKING, **body},
            headers={"Authorization": f"Bearer {corpus.tenant.api_key}"},
        )


def _serve(provider: str, database_url: str, log_dir: Path) -> Iterator[Served]:
    with start_model_standin() as standin:
        env = {
            **standin.env(),
            "AI_INFRA_DATABASE_URL": database_url,
            "AI_INFRA_GENERATION_PROVIDER": provider,
            "AI_INFRA_MODEL_MAX_RETRIES": "1",
            "AI_INFRA_MODEL_RETRY_BASE_SECONDS": "0",
        }
        child, url = serve_query(log_dir, env)
        served = Served(provider, standin, url)
        try:
            yield served
        finally:
            served.client.close()
            child.stop()


@pytest.fixture(scope="module")
def gemini(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve("gemini", database_url, tmp_path_factory.mktemp("gemini"))


@pytest.fixture(scope="module")
def openai(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve("openai", database_url, tmp_path_factory.mktemp("openai"))


@pytest.fixture(params=["gemini", "openai"])
def provider(request: pytest.FixtureRequest) -> Served:
    served: Served = request.getfixturevalue(request.param)
    served.standin.reset()
    return served


def test_answer_cites_the_sources_the_model_cites(provider: Served, corpus: Corpus) -> None:
    provider.standin.answer = "Guests park for free on level minus two [2], badge first [1]."
    provider.standin.usage = (321, 17)
    response = provider.ask(corpus, top_k=4, temperature=0.1, max_output_tokens=200)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == provider.standin.answer
    assert [c["source"] for c in body["citations"]] == [2, 1]
    assert body["usage"] == {"prompt_tokens": 321, "completion_tokens": 17}
    assert body["model"] in ("gemini-2.5-flash", "llama3.1")
    assert body["used_rag"] is True
    # The prompt the model saw numbers the retrieved sources and carries the planted fact.
    action = "generateContent" if body["model"].startswith("gemini") else "chat/completions"
    sent = provider.standin.requests_to(action)[-1].body
    assert "Lisbon office" in str(sent)
    log, citations = wait_for_log(body["request_id"])
    assert (log.prompt_tokens, log.completion_tokens, log.model) == (321, 17, body["model"])
    expected = sorted((c["rank"], uuid.UUID(c["chunk_id"])) for c in body["citations"])
    assert [(c.rank, c.chunk_id) for c in citations] == expected


def test_streamed_answer_arrives_in_pieces_then_done(provider: Served, corpus: Corpus) -> None:
    provider.standin.answer = "The garage is free for visitors [1]. Show your badge [1]."
    response = provider.ask(corpus, stream=True)
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) >= 2
    name, done = events[-1]
    assert name == "done"
    assert "".join(deltas) == done["answer"] == provider.standin.answer
    assert [c["source"] for c in done["citations"]] == [1]


def test_model_rate_limit_becomes_429_with_retry_after(provider: Served, corpus: Corpus) -> None:
    provider.standin.fail_next(2, 429, retry_after=0)
    for stream in (False, True):
        if stream:
            provider.standin.fail_next(2, 429, retry_after=0)
        response = provider.ask(corpus, stream=stream)
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) > 0


def test_model_outage_becomes_503_without_internals(provider: Served, corpus: Corpus) -> None:
    provider.standin.fail_next(2, 503, message="backend exploded at node-17")
    response = provider.ask(corpus)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert "node-17" not in response.text


def test_retrieve_mode_never_calls_the_model(provider: Served, corpus: Corpus) -> None:
    response = provider.ask(corpus, mode="retrieve")
    assert response.status_code == 200, response.text
    assert provider.standin.requests == []


def test_failure_after_the_first_delta_ends_the_stream_with_an_error_event(
    provider: Served, corpus: Corpus
) -> None:
    """The status line is already sent: the failure is reported in-band, never a fake done."""
    provider.standin.answer = "One two three four five six [1]."
    # OpenAI-compatible streams open with an empty role delta, Gemini's with text.
    provider.standin.break_stream_after = 1 if provider.kind == "gemini" else 2
    response = provider.ask(corpus, stream=True)
    assert response.status_code == 200
    events = parse_sse(response.text)
    assert events[0][0] == "delta"
    name, data = events[-1]
    assert name == "error"
    assert data["error"]["code"] == "model_unavailable"
    assert data["error"]["request_id"] == response.headers["x-request-id"]
    assert "done" not in [n for n, _ in events]
