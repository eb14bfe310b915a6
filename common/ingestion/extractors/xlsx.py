"""Excel (.xlsx, .xlsm) workbooks with openpyxl in read-only mode: one page per worksheet.

A worksheet becomes a page named after the sheet ("sheet Budget, rows 2-41"), with the sheet's
name as its heading and its rows as Markdown table rows in blocks that repeat the header row,
so every chunk names its columns. Values are shown as the cell displays them (`numfmt`: number
formats, currency, dates), formulas by the result Excel saved with them; a formula never
calculated (a file written by a library) is empty, and a notice says so. Text boxes and shapes
come after the table, from the sheet's drawing part. Chartsheets hold no cells and are skipped;
hidden sheets are read, since lookup tables and notes often live there and their text is in the
file all the same.

The header is the first row with two or more values; up to five one-value rows above it (a
title, a note) are kept as lines of their own. Tables stacked in one sheet (after empty rows, a
row of labels where the table above holds numbers) each get their own header
(`PageBuilder.table`'s `stacked`). A sheet whose first rows all have one value (a
single column) takes its first row as the header. Leading columns the sheet's dimension says are
empty and trailing empty cells are dropped. Read-only mode does not see merged ranges: a merged
value appears once, in its top-left cell, which is what a reader of the row sees.

Rows are streamed: at most `max_rows` non-empty rows are read for the whole workbook, then
reading stops and a notice says how much was left (from the sheet's declared dimension, never by
reading on). The declared dimension is only used for counting and for leading columns, so a
sheet claiming A1:XFD1048576 costs nothing. openpyxl sizes a sheet that declares no dimension
(its own write-only output does not) by parsing it to the end before the first row is read, tens
of seconds for a million rows, so such a sheet is handed to it with a placeholder one.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

from lxml import etree

from common.ingestion.extractors.base import ExtractOptions, PageUnit, RawDocument, RawPage
from common.ingestion.extractors.layout import PageBuilder
from common.ingestion.extractors.numfmt import format_value
from common.ingestion.extractors.packages import PACKAGE_ERRORS, corrupt, open_package

logger = logging.getLogger(__name__)

LABEL = "Excel workbook"
_MAIN_PART = "xl/workbook.xml"
_MAX_TITLE_ROWS = 5
_CHECKPOINT_ROWS = 5000
# Formula results are checked for in this much of each sheet part (a formula with no <v>).
_FORMULA_SCAN_BYTES = 4 * 1024 * 1024
_UNCACHED_FORMULA = re.compile(
    rb"<(?:\w+:)?f\b[^>]*(?:/>|>[^<]*</(?:\w+:)?f>)\s*"
    rb"(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"
)
# A sheet's dimension precedes its rows; both are looked for in this much of the part.
_HEAD_BYTES = 1 << 20
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\b")
_SHEET_DATA = re.compile(rb"<(\w+:)?sheetData\b")
_NS = {
    "main": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}
_A_NS = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_DRAWING_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/drawing"
_PARSING: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
_XML_ERRORS: tuple[type[BaseException], ...] = (*PACKAGE_ERRORS, etree.LxmlError, SyntaxError)


def _errors() -> tuple[type[BaseException], ...]:
    """What a damaged workbook raises from openpyxl and its XML parsers. openpyxl's typed
    descriptors raise TypeError for malformed attribute values, so it counts as damage here."""
    from openpyxl.utils.exceptions import InvalidFileException

    return (*_XML_ERRORS, InvalidFileException, TypeError)


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """One page per worksheet (see the module docstring)."""
    import openpyxl

    errors = _errors()
    with (
        open_package(
            data,
            label=LABEL,
            max_unpacked_bytes=options.max_unpacked_bytes,
            required=_MAIN_PART,
            expected=".xlsx",
        ) as package,
        warnings.catch_warnings(action="ignore"),  # openpyxl's warnings can quote cell values
    ):
        try:
            parts = _sheet_parts(package)
            workbook = openpyxl.load_workbook(
                io.BytesIO(_sized(data, package, parts.values())),
                read_only=True,
                data_only=True,
                keep_links=False,
            )
        except errors as exc:
            raise corrupt(LABEL, exc) from exc
        try:
            reader = _Reader(workbook, package, parts, options)
            pages = [reader.sheet(sheet) for sheet in workbook.worksheets]
        except errors as exc:
            # A value that fails to convert is quoted by its error: name the damage instead.
            quoting = isinstance(exc, ValueError | TypeError) and not isinstance(exc, SyntaxError)
            raise corrupt(LABEL, exc, "damaged cell data" if quoting else None) from exc
        finally:
            workbook.close()
    return RawDocument(
        pages,
        unit=PageUnit.SHEET,
        paged=True,
        empty_message="no text in the Excel workbook",
        notices=reader.notices(),
    )


class _Reader:
    """Reads the sheets in order, sharing the workbook's row budget."""

    def __init__(
        self,
        workbook: Any,
        package: zipfile.ZipFile,
        parts: dict[str, str],
        options: ExtractOptions,
    ) -> None:
        from openpyxl.utils.datetime import CALENDAR_MAC_1904

        self.options = options
        self.package = package
        self.date1904 = workbook.epoch == CALENDAR_MAC_1904
        self.budget = options.max_rows
        self.parts = parts
        self.skipped: list[str] = []  # sheets not read: the budget was spent
        self.cut: tuple[str, int | None] | None = None  # the sheet cut short, rows left
        self.uncalculated: list[str] = []
        self.unreadable_shapes: list[str] = []

    def sheet(self, sheet: Any) -> RawPage:
        name = str(sheet.title)
        if self.options.checkpoint is not None:
            self.options.checkpoint()
        if self.budget <= 0:
            self.skipped.append(name)
            return RawPage("", name=name)
        builder = PageBuilder()
        builder.heading(1, name)
        wrote = self._table(builder, sheet, name)
        part = self.parts.get(name)
        if part is not None and self._uncalculated(part):
            self.uncalculated.append(name)
        for text in self._shapes(name, part):
            builder.paragraph(text)
            wrote = True
        return builder.build(name=name) if wrote else RawPage("", name=name)

    def _table(self, builder: PageBuilder, sheet: Any, name: str) -> bool:
        """The sheet's rows as title lines and a table; whether there were any."""
        rows = self._rows(sheet, name)
        lead: list[tuple[int, list[str]]] = []
        header: list[str] | None = None
        for number, cells in rows:
            if sum(1 for cell in cells if cell) >= 2:
                header = cells
                break
            lead.append((number, cells))
            if len(lead) > _MAX_TITLE_ROWS:
                break
        data: Iterable[tuple[int, list[str]]] = rows
        if header is None:  # one column: the first row is its header
            if not lead:
                return False
            header, data = lead[0][1], chain(lead[1:], rows)
        elif lead:
            builder.lines((number, " ".join(cells).strip()) for number, cells in lead)
        builder.table(header, data, self.options, stacked=True)
        return True

    def _rows(self, sheet: Any, name: str) -> Iterator[tuple[int, list[str]]]:
        """Non-empty rows as (row number, displayed cells), within the workbook's budget."""
        declared_end = sheet.max_row if isinstance(sheet.max_row, int) else None
        skip = max(0, sheet.min_column - 1) if isinstance(sheet.min_column, int) else 0
        sheet.reset_dimensions()  # read what the sheet holds, not what it claims
        rows = sheet.iter_rows()
        try:
            for number, row in enumerate(rows, start=1):
                cells = [self._display(cell) for cell in row]
                while cells and not cells[-1]:
                    cells.pop()
                if not cells:
                    continue
                if self.budget <= 0:
                    left = (
                        declared_end - number + 1
                        if declared_end and declared_end >= number
                        else None
                    )
                    self.cut = (name, left)
                    return
                if skip and not any(cells[:skip]):
                    cells = cells[skip:]
                self.budget -= 1
                if number % _CHECKPOINT_ROWS == 0 and self.options.checkpoint is not None:
                    self.options.checkpoint()
                yield number, cells
        finally:
            rows.close()

    def _display(self, cell: Any) -> str:
        value = cell.value
        if value is None:
            return ""
        if isinstance(value, str) and not cell.has_style:
            return value
        number_format = cell.style_array.numFmtId
        if number_format >= 164:  # a custom format; below, a built-in id (`numfmt`)
            number_format = cell.number_format
        return format_value(value, number_format, date1904=self.date1904)

    def _uncalculated(self, part: str) -> bool:
        """Whether the sheet has formulas saved without their results (checked in its first
        few MiB; the rest is not read again)."""
        with self.package.open(part) as stream:
            head = stream.read(_FORMULA_SCAN_BYTES)
        return _UNCACHED_FORMULA.search(head) is not None

    def _shapes(self, name: str, part: str | None) -> list[str]:
        """The text of the sheet's text boxes and shapes, one string per shape."""
        if part is None:
            return []
        try:
            return [
                text
                for drawing in _drawings(self.package, part)
                for text in _shape_texts(self.package, drawing)
            ]
        except _XML_ERRORS as exc:
            logger.info("unreadable drawing part in a workbook: %s", type(exc).__name__)
            self.unreadable_shapes.append(name)
            return []

    def notices(self) -> list[str]:
        notices: list[str] = []
        if self.cut is not None or self.skipped:
            rest: list[tuple[str, bool]] = []  # what was skipped, and whether it is plural
            if self.cut is not None:
                sheet, left = self.cut
                if left:
                    rest.append(
                        (f"{left:,} more {_plural(left, 'row')} in sheet '{sheet}'", left > 1)
                    )
                else:
                    rest.append((f"the rest of sheet '{sheet}'", False))
            if self.skipped:
                rest.append((_sheets(self.skipped), len(self.skipped) > 1))
            verb = "were" if len(rest) > 1 or rest[0][1] else "was"
            notices.append(
                f"indexed the first {self.options.max_rows:,} rows; "
                f"{' and '.join(text for text, _ in rest)} {verb} skipped (AI_INFRA_MAX_SHEET_ROWS)"
            )
        if self.uncalculated:
            notices.append(
                f"formulas in {_sheets(self.uncalculated)} were saved without their results, so "
                "their cells are empty (open and save the file in Excel to store them)"
            )
        if self.unreadable_shapes:
            notices.append(f"the text boxes in {_sheets(self.unreadable_shapes)} could not be read")
        return notices


