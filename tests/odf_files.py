"""Generate OpenDocument test files in memory with odfpy, so no binary fixtures are kept.

Text and presentation parts are odfpy elements the tests build; sheets are lists of rows (a row
is a list of cell strings, `None` an empty cell, or an int: that many empty rows).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence

from odf.draw import Frame, Page, TextBox
from odf.element import Element
from odf.opendocument import (
    OpenDocument,
    OpenDocumentPresentation,
    OpenDocumentSpreadsheet,
    OpenDocumentText,
)
from odf.presentation import Notes
from odf.style import MasterPage, PageLayout
from odf.table import Table, TableCell, TableRow
from odf.text import P

Row = Sequence[str | None] | int
Slide = tuple[str | None, Sequence[Element], str | None]

__all__ = [
    "Row",
    "Slide",
    "cell",
    "encrypted_copy",
    "make_odp",
    "make_ods",
    "make_odt",
    "table",
]


def save(document: OpenDocument) -> bytes:
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def make_odt(*parts: Element) -> bytes:
    document = OpenDocumentText()
    for part in parts:
        document.text.addElement(part)
    return save(document)


def make_odp(slides: Sequence[Slide]) -> bytes:
    """Slides of (title, other frames, speaker notes); a title or notes of None is left out."""
    document = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    document.masterstyles.addElement(master)
    for title, frames, notes in slides:
        page = Page(masterpagename=master)
        if title is not None:
            page.addElement(text_frame([title], presentation_class="title"))
        for frame in frames:
            page.addElement(frame)
        if notes is not None:
            holder = Notes()
            holder.addElement(text_frame([notes], presentation_class="notes"))
            page.addElement(holder)
        document.presentation.addElement(page)
    return save(document)


def text_frame(lines: Sequence[str], presentation_class: str | None = None) -> Element:
    frame = Frame(width="10cm", height="2cm", x="1cm", y="1cm")
    if presentation_class:
        frame.setAttrNS(
            "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0", "class", presentation_class
        )
    box = TextBox()
    for line in lines:
        box.addElement(P(text=line))
    frame.addElement(box)
    return frame


def cell(value: str | None, repeat: int = 1) -> Element:
    attributes = {"numbercolumnsrepeated": repeat} if repeat > 1 else {}
    element = TableCell(**attributes)
    if value is not None:
        element.setAttribute("valuetype", "string")
        element.addElement(P(text=value))
    return element


def table(rows: Sequence[Row], name: str = "Table1") -> Element:
    element = Table(name=name)
    for row in rows:
        if isinstance(row, int):
            empty = TableRow(numberrowsrepeated=row)
            empty.addElement(cell(None, 1024))
            element.addElement(empty)
            continue
        tr = TableRow()
        for value in row:
            tr.addElement(cell(value))
        element.addElement(tr)
    return element


def make_ods(sheets: dict[str, Sequence[Row]], *extra: tuple[str, Element]) -> bytes:
    """Sheets by name; `extra` adds (sheet name, element) pairs, e.g. a hand-made row."""
    document = OpenDocumentSpreadsheet()
    tables = {name: table(rows, name) for name, rows in sheets.items()}
    for name, element in extra:
        tables[name].addElement(element)
    for element in tables.values():
        document.spreadsheet.addElement(element)
    return save(document)


def encrypted_copy(data: bytes) -> bytes:
    """What a password-protected ODF file looks like: its manifest declares encryption-data for
    content.xml, which holds ciphertext (odfpy cannot encrypt, so random-looking bytes here)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    encryption = (
        '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x">'
        '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" '
        'manifest:initialisation-vector="x"/>'
        '<manifest:key-derivation manifest:key-derivation-name="PBKDF2" manifest:key-size="16" '
        'manifest:iteration-count="1024" manifest:salt="x"/></manifest:encryption-data>'
    )
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename == "META-INF/manifest.xml":
                body = re.sub(
                    rb'(<manifest:file-entry[^>]*manifest:full-path="content.xml"[^>]*?)\s*/>',
                    rb"\1>" + encryption.encode() + rb"</manifest:file-entry>",
                    body,
                )
                assert b"encryption-data" in body
            elif info.filename == "content.xml":
                body = bytes((n * 131 + 7) % 256 for n in range(len(body)))
            target.writestr(info, body)
    return buffer.getvalue()
