"""Vertex AI embeddings through `google-genai` (gemini-embedding-001 by default).

google-genai 3.x sends one text as `:embedContent` and several as `:batchEmbedContents`. A
document's texts go out in batches filled up to the API's per-request limits (250 texts,
20,000 tokens: `AI_INFRA_EMBEDDING_BATCH_SIZE` texts and `REQUEST_TOKEN_BUDGET` estimated
tokens, which leaves a margin for the estimate's error), up to `AI_INFRA_EMBEDDING_CONCURRENCY`
batches in flight at once, results in order. All of a client's calls share one backoff gate, so
a 429 pauses every batch together; a batch the API still refuses as too large (400) is split in
two rather than failing the document. `autoTruncate` cuts an over-long text as the local
embedder cuts at 256 wordpieces. Vectors with a reduced `output_dimensionality` are not unit
length, so rows are L2-normalised here.

`count_tokens` is an estimate, not the Gemini tokenizer (which needs a network call): one token
per 4 UTF-8 bytes, rounded up, about right for English prose and conservative for code. Chunk
budgets far below the model's 2,048-token input limit make the estimate's error harmless.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from common.inference.retry import (
    REQUEST_TIMEOUT_SECONDS,
    ModelRequestError,
    shared_backoff,
)
from common.platform.config import Settings

if TYPE_CHECKING:
    from google import genai

MAX_INPUT_TOKENS = 2048  # gemini-embedding-001's input limit; longer input is auto-truncated
MAX_TEXTS_PER_REQUEST = 250
# The API allows 20,000 tokens a request; our estimate is not Gemini's tokenizer, so keep 25%
# in hand (a batch refused anyway is split, not failed).
REQUEST_TOKEN_BUDGET = 15_000
_TOO_LARGE = frozenset({400, 413})
_SIZE_LIMIT = re.compile(r"token|too (many|large|long)|exceed|limit|at most", re.IGNORECASE)
BYTES_PER_TOKEN = 4

Float32Array = npt.NDArray[np.float32]


def vertex_client(settings: Settings, credentials: Any = None) -> genai.Client:
    """A Vertex AI client: explicit credentials, else the settings' static token, else ADC."""
    from google import genai
    from google.genai import types

    if credentials is None and settings.vertex_access_token:
        from google.oauth2.credentials import Credentials

        credentials = Credentials(token=settings.vertex_access_token)  # type: ignore[no-untyped-call]
    http_options = types.HttpOptions(
        base_url=settings.vertex_base_url,
        timeout=int(REQUEST_TIMEOUT_SECONDS * 1000),
    )
    return genai.Client(
        vertexai=True,
        project=settings.gcp_project,
        location=settings.gcp_location,
        credentials=credentials,
        http_options=http_options,
    )


def estimate_tokens(text: str) -> int:
    """ceil(UTF-8 bytes / 4): the documented estimate used where no tokenizer is local."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def normalise_rows(vectors: Float32Array) -> Float32Array:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Float32Array = (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return out


class LazyVertexClient:
    """One google-genai Vertex AI client, built on first call (cold starts stay cheap)."""

    def __init__(self, settings: Settings, credentials: Any = None) -> None:
        self._settings = settings
        self._credentials = credentials
        self._lock = threading.Lock()
        self._client: genai.Client | None = None

    def __call__(self) -> genai.Client:
        with self._lock:
            if self._client is None:
                self._client = vertex_client(self._settings, self._credentials)
            return self._client


class VertexEmbedder:
    """Embedder for Vertex AI; the client is built on first use (cold starts stay cheap)."""

    max_input_tokens = MAX_INPUT_TOKENS

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Any = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.model_name = settings.resolved_embedding_model
        self.dimension = settings.resolved_embedding_dim
        self._batch_size = min(settings.resolved_embedding_batch_size, MAX_TEXTS_PER_REQUEST)
        self._concurrency = settings.embedding_concurrency
        self._retry, self._gate = shared_backoff(settings, sleep)
        self._get_client = LazyVertexClient(settings, credentials)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def embed_documents(self, texts: Sequence[str]) -> Float32Array:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = list(self._batches(texts))
        workers = min(self._concurrency, len(batches))
        if workers <= 1:
            return np.concatenate([self._embed_splitting(batch) for batch in batches])
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed") as pool:
            return np.concatenate(list(pool.map(self._embed_splitting, batches)))

    def _embed_splitting(self, texts: list[str]) -> Float32Array:
        """One batch; halves of it if the API refuses it as too large (our estimate was low)."""
        try:
            return self._embed(texts, "RETRIEVAL_DOCUMENT")
        except ModelRequestError as error:
            if (
                error.status not in _TOO_LARGE
                or len(texts) == 1
                or not _SIZE_LIMIT.search(str(error))
            ):
                raise
            middle = len(texts) // 2
            return np.concatenate(
                [self._embed_splitting(texts[:middle]), self._embed_splitting(texts[middle:])]
            )

    def embed_query(self, text: str) -> Float32Array:
        vector: Float32Array = self._embed([text], "RETRIEVAL_QUERY")[0]
        return vector

    def _batches(self, texts: Sequence[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        tokens = 0
        for text in texts:
            cost = min(estimate_tokens(text), MAX_INPUT_TOKENS)
            if batch and (len(batch) >= self._batch_size or tokens + cost > REQUEST_TOKEN_BUDGET):
                yield batch
                batch, tokens = [], 0
            batch.append(text)
            tokens += cost
        if batch:
            yield batch

    def _embed(self, texts: list[str], task_type: str) -> Float32Array:
        from google.genai import types

        client = self._get_client()
        config = types.EmbedContentConfig(
            task_type=task_type, output_dimensionality=self.dimension, auto_truncate=True
        )
        response = self._retry.call(
            lambda: client.models.embed_content(
                model=self.model_name,
                contents=texts,  # type: ignore[arg-type]
                config=config,
            ),
            what=f"embedding with {self.model_name}",
            gate=self._gate,
        )
        rows = [list(e.values or []) for e in response.embeddings or []]
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension):
            raise RuntimeError(
                f"{self.model_name} returned embeddings of shape {vectors.shape}, "
                f"expected {(len(texts), self.dimension)}"
            )
        return normalise_rows(vectors)