def _sheets(names: list[str], shown: int = 5) -> str:
    """Names in a notice: sheet 'A'; sheets 'A', 'B'; sheets 'A', ... and 7 more."""
    listed = ", ".join(f"'{name}'" for name in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{_plural(len(names), 'sheet')} {listed}{more}"


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def _sized(data: bytes, package: zipfile.ZipFile, sheets: Iterable[str]) -> bytes:
    """The package with a placeholder dimension (A1) in sheets that declare none: openpyxl's
    read-only mode parses such a sheet to its end to size it before the first row is read.
    The rewrite streams each part (a second compressed copy of the package is held)."""
    unsized = set()
    for part in sheets:
        with package.open(part) as stream:
            head = stream.read(_HEAD_BYTES)
        if _DIMENSION.search(head) is None and _SHEET_DATA.search(head) is not None:
            unsized.add(part)
    if not unsized:
        return data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as copy:
        for info in package.infolist():
            large = info.file_size > 1 << 30
            with (
                package.open(info) as source,
                copy.open(info.filename, "w", force_zip64=large) as target,
            ):
                chunk = source.read(_HEAD_BYTES)
                if info.filename in unsized:
                    chunk = _SHEET_DATA.sub(rb'<\1dimension ref="A1"/><\1sheetData', chunk, 1)
                while chunk:
                    target.write(chunk)
                    chunk = source.read(_HEAD_BYTES)
    return buffer.getvalue()


def _sheet_parts(package: zipfile.ZipFile) -> dict[str, str]:
    """Each sheet's name and the path of its part, from the workbook and its relationships."""
    workbook = _parse(package, _MAIN_PART)
    targets = _relationships(package, _MAIN_PART)
    parts: dict[str, str] = {}
    for sheet in workbook.iterfind("main:sheets/main:sheet", _NS):
        target = targets.get(sheet.get(f"{{{_NS['r']}}}id", ""))
        if target is not None:
            parts[sheet.get("name", "")] = target[1]
    return parts


def _relationships(package: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """A part's relationships: id -> (type, target part path)."""
    folder, file = posixpath.split(part)
    path = posixpath.join(folder, "_rels", f"{file}.rels")
    if path not in package.NameToInfo:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for rel in _parse(package, path).iterfind("rel:Relationship", _NS):
        target = rel.get("Target", "")
        if rel.get("TargetMode") == "External" or not target:
            continue
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        found[rel.get("Id", "")] = (rel.get("Type", ""), posixpath.normpath(resolved))
    return found


def _drawings(package: zipfile.ZipFile, sheet_part: str) -> list[str]:
    return [
        target
        for kind, target in _relationships(package, sheet_part).values()
        if kind == _DRAWING_REL and target in package.NameToInfo
    ]


def _shape_texts(package: zipfile.ZipFile, drawing: str) -> Iterator[str]:
    """Each shape's text (its txBody paragraphs, one a line), streamed; the fallback copy of
    markup-compatibility content is skipped, so a shape is read once."""
    paragraphs: list[str] = []
    fallback = 0
    for event, element in _events(package, drawing):
        if element.tag == _FALLBACK:
            fallback += 1 if event == "start" else -1
        if event != "end" or fallback:
            continue
        if element.tag == f"{_A_NS}p":
            paragraphs.append("".join(t.text or "" for t in element.iter(f"{_A_NS}t")))
            element.clear()
        elif element.tag.endswith("}txBody"):
            text = "\n".join(paragraphs).strip()
            paragraphs = []
            if text:
                yield text
            element.clear()


def _events(package: zipfile.ZipFile, part: str) -> Iterator[tuple[str, Any]]:
    """A part's start and end events, parsed as it is read. Fed as bytes: given the zip
    stream, lxml names the part as a file under the working directory in its errors."""
    parser = etree.XMLPullParser(events=("start", "end"), **_PARSING)
    with package.open(part) as stream:
        while chunk := stream.read(_HEAD_BYTES):
            parser.feed(chunk)
            yield from parser.read_events()
    parser.close()
    yield from parser.read_events()


def _parse(package: zipfile.ZipFile, part: str) -> Any:
    """A small part's root element (bytes, for the reason in `_events`)."""
    return etree.fromstring(package.read(part), etree.XMLParser(**_PARSING))
