"""Word (.docx) with python-docx: body, headings, text boxes, shapes and notes in reading order.

Paragraphs and tables come in body order, content controls (w:sdt, as cover pages and tables of
contents are) included; a paragraph shows its runs, hyperlinks, fields, tracked insertions and
smart tags, not deleted or moved-away text. A paragraph in a heading style (Title, Heading 1-9,
a style based on one, or an outline level) becomes a heading, so chunks carry their section
path: Title is level 1 and Heading N level N + 1. A table is one block with a line per row and
its cells separated by spaces (as the HTML and Markdown extractors do), nested tables in place,
a merged cell read once.

Text boxes and shapes with text (w:txbxContent in a DrawingML shape or group, or a legacy VML
textbox) are read right after the paragraph they are anchored in, where a reader meets them.
Word writes a shape twice inside mc:AlternateContent (DrawingML choice, VML fallback): only the
first choice is read, so the text is not doubled.

Footnotes and endnotes are placed right after the paragraph or table that references them, as
a paragraph "[1] note text", and the reference reads "[1]" where it stands. A note then lands
in the chunk of the sentence it explains, so retrieval finds both together and a citation of
the note points at its place in the text; gathered at the end of the document, notes would make
chunks of stray references with no context. Footnotes are numbered 1, 2, 3 and endnotes i, ii,
iii in order of reference (Word's default formats); separator notes are never referenced.

Headers, footers and comments are left out: they repeat on every page or sit outside the reading
order. Word has no fixed pages, so the document is one page. A password-protected .docx is not
a zip but an OLE compound file holding an encrypted package (as is a legacy .doc): both are
recognised by their magic bytes and refused with a message saying what to upload instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from common.ingestion.extractors.base import ExtractOptions, RawDocument
from common.ingestion.extractors.headings import MAX_HEADING_CHARS
from common.ingestion.extractors.layout import PageBuilder
from common.ingestion.extractors.packages import (
    PACKAGE_ERRORS,
    corrupt,
    misplaced_part,
    open_office,
    open_package,
    zip_names,
)

if TYPE_CHECKING:
    from docx.document import Document
    from lxml.etree import _Element

MIME_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LABEL = "Word document"
_MAIN_PART = "word/document.xml"
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_P, _TBL, _T, _TXBX = f"{_W}p", f"{_W}tbl", f"{_W}t", f"{_W}txbxContent"
_SDT, _SDT_CONTENT, _CUSTOM_XML = f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml"
_ALTERNATE, _CHOICE, _FALLBACK = f"{_MC}AlternateContent", f"{_MC}Choice", f"{_MC}Fallback"
_INLINE_TEXT = {f"{_W}tab": "\t", f"{_W}ptab": "\t", f"{_W}br": "\n", f"{_W}cr": "\n"}
_INLINE_TEXT[f"{_W}noBreakHyphen"] = "-"
# Not shown (deleted, moved away) or no text (properties): never descended into.
_SKIPPED = {f"{_W}{tag}" for tag in ("del", "moveFrom", "pPr", "rPr", "sdtPr", "sdtEndPr")}
_NOTE_KINDS = {f"{_W}footnoteReference": "footnotes", f"{_W}endnoteReference": "endnotes"}
_HEADING_STYLE = re.compile(r"heading ([1-9])")
_VAL = f"{_W}val"


def is_docx(data: bytes) -> bool:
    """Whether the bytes are a zip package with a Word main document (for untyped uploads)."""
    return _MAIN_PART in (zip_names(data) or ())


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """The document's text in reading order, one page (see the module docstring)."""
    open_package(
        data,
        label=LABEL,
        max_unpacked_bytes=options.max_unpacked_bytes,
        required=_MAIN_PART,
        expected=".docx",
    ).close()
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    document = _open(data)
    page = PageBuilder()
    try:
        reader = _Reader(document)
        for level, text in reader.blocks(reader.body, outline=True):
            if level and len(" ".join(text.split())) <= MAX_HEADING_CHARS:
                page.heading(level, text)
            else:
                page.paragraph(text)
    except (OpcError, LxmlError, *PACKAGE_ERRORS) as exc:
        raise corrupt(LABEL, exc) from exc
    except AttributeError as exc:
        if not _misplaced(exc):
            raise
        raise corrupt(LABEL, exc, "a part or element is not of the kind it should be") from exc
    return RawDocument([page.build()], empty_message=f"no text in the {LABEL}")


