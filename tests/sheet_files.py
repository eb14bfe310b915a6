"""Generate test spreadsheets in memory with openpyxl, so no binary fixtures are kept.

openpyxl writes neither formula results nor drawings with text boxes, so those are patched into
the package afterwards, as Excel would have saved them.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import openpyxl
from openpyxl.workbook.workbook import Workbook

__all__ = [
    "make_big_xlsx",
    "make_encrypted_xlsx",
    "make_streamed_xlsx",
    "make_xlsx",
    "rewrite_package",
    "with_cached_results",
    "with_dimension",
    "with_text_boxes",
]

Rows = Sequence[Any]  # rows of cell values (lists of mixed types)


def make_xlsx(
    sheets: Mapping[str, Rows],
    *,
    formats: Mapping[tuple[str, str], str] | None = None,
    edit: Callable[[Workbook], None] | None = None,
) -> bytes:
    """A workbook with one sheet per entry (rows from A1); `formats` maps (sheet, cell) to a
    number format; `edit` changes the workbook before it is saved."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    for (name, cell), code in (formats or {}).items():
        workbook[name][cell].number_format = code
    if edit is not None:
        edit(workbook)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def make_big_xlsx(rows: int, *, dimension: str | None = None) -> bytes:
    """A sheet 'Data' with a header and `rows` rows of four cells, its XML written directly
    (openpyxl takes seconds per 100,000 rows); `dimension` is the size it claims, if any."""
    head = make_xlsx({"Data": [["Item", "Count", "Price", "Note"]]})
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    body = "".join(
        f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>item-{n}</t></is></c><c r="B{n}"><v>{n}'
        f'</v></c><c r="C{n}"><v>{n * 1.5}</v></c><c r="D{n}" t="inlineStr"><is><t>note</t></is>'
        "</c></row>"
        for n in range(2, rows + 2)
    )
    sheet = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'{declared}<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Item</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>Count</t></is></c><c r="C1" t="inlineStr"><is><t>Price'
        '</t></is></c><c r="D1" t="inlineStr"><is><t>Note</t></is></c></row>'
        f"{body}</sheetData></worksheet>"
    )
    return rewrite_package(head, {"xl/worksheets/sheet1.xml": sheet.encode()}, level=1)


def make_streamed_xlsx(rows: int) -> bytes:
    """A sheet 'Data' written by openpyxl's write-only mode, which declares no dimension."""
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Data")
    sheet.append(["Item", "Count"])
    for number in range(rows):
        sheet.append([f"item-{number}", number])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def make_encrypted_xlsx(data: bytes, password: str = "s3cret") -> bytes:
    """What Excel writes for "Encrypt with Password": an OLE compound file (MS-OFFCRYPTO)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, encrypted)
    return encrypted.getvalue()


def rewrite_package(
    data: bytes, changes: Mapping[str, bytes | Callable[[bytes], bytes]], level: int = 6
) -> bytes:
    """The package with parts replaced (bytes), edited (a function of the old bytes) or added."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as target,
    ):
        for name in source.namelist():
            change = changes.get(name)
            old = source.read(name)
            target.writestr(name, change(old) if callable(change) else change or old)
        for name, change in changes.items():
            if name not in source.namelist() and isinstance(change, bytes):
                target.writestr(name, change)
    return buffer.getvalue()


def with_cached_results(data: bytes, results: Mapping[str, str], sheet: int = 1) -> bytes:
    """Formula cells given the results Excel saves with them (cell -> the <v> text)."""

    def edit(xml: bytes) -> bytes:
        text = xml.decode()
        for cell, value in results.items():
            pattern = f'(<c r="{cell}"[^>]*>(?:<f>[^<]*</f>|<f[^>]*/>))(?:<v\\s*/>|<v></v>)'
            text, count = re.subn(pattern, f"\\1<v>{value}</v>", text, count=1)
            assert count == 1, f"no formula cell {cell}"
        return text.encode()

    return rewrite_package(data, {f"xl/worksheets/sheet{sheet}.xml": edit})


def with_dimension(data: bytes, ref: str, sheet: int = 1) -> bytes:
    """The sheet's declared dimension replaced (writers that claim A1:XFD1048576)."""

    def edit(xml: bytes) -> bytes:
        declared = f'<dimension ref="{ref}"/>'.encode()
        xml, count = re.subn(rb'<dimension ref="[^"]*"/>', declared, xml)
        return xml if count else xml.replace(b"<sheetData", declared + b"<sheetData", 1)

    return rewrite_package(data, {f"xl/worksheets/sheet{sheet}.xml": edit})


_DRAWING_NS = (
    'xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
)


def _shape(paragraphs: Sequence[str], number: int) -> str:
    body = "".join(
        f'<a:p><a:r><a:rPr lang="en-US"/><a:t>{line[: len(line) // 2]}</a:t></a:r>'
        f"<a:r><a:t>{line[len(line) // 2 :]}</a:t></a:r></a:p>"
        for line in paragraphs
    )
    return (
        f'<xdr:sp><xdr:nvSpPr><xdr:cNvPr id="{number + 1}" name="TextBox {number}"/>'
        '<xdr:cNvSpPr txBox="1"/></xdr:nvSpPr><xdr:spPr/>'
        f"<xdr:txBody><a:bodyPr/><a:lstStyle/>{body}</xdr:txBody></xdr:sp>"
    )


def with_text_boxes(data: bytes, boxes: Sequence[Sequence[str]], sheet: int = 1) -> bytes:
    """Text boxes (each a list of paragraphs) on a sheet, as Excel saves them: a drawing part
    related from the sheet; the second box is grouped and sits in markup-compatibility content
    with a fallback copy, which must be read once."""
    anchors = []
    for number, box in enumerate(boxes, start=1):
        shape = _shape(box, number)
        if number == 2:
            shape = (
                '<mc:AlternateContent><mc:Choice Requires="a14"><xdr:grpSp>'
                f"{shape}</xdr:grpSp></mc:Choice><mc:Fallback>{shape}</mc:Fallback>"
                "</mc:AlternateContent>"
            )
        anchors.append(
            "<xdr:twoCellAnchor><xdr:from><xdr:col>5</xdr:col><xdr:colOff>0</xdr:colOff>"
            "<xdr:row>1</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:to><xdr:col>8</xdr:col>"
            "<xdr:colOff>0</xdr:colOff><xdr:row>5</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:to>"
            f"{shape}<xdr:clientData/></xdr:twoCellAnchor>"
        )
    shapes = "".join(anchors)
    drawing = f'<?xml version="1.0" encoding="UTF-8"?><xdr:wsDr {_DRAWING_NS}>{shapes}</xdr:wsDr>'
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships '
        'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rIdDrawing1" Target="../drawings/drawing1.xml" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/drawing"/></Relationships>'
    )

    def add_drawing(xml: bytes) -> bytes:
        return xml.replace(
            b"</worksheet>",
            b'<drawing xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
            b'relationships" r:id="rIdDrawing1"/></worksheet>',
        )

    def add_type(xml: bytes) -> bytes:
        return xml.replace(
            b"</Types>",
            b'<Override PartName="/xl/drawings/drawing1.xml" ContentType="application/'
            b'vnd.openxmlformats-officedocument.drawing+xml"/></Types>',
        )

    return rewrite_package(
        data,
        {
            f"xl/worksheets/sheet{sheet}.xml": add_drawing,
            "[Content_Types].xml": add_type,
            "xl/drawings/drawing1.xml": drawing.encode(),
            f"xl/worksheets/_rels/sheet{sheet}.xml.rels": rels.encode(),
        },
    )
