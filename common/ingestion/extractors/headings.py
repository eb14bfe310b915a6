"""Section headings through text normalisation: a marker character travels with the text.

Extractors of structured formats (HTML, Markdown) put HEADING_MARK right before each heading's
text and list the headings' (level, text) in the same order; `extract.py` normalises the page,
records where each mark landed and removes the marks, so heading offsets index the canonical
text exactly. U+FDD0 is a Unicode noncharacter: never meaningful in documents (it is stripped
from the input first) and left alone by NFC/NFKC and whitespace rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADING_MARK = "\ufdd0"
# Before each row or record a citation can name (see `common.ingestion.extractors.base`).
ROW_MARK = "\ufdd1"
_MARKS = re.compile(f"[{HEADING_MARK}{ROW_MARK}]")
_SPACE_AFTER_MARK = re.compile(f"([{HEADING_MARK}{ROW_MARK}])\\s+")
_NUMBERED = re.compile(
    r"^(\d{1,2}(?:\.\d{1,2}){0,3})[ ]+[A-Z][^\n]{1,78}(?<![.,;:])$", re.MULTILINE
)
MAX_HEADING_CHARS = 120


def clean_heading(text: str) -> str:
    """A heading as a context line: one line, no permalink pilcrow, at most 120 characters."""
    words = " ".join(text.replace("\u00b6", " ").split())
    return words if len(words) <= MAX_HEADING_CHARS else words[: MAX_HEADING_CHARS - 1] + "\u2026"


def strip_marks(text: str) -> str:
    """Text read from a document, without the mark characters (they are ours alone)."""
    return _MARKS.sub("", text)


def take_marks(text: str) -> tuple[str, list[int], list[int]]:
    """The text without marks, and the offsets (in that text) where each HEADING_MARK and each
    ROW_MARK stood, in order."""
    headings: list[int] = []
    rows: list[int] = []
    # A heading's text starts right after its mark: whitespace between them would survive the
    # mark's removal as a leading space or an extra blank line.
    parts = _MARKS.split(_SPACE_AFTER_MARK.sub(r"\1", text))
    kinds = _MARKS.findall(text)
    cursor = 0
    for part, kind in zip(parts, kinds, strict=False):
        cursor += len(part)
        (headings if kind == HEADING_MARK else rows).append(cursor)
    return "".join(parts), headings, rows


@dataclass(frozen=True)
class Heading:
    """A section heading: its level (1 = top) and where its text starts in the canonical text."""

    level: int
    title: str
    char_start: int


def marked_headings(
    levels: list[tuple[int, str]], positions: list[int], offset: int
) -> list[Heading]:
    """Pair an extractor's (level, text) list with the positions its marks landed at."""
    return [
        Heading(level, title, offset + position)
        for (level, title), position in zip(levels, positions, strict=True)
    ]


def place_outline(
    text: str, pages: list[tuple[int, int, int]], outline: list[tuple[int, str, int]]
) -> list[Heading]:
    """PDF bookmarks (level, title, page) placed at the line holding the title on its page (else
    at the page's start); `pages` are (number, char_start, char_end)."""
    spans = {number: (start, end) for number, start, end in pages}
    headings = []
    for level, title, page in outline:
        if page not in spans:
            continue
        start, end = spans[page]
        words = r"\s+".join(re.escape(word) for word in title.split())
        # The title on a line of its own (maybe numbered), not in a contents list or a sentence.
        line = re.compile(rf"^(?:\d+(?:\.\d+)*\.?\s+)?{words}[ ]*$", re.IGNORECASE | re.MULTILINE)
        found = line.search(text, start, end)
        headings.append(Heading(level, title, found.start() if found else start))
    return sorted(headings, key=lambda heading: heading.char_start)


def numbered_headings(text: str) -> list[Heading]:
    """Headings of a PDF without bookmarks: short lines such as "2.1 Package Options" (a
    section number, then a capitalised title without a final full stop)."""
    return [
        Heading(match.group(1).count(".") + 1, clean_heading(match.group(0)), match.start())
        for match in _NUMBERED.finditer(text)
    ]
