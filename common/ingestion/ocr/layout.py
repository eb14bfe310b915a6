"""Recognised text boxes to page text in reading order: lines, paragraphs and two columns.

An OCR engine finds boxes of text (a line or part of one), not lines: boxes that overlap
vertically are one line, read left to right; a vertical gap wider than a line's height starts a
paragraph (a blank line, so chunking keeps paragraphs together). A page whose boxes fall on both
sides of an empty vertical gutter, with full lines on each side, is read as two columns, left
then right, between the boxes spanning both (titles, footers); a table of short cells is not
mistaken for columns, since its cells do not fill their side.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Boxes overlapping this share of the lower one's height are on one line.
LINE_OVERLAP = 0.5
# A gap between lines wider than this many line heights starts a paragraph.
PARAGRAPH_GAP = 0.9
# Two columns need at least this many lines on each side, filling this share of their side.
COLUMN_MIN_BOXES = 5
COLUMN_FILL = 0.5
# At most this share of the boxes may cross the gutter (titles, footers, stray merges).
COLUMN_MAX_SPANNING = 0.15
_GUTTER_BINS = 200


@dataclass(frozen=True)
class Box:
    """One recognised piece of text and its axis-aligned bounds in page pixels."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def middle(self) -> float:
        return (self.y0 + self.y1) / 2


def page_text(boxes: Sequence[Box]) -> str:
    """The page's text: blocks in reading order, paragraphs separated by a blank line."""
    boxes = [box for box in boxes if box.text.strip() and box.height > 0]
    if not boxes:
        return ""
    blocks = [_paragraphs(_lines(block)) for block in _reading_blocks(boxes)]
    return "\n\n".join(block for block in blocks if block)


def _reading_blocks(boxes: list[Box]) -> list[list[Box]]:
    """One block for a single-column page; for two columns, runs of full-width boxes and, between
    them, the left column then the right one."""
    gutter = _gutter(boxes)
    if gutter is None:
        return [boxes]
    blocks: list[list[Box]] = []
    spanning: list[Box] = []
    left: list[Box] = []
    right: list[Box] = []

    def flush_columns() -> None:
        blocks.extend(side for side in (left[:], right[:]) if side)
        left.clear()
        right.clear()

    for box in sorted(boxes, key=lambda b: b.middle):
        if box.x0 < gutter < box.x1:
            flush_columns()
            spanning.append(box)
            continue
        if spanning:
            blocks.append(spanning[:])
            spanning.clear()
        (left if box.x1 <= gutter else right).append(box)
    flush_columns()
    if spanning:
        blocks.append(spanning)
    return blocks


def _gutter(boxes: list[Box]) -> float | None:
    """The x of an empty vertical gap between two columns of full lines, or None."""
    if len(boxes) < 2 * COLUMN_MIN_BOXES:
        return None
    start, end = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    width = end - start
    if width <= 0:
        return None
    counts = [0] * _GUTTER_BINS
    for box in boxes:
        first = int((box.x0 - start) / width * (_GUTTER_BINS - 1))
        last = int((box.x1 - start) / width * (_GUTTER_BINS - 1))
        for index in range(first, last + 1):
            counts[index] += 1
    middle = range(_GUTTER_BINS // 4, 3 * _GUTTER_BINS // 4)
    fewest = min(counts[i] for i in middle)
    empty = [i for i in middle if counts[i] == fewest]
    gutter = start + (empty[len(empty) // 2] + 0.5) / (_GUTTER_BINS - 1) * width
    if fewest > COLUMN_MAX_SPANNING * len(boxes):
        return None
    left = [b for b in boxes if b.x1 <= gutter]
    right = [b for b in boxes if b.x0 >= gutter]
    if not (_full_column(left, gutter - start) and _full_column(right, end - gutter)):
        return None
    overlap = min(max(b.y1 for b in left), max(b.y1 for b in right)) - max(
        min(b.y0 for b in left), min(b.y0 for b in right)
    )
    return gutter if overlap > 0 else None


def _full_column(boxes: list[Box], side: float) -> bool:
    """Enough lines, most of them nearly as wide as their side of the gutter: lines of text,
    not the cells of a table. Measured by line, not by box: the engine cuts a line at wide
    spaces (a code listing's `%%%  text` is two boxes), so boxes alone look like cells."""
    lines = _lines(boxes)
    if len(lines) < COLUMN_MIN_BOXES:
        return False
    extents = [max(b.x1 for b in line) - min(b.x0 for b in line) for line in lines]
    return statistics.median(extents) >= COLUMN_FILL * side


def _lines(boxes: list[Box]) -> list[list[Box]]:
    """Boxes grouped into lines (top to bottom), each line's boxes left to right."""
    lines: list[list[Box]] = []
    top = bottom = 0.0
    for box in sorted(boxes, key=lambda b: b.middle):
        if lines:
            overlap = min(bottom, box.y1) - max(top, box.y0)
            if overlap >= LINE_OVERLAP * min(box.height, bottom - top):
                lines[-1].append(box)
                top, bottom = min(top, box.y0), max(bottom, box.y1)
                continue
        lines.append([box])
        top, bottom = box.y0, box.y1
    return [sorted(line, key=lambda b: b.x0) for line in lines]


def _paragraphs(lines: list[list[Box]]) -> str:
    if not lines:
        return ""
    height = statistics.median(max(b.y1 for b in line) - min(b.y0 for b in line) for line in lines)
    out: list[str] = []
    previous_bottom: float | None = None
    for line in lines:
        top, bottom = min(b.y0 for b in line), max(b.y1 for b in line)
        if previous_bottom is not None:
            out.append("\n\n" if top - previous_bottom > PARAGRAPH_GAP * height else "\n")
        out.append(" ".join(b.text.strip() for b in line))
        previous_bottom = bottom
    return "".join(out)
