"""What every format extractor returns, before normalisation: raw pages with their places.

An extractor turns bytes into a `RawDocument`: its pages in order (a PDF page, a slide, a sheet,
an image frame, an EPUB chapter), each with the text a reader reads. Places finer than a page
travel inside the text as marker characters, so they survive normalisation exactly (see
`common.ingestion.extractors.headings`): HEADING_MARK before each section heading (its level and
title listed in `RawPage.headings`, in order) and ROW_MARK before each row or record a citation
can name (its number listed in `RawPage.rows`). `common.ingestion.extract` normalises the pages,
turns the marks into offsets and checks the limits in `ExtractOptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from common.ingestion.extractors.normalize import UnicodeForm
from common.platform.formats import Kind


class TokenCounter(Protocol):
    def count_tokens(self, text: str) -> int: ...


class PageUnit(StrEnum):
    """What one page of a format is, as a citation names it ("slide 7", "sheet Budget")."""

    PAGE = "page"
    SLIDE = "slide"
    SHEET = "sheet"
    IMAGE = "image"
    CHAPTER = "chapter"


class RowUnit(StrEnum):
    """What a ROW_MARK stands for ("rows 12-40", "records 3-5", "lines 7-9")."""

    ROW = "row"
    RECORD = "record"
    LINE = "line"


@dataclass
class RawPage:
    """One page of a document as its extractor read it (marks explained in the module doc)."""

    text: str
    # How a citation names the page when it is not its number ("Budget" for a sheet).
    name: str | None = None
    headings: list[tuple[int, str]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    # The text was recognised from an image (OCR), not read from a text layer.
    ocr: bool = False


@dataclass
class RawDocument:
    pages: list[RawPage]
    unit: PageUnit = PageUnit.PAGE
    # Whether pages are the format's own (PDF pages, slides, sheets, frames), so citations name
    # them; a format without pages (Word, HTML, text) is one page that citations do not name.
    paged: bool = False
    row_unit: RowUnit = RowUnit.ROW
    # NFKC for formats whose compatibility characters are font artefacts (PDF ligatures).
    form: UnicodeForm = "NFC"
    # Why there is no text, when no page has any (e.g. "no text in the Word document").
    empty_message: str = "no extractable text (the file is blank)"
    # What was left out or could not be read, for the job and the document (never text).
    notices: list[str] = field(default_factory=list)
    # PDF bookmarks as (level, title, page number), placed on their pages after normalisation.
    outline: list[tuple[int, str, int]] | None = None
    # Numbered section lines ("2.1 Options") stand in for headings when there are none.
    numbered_headings: bool = False


@dataclass(frozen=True)
class ExtractOptions:
    """Limits and helpers of one extraction; the defaults suit tests and one-off calls."""

    max_pages: int = 2000
    # Sheet and table rows read per document; past it the rest is skipped with a notice.
    max_rows: int = 100_000
    # Pixels per decoded image (decompression bombs); pages past it fail the document.
    max_image_pixels: int = 60_000_000
    # Bytes a zip package (OOXML, OpenDocument, EPUB) may unpack to (zip bombs).
    max_unpacked_bytes: int = 512 * 1024 * 1024
    # Table blocks (header row + rows) are cut to fit one chunk of this many tokens, counted
    # with `tokenizer`; without a tokenizer, by an estimate of 2 characters a token.
    block_tokens: int = 200
    tokenizer: TokenCounter | None = None
    # Pages with no text layer are recognised (OCR) when an engine is given.
    ocr: OcrEngine | None = None
    # OCR rendering resolution for PDF pages.
    ocr_dpi: int = 200
    # Called between pages of long work (OCR): raises to stop (a lost lease, a time budget).
    checkpoint: Callable[[], None] | None = None
    # time.monotonic() by which OCR must be done (the job's time budget); None: no limit.
    deadline: float | None = None
    # Set by `extract_text` for the extractor: the detected format and the declared charset.
    kind: Kind | None = None
    charset: str | None = None

    def fits_block(self, text: str) -> bool:
        """Whether a table block fits one chunk."""
        if self.tokenizer is None:
            return len(text) <= self.block_tokens * 2
        return self.tokenizer.count_tokens(text) <= self.block_tokens


class OcrEngine(Protocol):
    """Recognises the text of page images (`common.ingestion.ocr`)."""

    name: str
    # Pages recognised at once: 1 for an engine that spreads one page over every CPU.
    concurrency: int

    def recognize(self, image: object) -> str:
        """The text of one page image (a PIL image), lines in reading order; "" when none."""
        ...
