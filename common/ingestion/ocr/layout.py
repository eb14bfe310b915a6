"""Recognised text boxes to page text in reading order: lines, paragraphs and columns.

An OCR engine finds boxes of text (a line or part of one), not lines: boxes that overlap
vertically are one line, read left to right; a vertical gap wider than a line's height starts a
paragraph (a blank line, so chunking keeps paragraphs together). Columns are found per band: the
page is cut at its wide lines (titles, full-width paragraphs, footers), and a band whose boxes
fall on both sides of an empty vertical gutter, with full lines on each side, is read column by
column, left then right, each side split again when it holds columns of its own (an index in
three columns under a change history in two). A table is not mistaken for columns: its short
cells do not fill their side, and its columns differ in width where text columns are equal; a
long listing whose lines are mostly short (`%%%` comment lines) is, since its longer lines do.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Boxes overlapping this share of the lower one's height are on one line.
LINE_OVERLAP = 0.5
# A gap between lines wider than this many line heights starts a paragraph.
PARAGRAPH_GAP = 0.9
# Two columns need at least this many lines on each side, most of them filling this share of
# their side; in a column of at least COLUMN_LONG lines, the longest quarter filling it is enough.
COLUMN_MIN_BOXES = 5
COLUMN_FILL = 0.5
COLUMN_LONG = 20
# A box at least this share of the text's width is a wide line: bands are cut at them.
WIDE_LINE = 0.6
# Columns within columns, at most this deep.
MAX_COLUMN_DEPTH = 3
# Columns of text are this close in width (the narrowest over the widest); a table's are not.
COLUMN_EQUAL_WIDTHS = 0.8
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
    """Blocks in reading order: top to bottom, bands cut at wide lines; a band in columns gives
    one block per column (left to right), the text between them stays one block."""
    start, end = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    blocks: list[list[Box]] = []
    plain: list[Box] = []  # single-column text since the last band in columns
    band: list[Box] = []

    def close_band() -> None:
        columns = _split(band[:], depth=1)[0]
        if len(columns) > 1:
            if plain:
                blocks.append(plain[:])
                plain.clear()
            blocks.extend(columns)
        else:
            plain.extend(band)
        band.clear()

    for box in sorted(boxes, key=lambda b: b.middle):
        if box.x1 - box.x0 >= WIDE_LINE * (end - start):
            close_band()
            plain.append(box)
        else:
            band.append(box)
    close_band()
    if plain:
        blocks.append(plain)
    return blocks


def _split(boxes: list[Box], depth: int) -> tuple[list[list[Box]], list[float]]:
    """The band as it is, or its columns left to right (each split again if it can be), then
    the few boxes that cross the gutter; with the widths of the columns found. Columns of text
    are set on a grid of equal widths, a table's columns follow their content: a split into
    columns of unequal widths (a narrow option column beside a wide comment column) is a table,
    read row by row."""
    whole = ([boxes], [max(b.x1 for b in boxes) - min(b.x0 for b in boxes)] if boxes else [0.0])
    gutter = _gutter(boxes) if depth <= MAX_COLUMN_DEPTH and boxes else None
    if gutter is None:
        return whole
    left, left_widths = _split([b for b in boxes if b.x1 <= gutter], depth + 1)
    right, right_widths = _split([b for b in boxes if b.x0 >= gutter], depth + 1)
    widths = left_widths + right_widths
    if min(widths) < COLUMN_EQUAL_WIDTHS * max(widths):
        return whole
    crossing = [b for b in boxes if b.x0 < gutter < b.x1]
    return [*left, *right, *([crossing] if crossing else [])], widths


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
    not the cells of a table; in a long column, its longest quarter (a listing of mostly short
    comment lines). Measured by line, not by box: the engine cuts a line at wide spaces (a code
    listing's `%%%  text` is two boxes), so boxes alone look like cells."""
    lines = _lines(boxes)
    if len(lines) < COLUMN_MIN_BOXES:
        return False
    extents = sorted(max(b.x1 for b in line) - min(b.x0 for b in line) for line in lines)
    if statistics.median(extents) >= COLUMN_FILL * side:
        return True
    longer_quarter = extents[min(len(extents) - 1, len(extents) * 3 // 4)]
    return len(lines) >= COLUMN_LONG and longer_quarter >= COLUMN_FILL * side


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
