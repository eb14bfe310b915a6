"""Uploaded bytes to one normalised text with its places: the input of chunking.

`detect` names the format, one extractor per format (`common.ingestion.extractors`) reads it
into raw pages (a PDF page, a slide, a sheet, an image frame, a chapter; formats without pages
have one), and this module normalises the pages one by one (see
`common.ingestion.extractors.normalize`) and joins them with a blank line, so a page span is
exact and no paragraph crosses a page. Section headings and citable rows come with their offsets
in the normalised text. Every kind of bad input raises `PermanentIngestionError` with a message
that is safe to show to users (it never quotes document text).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from common.ingestion.detect import detect_kind
from common.ingestion.extractors.base import (
    ExtractOptions,
    PageUnit,
    RawDocument,
    RowUnit,
)
from common.ingestion.extractors.headings import (
    Heading,
    marked_headings,
    numbered_headings,
    place_outline,
    take_marks,
)
from common.ingestion.extractors.normalize import has_text, normalize_text
from common.platform.errors import PermanentIngestionError
from common.platform.formats import BY_KIND, Kind

PAGE_SEPARATOR = "\n\n"
# Each format's reader, imported on first use (cold starts: most never run in one process).
_EXTRACTORS: dict[Kind, str] = {
    Kind.PDF: "pdf",
    Kind.DOCX: "docx",
    Kind.PPTX: "pptx",
    Kind.XLSX: "xlsx",
    Kind.ODT: "odf",
    Kind.ODP: "odf",
    Kind.ODS: "odf",
    Kind.EPUB: "epub",
    Kind.RTF: "rtf",
    Kind.CSV: "delimited",
    Kind.TSV: "delimited",
    Kind.JSON: "json_records",
    Kind.JSONL: "json_records",
    Kind.IMAGE: "image",
    Kind.MARKDOWN: "markdown",
    Kind.HTML: "html",
    Kind.TEXT: "text",
}


@dataclass(frozen=True)
class Page:
    """A page's span in `ExtractedText.text` (empty pages have char_start == char_end)."""

    number: int
    char_start: int
    char_end: int
    # How citations name it when not by number (a sheet's name); whether its text was OCR'd.
    name: str | None = None
    ocr: bool = False


@dataclass(frozen=True)
class Row:
    """A citable row or record: where it starts in `ExtractedText.text`, and its number."""

    char_start: int
    number: int


@dataclass(frozen=True)
class ExtractedText:
    text: str
    pages: list[Page]
    # Section headings in text order (HTML and Markdown headings, PDF bookmarks or numbered
    # section lines, slide titles, sheet names); chunks carry their heading path as context.
    headings: list[Heading] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    unit: PageUnit = PageUnit.PAGE
    paged: bool = False
    row_unit: RowUnit = RowUnit.ROW
    # What was left out or could not be read (shown with the job and the document).
    notices: list[str] = field(default_factory=list)


def extract_text(
    data: bytes,
    *,
    mime_type: str | None,
    filename: str,
    max_pages: int | None = None,
    options: ExtractOptions | None = None,
) -> ExtractedText:
    """Extract and normalise the text of an uploaded file (see the module docstring)."""
    options = options or ExtractOptions()
    if max_pages is not None:
        options = dataclasses.replace(options, max_pages=max_pages)
    if not data:
        raise PermanentIngestionError("the file is empty")
    kind = detect_kind(data, mime_type, filename)
    options = dataclasses.replace(options, kind=kind, charset=_charset(mime_type))
    raw = _extractor(kind)(data, options)
    if len(raw.pages) > options.max_pages:
        raise PermanentIngestionError(
            f"the {BY_KIND[kind].noun} has {len(raw.pages)} {raw.unit.value}s; the limit is "
            f"{options.max_pages} per document"
        )
    return assemble(raw)


def _extractor(kind: Kind) -> Callable[[bytes, ExtractOptions], RawDocument]:
    module = importlib.import_module(f"common.ingestion.extractors.{_EXTRACTORS[kind]}")
    extract: Callable[[bytes, ExtractOptions], RawDocument] = module.extract
    return extract


def assemble(raw: RawDocument) -> ExtractedText:
    """Normalise and join the pages, turning their marks into heading and row offsets."""
    parts: list[str] = []
    pages: list[Page] = []
    headings: list[Heading] = []
    rows: list[Row] = []
    cursor = 0
    for number, page in enumerate(raw.pages, start=1):
        text, heading_at, row_at = take_marks(normalize_text(page.text, form=raw.form))
        if len(heading_at) != len(page.headings) or len(row_at) != len(page.rows):
            raise PermanentIngestionError(
                f"the document could not be laid out ({raw.unit.value} {number}: "
                "marks and headings disagree)"
            )
        if not has_text(text):
            pages.append(Page(number, cursor, cursor, page.name, page.ocr))
            continue
        if parts:
            parts.append(PAGE_SEPARATOR)
            cursor += len(PAGE_SEPARATOR)
        headings += marked_headings(page.headings, heading_at, cursor)
        rows += [Row(cursor + at, row) for at, row in zip(row_at, page.rows, strict=True)]
        parts.append(text)
        pages.append(Page(number, cursor, cursor + len(text), page.name, page.ocr))
        cursor += len(text)
    if not parts:
        raise PermanentIngestionError(raw.empty_message)
    joined = "".join(parts)
    if raw.outline:
        spans = [(page.number, page.char_start, page.char_end) for page in pages]
        headings = sorted(
            [*headings, *place_outline(joined, spans, raw.outline)],
            key=lambda heading: heading.char_start,
        )
    if raw.numbered_headings and not headings:
        headings = numbered_headings(joined)
    return ExtractedText(
        text=joined,
        pages=pages,
        headings=headings,
        rows=rows,
        unit=raw.unit,
        paged=raw.paged,
        row_unit=raw.row_unit,
        notices=list(raw.notices),
    )


def _charset(mime: str | None) -> str | None:
    for parameter in (mime or "").split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip()
    return None
