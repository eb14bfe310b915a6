"""Answer generation behind one small protocol, the implementation chosen by settings.

`extractive` (offline default): the most relevant source sentences, each cited; no model.
`gemini`: Gemini on Vertex AI through google-genai. `openai`: any OpenAI-compatible server.
Every answer cites its sources as [n]; `GenerationResult.cited` lists the valid numbers it cites.
Cloud providers raise `ModelRateLimitedError` / `ModelUnavailableError` once retries run out.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from common.config import GenerationProvider, Settings, get_settings


@dataclass(frozen=True)
class Source:
    number: int  # 1-based, as cited "[n]"
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    title: str
    content: str
    page_start: int | None
    page_end: int | None
    score: float


@dataclass(frozen=True)
class GenerationRequest:
    question: str
    sources: Sequence[Source]
    system_prompt: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class GenerationResult:
    text: str
    cited: list[int]  # source numbers the text cites, order of first appearance, valid only
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None


class Generator(Protocol):
    model_name: str

    def generate(self, request: GenerationRequest) -> GenerationResult: ...

    def stream(self, request: GenerationRequest) -> Iterator[str | GenerationResult]:
        """Text deltas, then exactly one final GenerationResult (its text is the whole answer)."""
        ...


_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;\-\u2013]\s*\d+)*)\s*\]")
_NUMBER_OR_RANGE = re.compile(r"(\d+)(?:\s*[\-\u2013]\s*(\d+))?")


def parse_citations(text: str, source_count: int) -> list[int]:
    """Source numbers cited as [1], [1, 3], [2][3] or [1-3], in order of first appearance.

    Numbers outside 1..source_count (a model inventing a source, a year in brackets) are ignored.
    """
    cited: list[int] = []
    seen: set[int] = set()
    for group in _CITATION.finditer(text):
        for match in _NUMBER_OR_RANGE.finditer(group.group(1)):
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) else first
            if last < first or last - first > source_count:
                last = first
            for number in range(first, last + 1):
                if 1 <= number <= source_count and number not in seen:
                    seen.add(number)
                    cited.append(number)
    return cited


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
        from common.generators.gemini import GeminiGenerator

        return GeminiGenerator(settings, credentials=credentials, sleep=sleep)
    if provider is GenerationProvider.OPENAI:
        from common.generators.openai_compat import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator(settings, sleep=sleep)
    from common.embeddings import get_embedder
    from common.generators.extractive import ExtractiveGenerator

    return ExtractiveGenerator(get_embedder(settings))