def _open(data: bytes) -> Document:
    import docx
    from docx.opc.exceptions import OpcError

    return open_office(docx.Document, data, LABEL, (OpcError,))


def _misplaced(exc: AttributeError) -> bool:
    from docx.opc.part import Part

    return misplaced_part(exc, Part)


class _Reader:
    """Walks the body's XML; yields (heading level or 0, text) blocks (see the module doc)."""

    def __init__(self, document: Document) -> None:
        from docx.oxml.parser import parse_xml

        self.document = document
        self.body: _Element = document.element.body
        self.levels = _style_levels(document)
        self.notes: dict[str, dict[str, _Element]] = {"footnotes": {}, "endnotes": {}}
        for rel in document.part.rels.values():
            kind = (rel.reltype or "").removeprefix(_RELS)
            if kind in self.notes and not rel.is_external:
                part = parse_xml(rel.target_part.blob)
                self.notes[kind] = {
                    note.get(f"{_W}id", ""): note
                    for note in part
                    if note.get(f"{_W}type", "normal") == "normal"
                }
        self.numbers: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}
        self.pending: list[tuple[str, _Element]] = []
        self.hold = 0  # inside a table or a note: notes wait until the block is complete

    def blocks(self, container: _Element, *, outline: bool) -> Iterator[tuple[int, str]]:
        for child in container:
            if child.tag == _P:
                text, boxes = self.paragraph(child)
                yield (self.level(child) if outline else 0), text
                for box in boxes:
                    yield from self.blocks(box, outline=False)
            elif child.tag == _TBL:
                self.hold += 1
                try:
                    text = self.table(child)
                finally:
                    self.hold -= 1
                yield 0, text
            elif child.tag == _SDT:
                for content in child.iterchildren(_SDT_CONTENT):
                    yield from self.blocks(content, outline=outline)
            elif child.tag in (_CUSTOM_XML, _ALTERNATE):
                yield from self.blocks(_chosen(child), outline=outline)
            if not self.hold:
                yield from self.flush_notes()

    def paragraph(self, p: _Element) -> tuple[str, list[_Element]]:
        """The paragraph's shown text, and the text boxes anchored in it."""
        parts: list[str] = []
        boxes: list[_Element] = []
        self.inline(p, parts, boxes)
        return "".join(parts), boxes

    def inline(self, element: _Element, parts: list[str], boxes: list[_Element]) -> None:
        for child in element:
            tag = child.tag
            if tag == _T:
                parts.append(child.text or "")
            elif tag in _INLINE_TEXT:
                parts.append(_INLINE_TEXT[tag])
            elif tag == _TXBX:
                boxes.append(child)
            elif tag in _NOTE_KINDS:
                parts.append(self.reference(_NOTE_KINDS[tag], child.get(f"{_W}id", "")))
            elif tag == _ALTERNATE:
                self.inline(_chosen(child), parts, boxes)
            elif tag not in _SKIPPED and len(child):
                self.inline(child, parts, boxes)

    def reference(self, kind: str, note_id: str) -> str:
        """The mark a note reference shows ("[1]"); the note is queued for after the block."""
        if note_id not in self.notes[kind]:
            return ""
        key = (kind, note_id)
        if key not in self.numbers:
            self.counts[kind] = count = self.counts.get(kind, 0) + 1
            self.numbers[key] = str(count) if kind == "footnotes" else _roman(count)
            self.pending.append((self.numbers[key], self.notes[kind][note_id]))
        return f"[{self.numbers[key]}]"

    def flush_notes(self) -> Iterator[tuple[int, str]]:
        while self.pending:
            label, note = self.pending.pop(0)
            self.hold += 1
            try:
                texts = [text.strip() for _, text in self.blocks(note, outline=False)]
            finally:
                self.hold -= 1
            body = "\n".join(text for text in texts if text)
            if body:
                yield 0, f"[{label}] {body}"

    def table(self, tbl: _Element) -> str:
        """One line per row, cells separated by spaces; a merged cell only where it starts."""
        from docx.table import Table

        lines: list[str] = []
        # The cells' XML elements, kept alive so that lxml hands out the same proxy for a merged
        # cell each time it repeats (in row.cells, and in the rows a vertical merge spans).
        seen: set[object] = set()
        for row in Table(tbl, self.document._body).rows:
            cells: list[str] = []
            for cell in row.cells:
                if cell._tc in seen:
                    continue
                seen.add(cell._tc)
                texts = [text for _, text in self.blocks(cell._tc, outline=False)]
                cells.append(" ".join(" ".join(texts).split()))
            line = " ".join(text for text in cells if text)
            if line:
                lines.append(line)
        return "\n".join(lines)

    def level(self, p: _Element) -> int:
        """The heading level of a body paragraph, 0 for body text."""
        properties = p.find(f"{_W}pPr")
        if properties is None:
            return self.levels.get("", 0)
        outline = properties.find(f"{_W}outlineLvl")
        if outline is not None:
            return _outline_level(outline)
        style = properties.find(f"{_W}pStyle")
        return self.levels.get(style.get(_VAL, "") if style is not None else "", 0)


