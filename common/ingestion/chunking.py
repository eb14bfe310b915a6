"""Structure-aware chunking of extracted text into token-budgeted, overlapping, citable chunks.

Two passes, each linear in the text:
1. Split into small pieces: paragraphs, then sentences; a sentence over the budget is split at
   line breaks, then words (halving), then characters (halving, for giant tokens such as base64).
   Each piece is counted with the tokenizer exactly once and remembers how strong the boundary
   before it is (page > paragraph > sentence > line > word).
2. Merge pieces greedily up to `max_tokens`, using the sum of piece counts (minus the per-call
   overhead such as [CLS]/[SEP], measured once) as the estimate. When a chunk is full it ends at
   the strongest boundary among the points where it is at least half full (latest wins ties), so
   chunks end at a page, block or paragraph end when one is near. A block (table rows that open with
   their header, or one record of a sheet or JSON file) that fits one chunk is never cut: the
   chunk ends before it. Slides, sheets and chapters are never joined in one chunk. The next chunk
   starts with the trailing whole pieces of the previous one worth up to `overlap_tokens` (no
   overlap across a page break, so page provenance stays clean, nor into a block). A block's
   lines are its pieces. Each chunk is counted once more for its stored
   `token_count`; in the rare case the real count exceeds the budget, pieces are dropped and it is
   recounted.

Every chunk satisfies `content == doc.text[char_start:char_end]`, starts and ends on a
non-whitespace character, and `token_count <= max_tokens`. The output is deterministic.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Protocol

from common.ingestion.extract import ExtractedText, Page
from common.ingestion.extractors.base import PageUnit

# Boundary strengths. A BLOCK is a paragraph of table rows (which repeats its header, see
# `common.ingestion.extractors.layout`) or a record: no overlap runs into it, and one that fits
# a chunk is never cut.
PAGE, BLOCK, PARAGRAPH, SENTENCE, LINE, WORD = 5, 4, 3, 2, 1, 0
# Formats whose pages are units of their own: a chunk never spans two slides, sheets or chapters.
_SEPARATE_PAGES = frozenset({PageUnit.SLIDE, PageUnit.SHEET, PageUnit.CHAPTER})
MIN_FILL = 0.5

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_LINE_BREAK = re.compile(r"\n")
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|[\u3002\uff01\uff1f]+")
_NON_SPACE = re.compile(r"\S+")


class TokenCounter(Protocol):
    def count_tokens(self, text: str) -> int: ...


@dataclass(frozen=True)
class Chunk:
    index: int
    content: str
    char_start: int
    char_end: int
    page_start: int
    page_end: int
    token_count: int
    # Title and section heading path: embedded and indexed with the content, never cited.
    context: str | None = None
    # Where it is, as citations say it ("slide 7", "sheet Budget, rows 2-41"); see `locations`.
    location: str | None = None


def chunk_text(
    doc: ExtractedText, *, max_tokens: int, overlap_tokens: int, tokenizer: TokenCounter
) -> list[Chunk]:
    """Split `doc.text` into chunks of at most `max_tokens` tokens (see the module docstring)."""
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens")
    base = tokenizer.count_tokens("")
    if base >= max_tokens:
        raise ValueError(f"max_tokens={max_tokens} leaves no room after {base} special tokens")
    pieces = _Pieces(doc, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    pieces.split()
    spans = _Merger(pieces, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap_tokens).merge()
    locate = _PageLocator(doc.pages)
    return [
        Chunk(
            index=index,
            content=doc.text[start:end],
            char_start=start,
            char_end=end,
            page_start=locate.first(start),
            page_end=locate.last(end),
            token_count=count,
        )
        for index, (start, end, count) in enumerate(spans)
    ]


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span without leading/trailing whitespace, or None if it is all whitespace."""
    match = _NON_SPACE.search(text, start, end)
    if match is None:
        return None
    last = end
    while text[last - 1].isspace():
        last -= 1
    return match.start(), last


