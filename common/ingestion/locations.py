"""Where a chunk sits in its document, as a citation says it: "slide 7", "sheet Budget, rows
2-41", "pages 3-4 (OCR)".

Page numbers alone cannot say this: a page is a slide, a sheet, an image frame or a chapter
depending on the format, a sheet is named rather than numbered, and a row range is finer than a
page. Formats without pages of their own (Word, HTML, text) have no location unless rows name
one (CSV, JSON records).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

from common.ingestion.chunking import Chunk
from common.ingestion.extract import ExtractedText, Page
from common.ingestion.extractors.base import PageUnit


def with_locations(chunks: Sequence[Chunk], document: ExtractedText) -> list[Chunk]:
    """The chunks with `location` set (see the module docstring)."""
    row_starts = [row.char_start for row in document.rows]
    return [
        dataclasses.replace(chunk, location=_locate(chunk, document, row_starts))
        for chunk in chunks
    ]


def _locate(chunk: Chunk, document: ExtractedText, row_starts: list[int]) -> str | None:
    pages = document.pages
    first, last = pages[chunk.page_start - 1], pages[chunk.page_end - 1]
    ocr = any(page.ocr for page in pages[chunk.page_start - 1 : chunk.page_end])
    place = _pages(document, first, last) if document.paged else None
    rows = _rows(chunk, document, row_starts)
    if rows:
        place = f"{place}, {rows}" if place else rows
    if ocr:
        place = f"{place} (OCR)" if place else f"{document.unit.value} (OCR)"
    return place


def _pages(document: ExtractedText, first: Page, last: Page) -> str | None:
    unit = document.unit.value
    if len(document.pages) == 1 and document.unit in (PageUnit.IMAGE, PageUnit.PAGE):
        return None  # one image or one page: nothing to tell apart
    if first.number == last.number:
        return f"{unit} {first.name or first.number}"
    if first.name or last.name:
        return f"{unit} {first.name or first.number} to {unit} {last.name or last.number}"
    return f"{unit}s {first.number}-{last.number}"


def _rows(chunk: Chunk, document: ExtractedText, row_starts: list[int]) -> str | None:
    low = bisect.bisect_left(row_starts, chunk.char_start)
    high = bisect.bisect_left(row_starts, chunk.char_end)
    numbers = [row.number for row in document.rows[low:high]]
    if not numbers:
        return None
    unit = document.row_unit.value
    first, last = min(numbers), max(numbers)
    return f"{unit} {first}" if first == last else f"{unit}s {first}-{last}"
