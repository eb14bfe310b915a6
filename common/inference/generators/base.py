"""What every generator speaks: the request, the result, the protocol and citation parsing.

Kept apart from `common.inference.generation` (the factory) so the implementations import
their types without importing the module that imports them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


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
    location: str | None = None  # "slide 7", "sheet Budget, rows 2-41"


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
