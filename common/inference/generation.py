"""Answer generation behind one small protocol, the implementation chosen by settings.

`extractive` (offline default): the most relevant source sentences, each cited; no model.
`gemini`: Gemini on Vertex AI through google-genai. `openai`: any OpenAI-compatible server.
Every answer cites its sources as [n]; `GenerationResult.cited` lists the valid numbers it cites.
Cloud providers raise `ModelRateLimitedError` / `ModelUnavailableError` once retries run out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from common.inference.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    Source,
    parse_citations,
)
from common.platform.config import GenerationProvider, Settings, get_settings

__all__ = [
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "Source",
    "build_generator",
    "get_generator",
    "parse_citations",
]


_BUILD_LOCK = threading.Lock()


def get_generator(settings: Settings | None = None) -> Generator:
    """The generator for `settings` (default: the process settings), built once per process."""
    settings = settings or get_settings()
    with _BUILD_LOCK:  # concurrent first calls must not build two
        return _cached_generator(settings)


@lru_cache(maxsize=8)
def _cached_generator(settings: Settings) -> Generator:
    return build_generator(settings)


def build_generator(
    settings: Settings,
    *,
    credentials: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> Generator:
    """A new generator (uncached): tests pass stand-in credentials and a recording `sleep`."""
    provider = settings.generation_provider
    if provider is GenerationProvider.GEMINI:
        from common.inference.generators.gemini import GeminiGenerator

        return GeminiGenerator(settings, credentials=credentials, sleep=sleep)
    if provider is GenerationProvider.OPENAI:
        from common.inference.generators.openai_compat import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator(settings, sleep=sleep)
    from common.inference.embeddings import get_embedder
    from common.inference.generators.extractive import ExtractiveGenerator

    return ExtractiveGenerator(get_embedder(settings))
