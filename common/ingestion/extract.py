"""Uploaded bytes to one normalised text with page spans: the input of chunking.

Formats: PDF (page by page, page numbers kept), Word .docx (body text in reading order), plain
text (any text/* type), Markdown, HTML (visible text). Pages are normalised one by one (see
`common.ingestion.extractors.normalize`) and joined with a blank line, so a page span is exact
and no paragraph crosses a page. Non-paged formats have one page, numbered 1. Section headings
(HTML and Markdown headings, PDF bookmarks or else numbered section lines) come with their
offsets in the normalised text (see `common.ingestion.extractors.headings`). Every kind of bad
input raises `PermanentIngestionError` with a message that is safe to show to users (it never
quotes document text).
"""

from __future__ import annotations

import functools
import mimetypes
from dataclasses import dataclass, field, replace
from enum import StrEnum

from common.ingestion.extractors.docx import MIME_TYPE as DOCX_MIME_TYPE
from common.ingestion.extractors.docx import extract_docx_text, is_docx
from common.ingestion.extractors.headings import (
    Heading,
    marked_headings,
    numbered_headings,
    place_outline,
    take_marks,
)
from common.ingestion.extractors.html import declared_charset, html_outline
from common.ingestion.extractors.markdown import markdown_outline
from common.ingestion.extractors.normalize import UnicodeForm, has_text, normalize_text
from common.ingestion.extractors.pdf import extract_pdf
from common.ingestion.extractors.text import decode_text
from common.platform.errors import PermanentIngestionError

PAGE_SEPARATOR = "\n\n"
GENERIC_MIME_TYPES = frozenset(
    {
        "application/octet-stream",
        "binary/octet-stream",
        "application/unknown",
        "application/x-download",
    }
)
SUPPORTED = "PDF, Word (.docx), plain text, Markdown, HTML"
# Explicit, so results do not depend on the host's /etc/mime.types.
_BY_EXTENSION = {
    ".pdf": "application/pdf",
    ".docx": DOCX_MIME_TYPE,
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".mdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
}
_NO_TEXT_PDF = "no extractable text (scanned or image-only PDF?); OCR is not supported"


@dataclass(frozen=True)
class Page:
    """A page's span in `ExtractedText.text` (empty pages have char_start == char_end)."""

    number: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class ExtractedText:
    text: str
    pages: list[Page]
    # Section headings in text order (HTML and Markdown headings, PDF bookmarks or numbered
    # section lines); chunks carry their heading path as context.
    headings: list[Heading] = field(default_factory=list)


class _Kind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


def sniff_mime_type(filename: str, declared: str | None) -> str | None:
    """The MIME type to use: a specific declared type wins, else the file name's extension."""
    declared_type = _base_type(declared)
    if declared_type and declared_type not in GENERIC_MIME_TYPES:
        return declared_type
    name = filename.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    if dot > 0:
        known = _BY_EXTENSION.get(name[dot:])
        if known:
            return known
    guessed, _ = _builtin_mime_table().guess_type(name, strict=False)
    return guessed or declared_type


@functools.cache
def _builtin_mime_table() -> mimetypes.MimeTypes:
    """Python's built-in extension table, read once (not the host's /etc/mime.types)."""
    return mimetypes.MimeTypes()


def extract_text(
    data: bytes, *, mime_type: str | None, filename: str, max_pages: int
) -> ExtractedText:
    """Extract and normalise the text of an uploaded file (see the module docstring)."""
    if not data:
        raise PermanentIngestionError("the file is empty")
    kind, charset = _resolve_kind(data, mime_type, filename)
    if kind is _Kind.PDF:
        raw_pages, outline = extract_pdf(data, max_pages=max_pages)
        document = _assemble(raw_pages, form="NFKC", empty=_NO_TEXT_PDF)
        spans = [(page.number, page.char_start, page.char_end) for page in document.pages]
        headings = place_outline(document.text, spans, outline) if outline else []
        return replace(document, headings=headings or numbered_headings(document.text))
    if kind is _Kind.DOCX:
        return _assemble(
            [extract_docx_text(data)], form="NFC", empty="no text in the Word document"
        )
    if kind is _Kind.HTML:
        source = decode_text(data, declared_charset=charset or declared_charset(data))
        text, levels = html_outline(source)
        return _assemble([text], form="NFC", empty="no visible text in the HTML", marked=levels)
    source = decode_text(data, declared_charset=charset)
    if kind is _Kind.MARKDOWN:
        text, levels = markdown_outline(source)
        return _assemble(
            [text], form="NFC", empty="no extractable text (the file is blank)", marked=levels
        )
    return _assemble([source], form="NFC", empty="no extractable text (the file is blank)")


def _assemble(
    raw_pages: list[str],
    *,
    form: UnicodeForm,
    empty: str,
    marked: list[tuple[int, str]] | None = None,
) -> ExtractedText:
    """Normalise and join the pages; `marked`: the headings whose marks the (one) page holds."""
    parts: list[str] = []
    pages: list[Page] = []
    headings: list[Heading] = []
    cursor = 0
    for number, raw in enumerate(raw_pages, start=1):
        text = normalize_text(raw, form=form)
        positions: list[int] = []
        if marked is not None:
            text, positions = take_marks(text)
        if not has_text(text):
            pages.append(Page(number, cursor, cursor))
            continue
        if parts:
            parts.append(PAGE_SEPARATOR)
            cursor += len(PAGE_SEPARATOR)
        if marked is not None:
            headings += marked_headings(marked, positions, cursor)
        parts.append(text)
        pages.append(Page(number, cursor, cursor + len(text)))
        cursor += len(text)
    if not parts:
        raise PermanentIngestionError(empty)
    return ExtractedText(text="".join(parts), pages=pages, headings=headings)


def _resolve_kind(data: bytes, mime_type: str | None, filename: str) -> tuple[_Kind, str | None]:
    """The format to parse and the charset the MIME type declares (if any)."""
    if _base_type(mime_type) in (None, *GENERIC_MIME_TYPES):
        if _is_pdf(data):
            return _Kind.PDF, None
        if is_docx(data):
            return _Kind.DOCX, None
    resolved = sniff_mime_type(filename, mime_type)
    if resolved is None or resolved in GENERIC_MIME_TYPES:
        if _is_pdf(data):
            return _Kind.PDF, None
        return _Kind.TEXT, None  # no type at all: try text (binary data is rejected by decoding)
    kind = _kind_of(resolved)
    if kind is None:
        raise PermanentIngestionError(
            f"unsupported file type '{resolved}' (supported: {SUPPORTED})"
        )
    return kind, _charset(mime_type)


def _kind_of(mime: str) -> _Kind | None:
    if mime in {"application/pdf", "application/x-pdf"}:
        return _Kind.PDF
    if mime == DOCX_MIME_TYPE:
        return _Kind.DOCX
    if mime in {"text/markdown", "text/x-markdown"}:
        return _Kind.MARKDOWN
    if mime in {"text/html", "application/xhtml+xml"}:
        return _Kind.HTML
    if mime.startswith("text/"):
        return _Kind.TEXT
    return None


def _is_pdf(data: bytes) -> bool:
    # The PDF spec allows junk before the header; readers look in the first KiB.
    return b"%PDF-" in data[:1024]


def _base_type(mime: str | None) -> str | None:
    if mime is None:
        return None
    base = mime.split(";", 1)[0].strip().lower()
    return base or None


def _charset(mime: str | None) -> str | None:
    for parameter in (mime or "").split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip()
    return None
