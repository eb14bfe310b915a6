"""Embeddings behind one small protocol, the implementation chosen by settings.

`local` (default): all-MiniLM-L6-v2 in numpy, offline, weights from the `local` extra.
`vertex`: Vertex AI through google-genai (gemini-embedding-001, 1536 dims, task types).
Both return float32, L2-normalised rows, truncate over-long input as their model does, and raise
`ModelRateLimitedError` / `ModelUnavailableError` once retries are exhausted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from common.platform.config import ConfigError, EmbeddingProvider, Settings, get_settings

if TYPE_CHECKING:
    from common.platform.spaces import EmbeddingSpace

Float32Array = npt.NDArray[np.float32]


class Embedder(Protocol):
    model_name: str
    dimension: int
    # The longest input (in `count_tokens` units) the model embeds without truncating it.
    max_input_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> Float32Array: ...

    def embed_query(self, text: str) -> Float32Array: ...

    def count_tokens(self, text: str) -> int: ...


_BUILD_LOCK = threading.Lock()


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The embedder for `settings` (default: the process settings), built once per process."""
    settings = settings or get_settings()
    with _BUILD_LOCK:  # concurrent first calls must not build two
        return _cached_embedder(settings)


@lru_cache(maxsize=8)
def _cached_embedder(settings: Settings) -> Embedder:
    return build_embedder(settings)


def build_embedder(
    settings: Settings,
    *,
    credentials: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> Embedder:
    """A new embedder (uncached): tests pass stand-in credentials and a recording `sleep`."""
    model = settings.resolved_embedding_model
    if settings.embedding_provider is EmbeddingProvider.LOCAL:
        from common.inference.embedders import local_minilm

        if model != local_minilm.MODEL_NAME or settings.resolved_embedding_dim != 384:
            raise ConfigError(
                f"AI_INFRA_EMBEDDING_MODEL={model!r} (dim {settings.resolved_embedding_dim}) is "
                f"not available locally: the local provider runs {local_minilm.MODEL_NAME} (384)"
            )
        return _local_embedder()
    from common.inference.embedders.vertex import VertexEmbedder

    return VertexEmbedder(settings, credentials=credentials, sleep=sleep)


@lru_cache(maxsize=1)
def _local_embedder() -> Embedder:
    """One local model per process whatever the settings: its weights are ~90 MB."""
    from common.inference.embedders.local_minilm import LocalMiniLMEmbedder

    return LocalMiniLMEmbedder()


def embedder_for_space(space: EmbeddingSpace, settings: Settings | None = None) -> Embedder:
    """The embedder of an embedding space: the configured one for the inline space, else the
    space's model at its dimension (the local model, or Vertex AI with the same client
    settings), built once per process."""
    settings = settings or get_settings()
    if space.table is None:
        return get_embedder(settings)
    local = space.model == "all-MiniLM-L6-v2"
    return get_embedder(
        settings.model_copy(
            update={
                "embedding_provider": EmbeddingProvider.LOCAL
                if local
                else EmbeddingProvider.VERTEX,
                "embedding_model": space.model,
                "embedding_dim": space.dimensions,
                # The configured batch size was chosen for the configured provider.
                "embedding_batch_size": None,
            }
        )
    )