def _chosen(alternate: _Element) -> _Element:
    """The branch of mc:AlternateContent to read (its first choice), or the element itself when
    it is not one (w:customXml is read through)."""
    if alternate.tag != _ALTERNATE:
        return alternate
    for tag in (_CHOICE, _FALLBACK):
        for branch in alternate.iterchildren(tag):
            return branch
    return alternate


def _style_levels(document: Document) -> dict[str, int]:
    """Heading level per paragraph style id ("" for the default style), through basedOn."""
    styles: dict[str, _Element] = {}
    default = ""
    for style in document.styles.element.iterchildren(f"{_W}style"):
        if style.get(f"{_W}type") == "paragraph":
            styles[style.get(f"{_W}styleId", "")] = style
            if style.get(f"{_W}default") in ("1", "true", "on"):
                default = style.get(f"{_W}styleId", "")
    levels = {style_id: _style_level(style_id, styles) for style_id in styles}
    levels[""] = levels.get(default, 0)
    return levels


def _style_level(style_id: str, styles: dict[str, _Element]) -> int:
    seen: set[str] = set()
    while style_id in styles and style_id not in seen:
        seen.add(style_id)
        style = styles[style_id]
        name_element = style.find(f"{_W}name")
        name = (name_element.get(_VAL, "") if name_element is not None else "").lower()
        if name == "title":
            return 1
        if match := _HEADING_STYLE.fullmatch(name):
            return int(match.group(1)) + 1
        outline = style.find(f"{_W}pPr/{_W}outlineLvl")
        if outline is not None:
            return _outline_level(outline)
        based = style.find(f"{_W}basedOn")
        style_id = based.get(_VAL, "") if based is not None else ""
    return 0


def _outline_level(element: _Element) -> int:
    """w:outlineLvl 0-8 is Heading 1-9 (levels 2-10 here); 9 means body text."""
    value = element.get(_VAL, "9")
    return int(value) + 2 if value.isdigit() and int(value) < 9 else 0


def _roman(number: int) -> str:
    numerals = ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
                (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"))  # fmt: skip  # noqa: E501
    result = ""
    for value, numeral in numerals:
        count, number = divmod(number, value)
        result += numeral * count
    return result
