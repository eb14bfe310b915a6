"""The file formats the service reads: one table for uploads, URL fetches, the inbox and the worker.

Each format has a kind (the extractor `common.ingestion.extract` runs), its MIME types (the
first is the canonical one stored on objects) and file-name extensions. Binary formats are also
recognised by their content (`common.ingestion.detect`), so a misnamed file still reads.
"""

from __future__ import annotations

import functools
import mimetypes
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    ODT = "odt"
    ODP = "odp"
    ODS = "ods"
    EPUB = "epub"
    RTF = "rtf"
    CSV = "csv"
    TSV = "tsv"
    JSON = "json"
    JSONL = "jsonl"
    IMAGE = "image"
    MARKDOWN = "markdown"
    HTML = "html"
    TEXT = "text"


@dataclass(frozen=True)
class Format:
    kind: Kind
    label: str
    mime_types: tuple[str, ...]
    extensions: tuple[str, ...]
    # How messages name one such file ("the Word document is encrypted ...").
    noun: str


_OOXML = "application/vnd.openxmlformats-officedocument"
_ODF = "application/vnd.oasis.opendocument"
FORMATS: tuple[Format, ...] = (
    Format(Kind.PDF, "PDF", ("application/pdf", "application/x-pdf"), (".pdf",), "PDF"),
    Format(
        Kind.DOCX,
        "Word (.docx)",
        (f"{_OOXML}.wordprocessingml.document",),
        (".docx",),
        "Word document",
    ),
    Format(
        Kind.PPTX,
        "PowerPoint (.pptx)",
        (f"{_OOXML}.presentationml.presentation",),
        (".pptx",),
        "PowerPoint presentation",
    ),
    Format(
        Kind.XLSX,
        "Excel (.xlsx)",
        (f"{_OOXML}.spreadsheetml.sheet", "application/vnd.ms-excel.sheet.macroenabled.12"),
        (".xlsx", ".xlsm"),
        "Excel workbook",
    ),
    Format(Kind.ODT, "OpenDocument text (.odt)", (f"{_ODF}.text",), (".odt",), "OpenDocument text"),
    Format(
        Kind.ODP,
        "OpenDocument presentation (.odp)",
        (f"{_ODF}.presentation",),
        (".odp",),
        "OpenDocument presentation",
    ),
    Format(
        Kind.ODS,
        "OpenDocument spreadsheet (.ods)",
        (f"{_ODF}.spreadsheet",),
        (".ods",),
        "OpenDocument spreadsheet",
    ),
    Format(Kind.EPUB, "EPUB", ("application/epub+zip",), (".epub",), "EPUB book"),
    Format(Kind.RTF, "RTF", ("application/rtf", "text/rtf"), (".rtf",), "RTF document"),
    Format(Kind.CSV, "CSV", ("text/csv",), (".csv",), "CSV file"),
    Format(Kind.TSV, "TSV", ("text/tab-separated-values",), (".tsv", ".tab"), "TSV file"),
    Format(Kind.JSON, "JSON", ("application/json",), (".json",), "JSON file"),
    Format(
        Kind.JSONL,
        "JSON Lines",
        ("application/jsonl", "application/x-ndjson", "application/x-jsonlines"),
        (".jsonl", ".ndjson"),
        "JSON Lines file",
    ),
    Format(
        Kind.IMAGE,
        "images (PNG, JPEG, TIFF, WebP, GIF, BMP)",
        ("image/png", "image/jpeg", "image/tiff", "image/webp", "image/gif", "image/bmp"),
        (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".gif", ".bmp"),
        "image",
    ),
    Format(
        Kind.MARKDOWN,
        "Markdown",
        ("text/markdown", "text/x-markdown"),
        (".md", ".markdown", ".mdown"),
        "Markdown file",
    ),
    Format(
        Kind.HTML,
        "HTML",
        ("text/html", "application/xhtml+xml"),
        (".html", ".htm", ".xhtml"),
        "HTML page",
    ),
    Format(Kind.TEXT, "plain text", ("text/plain",), (".txt", ".text", ".log"), "text file"),
)
GENERIC_MIME_TYPES = frozenset(
    {
        "application/octet-stream",
        "binary/octet-stream",
        "application/unknown",
        "application/x-download",
        "application/zip",
        "application/x-zip-compressed",
    }
)
SUPPORTED = ", ".join(fmt.label for fmt in FORMATS)
BY_KIND = {fmt.kind: fmt for fmt in FORMATS}
_BY_MIME = {mime: fmt for fmt in FORMATS for mime in fmt.mime_types}
_BY_EXTENSION = {extension: fmt for fmt in FORMATS for extension in fmt.extensions}
# What uploads and URL sources may declare: every format's types (base types, lower case).
ACCEPTED_TYPES: dict[str, str] = {mime: fmt.label for mime, fmt in _BY_MIME.items()}


def accepted_list() -> str:
    return ", ".join(sorted(ACCEPTED_TYPES))


def base_type(mime: str | None) -> str | None:
    """`text/html; charset=utf-8` -> `text/html`; None for nothing."""
    if mime is None:
        return None
    base = mime.split(";", 1)[0].strip().lower()
    return base or None


def kind_of_mime(mime: str | None) -> Kind | None:
    """The kind a MIME type names; any other text/* is plain text."""
    base = base_type(mime)
    if base is None:
        return None
    known = _BY_MIME.get(base)
    if known is not None:
        return known.kind
    return Kind.TEXT if base.startswith("text/") else None


def kind_of_name(filename: str) -> Kind | None:
    """The kind a file name's extension names."""
    known = _BY_EXTENSION.get(_extension(filename))
    return known.kind if known else None


def sniff_mime_type(filename: str, declared: str | None) -> str | None:
    """The MIME type to record: a specific declared type wins, else the file name's extension."""
    declared_type = base_type(declared)
    if declared_type and declared_type not in GENERIC_MIME_TYPES:
        return declared_type
    known = _BY_EXTENSION.get(_extension(filename))
    if known:
        return known.mime_types[0]
    guessed, _ = _builtin_mime_table().guess_type(filename.rsplit("/", 1)[-1], strict=False)
    return guessed or declared_type


def _extension(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


@functools.cache
def _builtin_mime_table() -> mimetypes.MimeTypes:
    """Python's built-in extension table, read once (not the host's /etc/mime.types)."""
    return mimetypes.MimeTypes()
