"""Building a page from a document's parts: headings, paragraphs and tables, marks placed right.

Extractors of structured formats (slides, sheets, OpenDocument, EPUB, JSON) add parts in reading
order; every string read from a document goes through `strip_marks`, so only the builder places
marks. A table is written as Markdown rows ("| Widget | $1,599.99 |") in blocks that each fit one
chunk and start with the header row, so every chunk of a table names its columns; each data row
carries a ROW_MARK and its number, so citations say which rows they quote.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from common.ingestion.extractors.base import ExtractOptions, RawPage
from common.ingestion.extractors.headings import HEADING_MARK, ROW_MARK, clean_heading, strip_marks

BLOCK_SEPARATOR = "\n\n"


def markdown_row(cells: Sequence[str]) -> str:
    """One table row; cell text on one line, pipes escaped."""
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


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
    ) -> int:
        """Markdown rows in blocks that fit one chunk, each opening with `header`; rows are
        (row number, cells). Returns how many rows were written."""
        head = markdown_row(header) if header is not None and any(c.strip() for c in header) else ""
        block: list[str] = []
        numbers: list[int] = []
        written = 0
        for number, cells in rows:
            if not any(cell.strip() for cell in cells):
                continue
            line = markdown_row(cells)
            if block and not options.fits_block("\n".join([head, *block, line]).strip()):
                self._table_block(head, block, numbers)
                block, numbers = [], []
            block.append(line)
            numbers.append(number)
            written += 1
        if block:
            self._table_block(head, block, numbers)
        elif head:
            self._blocks.append(head)  # a header without rows is still text
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
