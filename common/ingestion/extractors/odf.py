"""OpenDocument text, presentations and spreadsheets (.odt, .odp, .ods), read from content.xml.

content.xml is parsed with lxml as a stream (entities unresolved, no network, libxml2's depth and
size limits on), each top-level part handled at its end tag and then dropped, so memory follows
the largest paragraph, slide or row, not the file. Headers, footers and master pages (styles.xml),
comments, tracked deletions and generated indexes (a table of contents repeats the headings) are
left out.

- Text (.odt): one page of headings (`text:h` by outline level), paragraphs, lists (a line per
  item), tables (Markdown rows, the first row as header) and the text of frames and shapes
  anchored in a paragraph, placed right after it. A footnote or endnote keeps its citation in
  the sentence ("[2]") and its body follows the paragraph that cites it as "[2] ...", so a chunk
  holds the note with the claim it annotates.
- Presentation (.odp): a page per slide; the title shape as heading, then every other frame and
  shape in document order (tables as Markdown rows), then the speaker notes after "Notes:".
- Spreadsheet (.ods): a page per sheet named by it (its name also the heading), rows as Markdown
  table rows with the first non-empty row as header (tables stacked in one sheet each with
  their own), cited by the sheet's own row numbers. Cells
  read as displayed (ODF stores the formatted string, "$1,599.99"). Repeated rows and columns
  (`number-rows-repeated`) are counted, not expanded, when empty: a sheet padded to a million
  empty rows costs one element. Rows past `max_rows` per document are skipped with a notice.

A password-protected file keeps content.xml encrypted, as META-INF/manifest.xml declares
(`manifest:encryption-data`); it is refused as encrypted.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import IO, Any

from lxml import etree

from common.ingestion.extractors.base import ExtractOptions, PageUnit, RawDocument, RawPage
from common.ingestion.extractors.layout import PageBuilder
from common.ingestion.extractors.odf_content import (
    BODIES,
    DRAW_PAGE,
    MANIFEST,
    ROW,
    SECTION,
    SHAPES,
    SPREADSHEET,
    TABLE,
    OdfReader,
    drop,
)
from common.ingestion.extractors.packages import PACKAGE_ERRORS, corrupt, encrypted, open_package
from common.platform.errors import PermanentIngestionError
from common.platform.formats import BY_KIND, Kind

_PARSING: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """An OpenDocument file of `options.kind` (see the module docstring)."""
    kind = options.kind if options.kind in (Kind.ODT, Kind.ODP, Kind.ODS) else Kind.ODT
    label = BY_KIND[kind].noun
    with _open(data, label, options) as package:
        reader = OdfReader(options, label, "rows" if kind is Kind.ODS else "table rows")
        try:
            with package.open("content.xml") as stream:
                if kind is Kind.ODS:
                    pages, unit = _sheets(stream, reader), PageUnit.SHEET
                elif kind is Kind.ODP:
                    pages, unit = _slides(stream, reader), PageUnit.SLIDE
                else:
                    pages, unit = [_text(stream, reader)], PageUnit.PAGE
        except etree.XMLSyntaxError as exc:
            detail = f"content.xml is not well-formed XML (line {exc.lineno})"
            raise corrupt(label, exc, detail) from exc
        except RecursionError as exc:
            raise PermanentIngestionError(f"the {label} is nested too deeply to read") from exc
        except PACKAGE_ERRORS as exc:
            raise corrupt(label, exc) from exc
    return RawDocument(
        pages,
        unit=unit,
        paged=kind is not Kind.ODT,
        notices=reader.notices,
        empty_message=f"no text in the {label}",
    )


def _open(data: bytes, label: str, options: ExtractOptions) -> zipfile.ZipFile:
    """The package, refused when encrypted (its manifest says so) or without content.xml."""
    package = open_package(data, label=label, max_unpacked_bytes=options.max_unpacked_bytes)
    try:
        names = set(package.namelist())
        if "META-INF/manifest.xml" in names and _declares_encryption(
            package.read("META-INF/manifest.xml")
        ):
            raise encrypted(label)
        if "content.xml" not in names:
            raise PermanentIngestionError(
                f"the file is a zip package without a {label} (no content.xml)"
            )
    except PACKAGE_ERRORS as exc:
        package.close()
        raise corrupt(label, exc) from exc
    except PermanentIngestionError:
        package.close()
        raise
    return package


def _declares_encryption(manifest: bytes) -> bool:
    try:
        root = etree.fromstring(manifest, etree.XMLParser(**_PARSING))
    except etree.XMLSyntaxError:
        return b"encryption-data" in manifest  # a damaged manifest: trust the element name
    return any(True for _ in root.iter(MANIFEST + "encryption-data"))


def _events(
    stream: IO[bytes], events: tuple[str, ...], tags: tuple[str, ...] | None = None
) -> Iterator[tuple[str, Any]]:
    """Parse events, only for `tags` if given (filtered by lxml: the rest cost no Python)."""
    parsed: Iterator[tuple[str, Any]] = etree.iterparse(stream, events=events, tag=tags, **_PARSING)
    return parsed


def _text(stream: IO[bytes], reader: OdfReader) -> RawPage:
    builder = PageBuilder()
    for _, element in _events(stream, ("end",)):
        parent = element.getparent()
        if parent is None or parent.tag not in BODIES:
            continue
        if element.tag != SECTION:  # a section's parts were handled as they ended
            reader.block(element, builder)
        drop(element)
    return builder.build()


def _slides(stream: IO[bytes], reader: OdfReader) -> list[RawPage]:
    pages = []
    for _, element in _events(stream, ("end",), (DRAW_PAGE,)):
        if element.tag == DRAW_PAGE:
            pages.append(reader.slide(element))
            drop(element)
            reader.checkpoint()
    return pages


def _sheets(stream: IO[bytes], reader: OdfReader) -> list[RawPage]:
    pages = []
    events = _events(stream, ("start", "end"), (TABLE, ROW, SHAPES))
    for event, element in events:
        if event == "start" and element.tag == TABLE:
            parent = element.getparent()
            if parent is not None and parent.tag == SPREADSHEET:
                pages.append(reader.sheet(element, events))
                reader.checkpoint()
    return pages
