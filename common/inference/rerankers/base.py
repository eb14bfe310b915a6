"""What every reranker takes and gives: records in, (id, score) best first out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RerankRecord:
    """One candidate: `id` comes back with its score; `title` and `content` are scored."""

    id: str
    title: str
    content: str


@dataclass(frozen=True)
class RankedRecord:
    id: str
    score: float


class Reranker(Protocol):
    """A model client: best first, at most `top_n`; raises on any failure (the retry module's
    `classify` tells which kind)."""

    model_name: str

    def rank(
        self, query: str, records: Sequence[RerankRecord], *, top_n: int
    ) -> list[RankedRecord]: ...
