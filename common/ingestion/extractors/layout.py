"""Building a page from a document's parts: headings, paragraphs and tables, marks placed right.

Extractors of structured formats (slides, sheets, OpenDocument, EPUB, JSON) add parts in reading
order; every string read from a document goes through `strip_marks`, so only the builder places
marks. A table is written as Markdown rows ("| Widget | $1,599.99 |") in blocks that each fit one
chunk and start with the header row, so every chunk of a table names its columns; each data row
carries a ROW_MARK and its number, so citations say which rows they quote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from common.ingestion.extractors.base import ExtractOptions, RawPage
from common.ingestion.extractors.headings import HEADING_MARK, ROW_MARK, clean_heading, strip_marks

BLOCK_SEPARATOR = "\n\n"


def markdown_row(cells: Sequence[str]) -> str:
    """One table row; cell text on one line, pipes escaped."""
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


# A cell that reads as a quantity: a number (signs, currency, grouping, percent, a unit) or a
# date/time; a header row holds none.
_QUANTITY = re.compile(
    r"^[(+\-−]?[^\w\s]{0,3}\s?\d[\d,.\s\u00a0\u202f']*(?:[eE][+-]?\d+)?\)?\s?(?:%|[^\W\d]{1,3}\.?)?$"
    r"|^\d{1,4}[-/.]\d{1,2}(?:[-/.]\d{1,4})?(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?(?:\s?[AP]M)?$"
    r"|^\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AP]M)?$"
    r"|^\d{1,2}[-/ ][^\W\d]{3,9}\.?[-/ ,]+\d{2,4}$|^[^\W\d]{3,9}\.? \d{1,2},? \d{4}$",
    re.IGNORECASE,
)


def _heads(cells: Sequence[str], quantities: set[int]) -> bool:
    """Whether a row reads as a new table's header: two or more cells, none a quantity, one of
    them in a column where the table above holds quantities."""
    values = [cell.strip() for cell in cells]
    filled = [value for value in values if value]
    return (
        len(filled) >= 2
        and not any(_QUANTITY.match(value) for value in filled)
        and any(values[i] for i in quantities if i < len(values))
    )


def _trimmed(cells: Sequence[str]) -> Sequence[str]:
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _cell(text: str) -> str:
    return " ".join(strip_marks(text).split()).replace("|", "\\|")


class PageBuilder:
    """Collects one page's parts; `build()` returns the RawPage (see the module docstring)."""

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._headings: list[tuple[int, str]] = []
        self._rows: list[int] = []

    @property
    def empty(self) -> bool:
        return not self._blocks

    def heading(self, level: int, title: str) -> None:
        """A section heading, its own paragraph; part of the heading path of what follows."""
        cleaned = clean_heading(strip_marks(title))
        if cleaned:
            self._blocks.append(HEADING_MARK + cleaned)
            self._headings.append((max(1, level), cleaned))

    def paragraph(self, text: str) -> None:
        """A paragraph (line breaks inside it are kept); blank text adds nothing."""
        text = strip_marks(text).strip()
        if text:
            self._blocks.append(text)

    def lines(self, lines: Iterable[tuple[int | None, str]]) -> None:
        """Lines of one block; a line with a number gets a ROW_MARK ("record 12")."""
        parts = []
        for number, raw in lines:
            line = strip_marks(raw).strip()
            if not line:
                continue
            if number is not None:
                self._rows.append(number)
            parts.append(line if number is None else ROW_MARK + line)
        if parts:
            self._blocks.append("\n".join(parts))

    def table(
        self,
        header: Sequence[str] | None,
        rows: Iterable[tuple[int, Sequence[str]]],
        options: ExtractOptions,
        *,
        stacked: bool = False,
    ) -> int:
        """Markdown rows in blocks that fit one chunk, each opening with `header`; rows are
        (row number, cells). Returns how many rows were written.

        `stacked`: the rows may hold several tables one under another (a summary above its
        detail, one table per region), as sheets often do. After one or more empty rows (a gap
        in the row numbers), a row of labels (two or more cells, none a number or a date) with
        a label where the table so far holds numbers or dates is the next table's header, and a
        single value just above it is that table's title line; so each table's chunks name its
        own columns. Any other row continues the table (a table of text alone is never split:
        its rows after a gap look like a header).
        """
        head = markdown_row(header) if header is not None and any(c.strip() for c in header) else ""
        block: list[str] = []
        numbers: list[int] = []
        written = 0
        in_table = 0  # rows written under the current header
        quantities: set[int] = set()  # its columns holding numbers or dates
        previous: int | None = None
        title: tuple[int, Sequence[str]] | None = None  # a lone value after a gap, held back

        def add(number: int, cells: Sequence[str]) -> None:
            nonlocal block, numbers, written, in_table
            if stacked:
                quantities.update(
                    i for i, cell in enumerate(cells) if _QUANTITY.match(cell.strip())
                )
            line = markdown_row(cells)
            if block and not options.fits_block("\n".join([head, *block, line]).strip()):
                self._table_block(head, block, numbers)
                block, numbers = [], []
            block.append(line)
            numbers.append(number)
            written += 1
            in_table += 1

        def close() -> None:
            nonlocal block, numbers
            if block:
                self._table_block(head, block, numbers)
            elif head:
                self._blocks.append(head)  # a header without rows is still text
            block, numbers = [], []

        for number, cells in rows:
            if not any(cell.strip() for cell in cells):
                continue
            after_gap = previous is not None and number > previous + 1
            under_title = title is not None and number == title[0] + 1
            previous = number
            if stacked and (after_gap or under_title) and _heads(cells, quantities):
                close()
                if title is not None:
                    self.lines([(title[0], " ".join(c for c in title[1] if c.strip()))])
                    title = None
                head, in_table = markdown_row(_trimmed(cells)), 0
                quantities.clear()
                continue
            if title is not None:
                add(*title)
                title = None
            if stacked and in_table and after_gap and sum(1 for c in cells if c.strip()) == 1:
                title = (number, cells)
                continue
            add(number, cells)
        if title is not None:
            add(*title)
        close()
        return written

    def _table_block(self, head: str, block: list[str], numbers: list[int]) -> None:
        self._rows.extend(numbers)
        rows = "\n".join(ROW_MARK + line for line in block)
        self._blocks.append(f"{head}\n{rows}" if head else rows)

    def build(self, *, name: str | None = None, ocr: bool = False) -> RawPage:
        return RawPage(
            text=BLOCK_SEPARATOR.join(self._blocks),
            name=name,
            headings=list(self._headings),
            rows=list(self._rows),
            ocr=ocr,
        )