def _segments(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    """Trimmed, non-empty spans of text[start:end] between the separator's matches."""
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in separator.finditer(text, start, end):
        span = _trimmed(text, cursor, match.start())
        if span:
            spans.append(span)
        cursor = match.end()
    span = _trimmed(text, cursor, end)
    if span:
        spans.append(span)
    return spans


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        span = _trimmed(text, cursor, match.end())
        if span:
            spans.append(span)
        cursor = match.end()
    span = _trimmed(text, cursor, end)
    if span:
        spans.append(span)
    return spans


class _Pieces:
    """Pass 1: the text as small counted spans (parallel lists, for speed on long documents)."""

    def __init__(
        self, doc: ExtractedText, tokenizer: TokenCounter, *, max_tokens: int, overlap_tokens: int
    ) -> None:
        self.text = doc.text
        self.pages = _PageLocator(doc.pages)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        # Long sentences are cut into pieces small enough to serve as overlap.
        self.small = max(1, overlap_tokens or max_tokens // 4)
        self.base = tokenizer.count_tokens("")
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.costs: list[int] = []
        self.strengths: list[int] = []
        # Per piece: the index of the first piece of its block, or -1 outside blocks.
        self.blocks: list[int] = []
        self.separate_pages = doc.unit in _SEPARATE_PAGES
        self._row_starts = {row.char_start for row in doc.rows}

    def split(self) -> None:
        text = self.text
        previous_page: int | None = None
        for para_start, para_end in _segments(text, 0, len(text), _PARAGRAPH_BREAK):
            page = self.pages.first(para_start)
            block = text.startswith("| ", para_start) or para_start in self._row_starts
            strength = BLOCK if block else PARAGRAPH
            if previous_page is not None and page != previous_page:
                strength = PAGE
            previous_page = self.pages.last(para_end)
            if block:  # lines are the pieces: a row is never cut at a full stop in a cell
                self._block = len(self.starts)
                for start, end in _segments(text, para_start, para_end, _LINE_BREAK):
                    self._sentence(start, end, strength)
                    strength = LINE
                self._block = -1
                continue
            for start, end in _sentences(text, para_start, para_end):
                self._sentence(start, end, strength)
                strength = SENTENCE

    def _count(self, start: int, end: int) -> int:
        return self.tokenizer.count_tokens(self.text[start:end])

    _block = -1  # while splitting a block: the index of its first piece

    def _add(self, start: int, end: int, count: int, strength: int) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.costs.append(count - self.base)
        self.strengths.append(strength)
        self.blocks.append(self._block)

    def _sentence(self, start: int, end: int, strength: int) -> None:
        count = self._count(start, end)
        if count <= self.max_tokens:
            self._add(start, end, count, strength)
            return
        lines = _segments(self.text, start, end, _LINE_BREAK)
        if len(lines) == 1:
            self._words(start, end, count, strength)
            return
        for line_start, line_end in lines:
            self._words(line_start, line_end, self._count(line_start, line_end), strength)
            strength = LINE

    def _words(self, start: int, end: int, count: int, strength: int) -> None:
        if count <= self.small:
            self._add(start, end, count, strength)
            return
        words = [m.span() for m in _NON_SPACE.finditer(self.text, start, end)]
        self._halve_words(words, 0, len(words), count, strength)

    def _halve_words(
        self, words: list[tuple[int, int]], lo: int, hi: int, count: int, strength: int
    ) -> None:
        start, end = words[lo][0], words[hi - 1][1]
        if hi - lo == 1:
            if count <= self.max_tokens:
                self._add(start, end, count, strength)
            else:
                self._halve_chars(start, end, count, strength)
            return
        if count <= self.small:
            self._add(start, end, count, strength)
            return
        mid = (lo + hi) // 2
        self._halve_words(words, lo, mid, self._count(start, words[mid - 1][1]), strength)
        self._halve_words(words, mid, hi, self._count(words[mid][0], end), WORD)

    def _halve_chars(self, start: int, end: int, count: int, strength: int) -> None:
        if count <= self.max_tokens:
            self._add(start, end, count, strength)
            return
        if end - start == 1:
            raise ValueError(f"max_tokens={self.max_tokens} cannot hold a single character")
        mid = (start + end) // 2
        self._halve_chars(start, mid, self._count(start, mid), strength)
        self._halve_chars(mid, end, self._count(mid, end), WORD)


class _Merger:
    """Pass 2: greedy packing of pieces into chunks, with overlap and boundary preference."""

    def __init__(
        self, pieces: _Pieces, tokenizer: TokenCounter, *, max_tokens: int, overlap_tokens: int
    ) -> None:
        self.p = pieces
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.budget = max_tokens - pieces.base  # what the pieces' costs may add up to

    def merge(self) -> list[tuple[int, int, int]]:
        costs, n = self.p.costs, len(self.p.costs)
        spans: list[tuple[int, int, int]] = []
        first, first_new = 0, 0  # first piece of the chunk; first piece not in the previous one
        strengths, separate = self.p.strengths, self.p.separate_pages
        while first < n:
            end, total = first, 0
            while end < n and total + costs[end] <= self.budget:
                if separate and end > first and strengths[end] == PAGE:
                    break
                total += costs[end]
                end += 1
            if end < n:
                if not (separate and strengths[end] == PAGE):
                    end = self._best_break(first, max(first_new + 1, first + 1), end, total)
                end = self._whole_block(first_new, end)
            first, end, count = self._verified(first, first_new, end)
            spans.append((self.p.starts[first], self.p.ends[end - 1], count))
            if end >= n:
                break
            first, first_new = self._overlap_start(first, end), end
        return spans

    def _whole_block(self, first_new: int, end: int) -> int:
        """Where the chunk ends so that it does not cut a block that fits one chunk: before the
        block, when the chunk keeps a new piece without it."""
        block = self.p.blocks[end]
        if block <= first_new or block == end:
            return end
        if self._block_cost(block) > self.budget:
            return end  # too big for any chunk: cut where it fills
        return block

    def _block_cost(self, block: int) -> int:
        blocks, costs = self.p.blocks, self.p.costs
        total, index = 0, block
        while index < len(blocks) and blocks[index] == block:
            total += costs[index]
            index += 1
        return total

    def _best_break(self, first: int, lowest: int, full: int, total: int) -> int:
        """The end (exclusive piece index) in [lowest, full] with the strongest boundary."""
        strengths, costs = self.p.strengths, self.p.costs
        threshold = MIN_FILL * self.budget
        best, best_strength = full, strengths[full]
        fill = total
        for end in range(full - 1, lowest - 1, -1):
            fill -= costs[end]
            if fill < threshold:
                break
            if strengths[end] > best_strength:
                best, best_strength = end, strengths[end]
        return best

    def _verified(self, first: int, first_new: int, end: int) -> tuple[int, int, int]:
        """Count the chunk for real; drop pieces while a non-additive tokenizer overshoots."""
        while True:
            count = self.tokenizer.count_tokens(
                self.p.text[self.p.starts[first] : self.p.ends[end - 1]]
            )
            if count <= self.max_tokens:
                return first, end, count
            if end - 1 > max(first, first_new):
                end -= 1  # keep at least one new piece
            elif first < end - 1:
                first += 1  # only overlap plus one new piece left: shed overlap
            else:  # one piece, counted alone when it was cut: cannot happen
                raise AssertionError("a single piece exceeds the token budget")

    def _overlap_start(self, first: int, end: int) -> int:
        """Where the next chunk starts: trailing whole pieces worth <= overlap_tokens."""
        costs = self.p.costs
        if self.overlap_tokens == 0 or self.p.strengths[end] >= BLOCK:
            return end
        start, overlap = end, 0
        while start - 1 > first and overlap + costs[start - 1] <= self.overlap_tokens:
            start -= 1
            overlap += costs[start]
        while start < end and overlap + costs[end] > self.budget:
            overlap -= costs[start]  # the next chunk must fit its first new piece
            start += 1
        return start


class _PageLocator:
    """Page numbers of character offsets, by binary search over the non-empty page spans."""

    def __init__(self, pages: list[Page]) -> None:
        spans = sorted((p for p in pages if p.char_end > p.char_start), key=lambda p: p.char_start)
        self.numbers = [p.number for p in spans] or [1]
        self.starts = [p.char_start for p in spans] or [0]
        self.ends = [p.char_end for p in spans] or [1 << 62]

    def first(self, start: int) -> int:
        """The page holding the character at `start`."""
        index = bisect.bisect_right(self.ends, start)
        return self.numbers[min(index, len(self.numbers) - 1)]

    def last(self, end: int) -> int:
        """The page holding the character just before `end`."""
        index = bisect.bisect_left(self.starts, end) - 1
        return self.numbers[max(index, 0)]
