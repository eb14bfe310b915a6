"""The offline default: an answer made of the sources' most relevant sentences, each cited.

No language model: every source sentence is scored against the question by embedding cosine
(the configured embedder) plus the share of the question's keywords it contains. The best few
relevant sentences within a length budget form the answer, in source order, each followed by
" [n]". When no sentence is relevant the answer says so instead of quoting noise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from common.inference.embeddings import Embedder
from common.inference.generators.base import GenerationRequest, GenerationResult, parse_citations
from common.inference.generators.prompt import NOT_FOUND_ANSWER

MODEL_NAME = "extractive"
MAX_SENTENCES = 3
MAX_ANSWER_CHARS = 700
MAX_SENTENCE_CHARS = 400
MIN_WORDS = 3
# Sentences scored per answer, taken from the best-ranked sources first: embedding them is the
# whole cost of an extractive answer (64 short sentences: about 0.5-2 s on 2 shared cores).
MAX_SCORED_SENTENCES = 64
# Relevance thresholds, set on all-MiniLM-L6-v2 where unrelated sentences score below ~0.2.
MIN_COSINE = 0.35
MIN_COSINE_WITH_KEYWORDS = 0.2
MIN_KEYWORD_SHARE = 0.5
KEYWORD_WEIGHT = 0.3
# A sentence scoring this far below the best one adds noise, not support.
MAX_GAP_TO_BEST = 0.25

_SENTENCE = re.compile(r"[^.!?\u3002\n]+(?:[.!?\u3002]+[\"'\u201d\u2019)\]]*|$)", re.MULTILINE)
_WORD = re.compile(r"\w+")
_CITATION_LIKE = re.compile(r"\[\s*\d+(?:\s*[,;\-\u2013]\s*\d+)*\s*\]")
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "its", "of", "on", "or", "so", "that", "the", "their", "there",
    "this", "to", "was", "were", "what", "when", "where", "which", "who", "why", "will", "with",
    "you", "your", "my", "me", "we", "our", "not", "no", "into", "about", "than", "then", "them",
    "they", "he", "she", "his", "her", "has", "have", "had", "been", "being", "if", "but",
})  # fmt: skip


@dataclass(frozen=True)
class _Sentence:
    source: int
    position: int
    text: str


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def keywords(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def split_sentences(text: str) -> list[str]:
    """Sentences and lines of `text`, trimmed, minus bracketed numbers that look like citations."""
    found = []
    for match in _SENTENCE.finditer(text):
        sentence = " ".join(_CITATION_LIKE.sub("", match.group(0)).split())
        if len(_WORD.findall(sentence)) >= MIN_WORDS:
            if len(sentence) > MAX_SENTENCE_CHARS:
                sentence = sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " \u2026"
            found.append(sentence)
    return found


class ExtractiveGenerator:
    """Generator with no model: see the module docstring."""

    model_name = MODEL_NAME

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def generate(self, request: GenerationRequest) -> GenerationResult:
        chosen = self._choose(request)
        text = " ".join(f"{s.text} [{s.source}]" for s in chosen) or NOT_FOUND_ANSWER
        count = self._embedder.count_tokens
        prompt_tokens = count(request.question) + sum(count(s.content) for s in request.sources)
        return GenerationResult(
            text=text,
            cited=parse_citations(text, len(request.sources)),
            model=MODEL_NAME,
            prompt_tokens=prompt_tokens,
            completion_tokens=count(text),
        )

    def stream(self, request: GenerationRequest) -> Iterator[str | GenerationResult]:
        result = self.generate(request)
        pieces = re.findall(r".+?\[\d+\](?:\s+|$)", result.text) or [result.text]
        yield from pieces
        yield result

    def _choose(self, request: GenerationRequest) -> list[_Sentence]:
        sentences: list[_Sentence] = []
        seen: set[str] = set()
        for source in request.sources:
            for position, text in enumerate(split_sentences(source.content)):
                key = text.lower()
                if key not in seen and len(sentences) < MAX_SCORED_SENTENCES:
                    seen.add(key)  # overlapping chunks repeat sentences
                    sentences.append(_Sentence(source.number, position, text))
        if not sentences or not request.question.strip():
            return []
        question = self._embedder.embed_query(request.question)
        vectors = self._embedder.embed_documents([s.text for s in sentences])
        cosine = vectors @ question
        wanted = keywords(request.question)
        share = np.array(
            [len(wanted & keywords(s.text)) / len(wanted) if wanted else 0.0 for s in sentences]
        )
        relevant = (cosine >= MIN_COSINE) | (
            (share >= MIN_KEYWORD_SHARE) & (cosine >= MIN_COSINE_WITH_KEYWORDS)
        )
        score = cosine + KEYWORD_WEIGHT * share
        if not relevant.any():
            return []
        best = float(score[relevant].max())
        chosen: list[_Sentence] = []
        length = 0
        for index in np.argsort(-score, kind="stable"):
            if len(chosen) == MAX_SENTENCES or score[index] < best - MAX_GAP_TO_BEST:
                break
            sentence = sentences[index]
            if not relevant[index] or (chosen and length + len(sentence.text) > MAX_ANSWER_CHARS):
                continue
            chosen.append(sentence)
            length += len(sentence.text)
        return sorted(chosen, key=lambda s: (s.source, s.position))
