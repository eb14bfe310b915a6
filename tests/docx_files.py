"""Generate test Word (.docx) files in memory with python-docx, so no binary fixtures are kept.

Blocks are written in order: a `str` is a paragraph, `("h1", text)` a heading of that level,
`("title", text)` the title, `("runs", xml)` a paragraph of the given run-level XML (text boxes,
shapes, note references: see the helpers below), `("body", xml)` a body-level element (a content
control) and a list of rows (lists of cell texts) a table. Footnotes and endnotes are written to
their own parts, as Word does, after the separator notes Word always writes.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Sequence

import docx

Block = str | tuple[str, str] | list[list[str]]

__all__ = [
    "Block",
    "group",
    "make_docx",
    "make_encrypted_docx",
    "make_zip_without_word_document",
    "mangle_xml_part",
    "note_reference",
    "run",
    "text_box",
    "vml_text_box",
    "xml_elements",
]

NAMESPACES = {
    "w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
    "wp": "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing",
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "wps": "http://schemas.microsoft.com/office/word/2010/wordprocessingShape",
    "wpg": "http://schemas.microsoft.com/office/word/2010/wordprocessingGroup",
    "v": "urn:schemas-microsoft-com:vml",
}
_DECLARED = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NAMESPACES.items())
_SHAPE_URI = NAMESPACES["wps"]
_GROUP_URI = NAMESPACES["wpg"]


def make_docx(
    blocks: Sequence[Block],
    *,
    footnotes: Sequence[str] = (),
    endnotes: Sequence[str] = (),
) -> bytes:
    """Notes are numbered from w:id 1 in the order given (reference them with
    `note_reference`)."""
    document = docx.Document()
    for block in blocks:
        if isinstance(block, str):
            document.add_paragraph(block)
        elif isinstance(block, tuple) and block[0] == "runs":
            paragraph = document.add_paragraph()
            paragraph._p.extend(xml_elements(block[1]))
        elif isinstance(block, tuple) and block[0] == "body":
            for element in xml_elements(block[1]):
                document.element.body.sectPr.addprevious(element)
        elif isinstance(block, tuple):
            kind, text = block
            document.add_heading(text, level=0 if kind == "title" else int(kind.removeprefix("h")))
        else:
            table = document.add_table(rows=len(block), cols=max(len(row) for row in block))
            for row, cells in zip(table.rows, block, strict=True):
                for cell, value in zip(row.cells, cells, strict=False):
                    cell.text = value
    _add_notes(document, "footnote", footnotes)
    _add_notes(document, "endnote", endnotes)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def note_reference(kind: str, note_id: int) -> str:
    """A footnote or endnote reference run (`kind` "footnote" or "endnote")."""
    style = "FootnoteReference" if kind == "footnote" else "EndnoteReference"
    return (
        f'<w:r><w:rPr><w:rStyle w:val="{style}"/></w:rPr>'
        f'<w:{kind}Reference w:id="{note_id}"/></w:r>'
    )


def text_box(text: str, *, box: bool = True, fallback: bool = True) -> str:
    """A run holding a floating text box (or, with box=False, a rectangle with text) as Word
    2010+ writes it: the DrawingML shape, and a VML copy of it as mc:Fallback."""
    shape = _shape(text, box=box)
    drawing = _anchored(f'<a:graphicData uri="{_SHAPE_URI}">{shape}</a:graphicData>')
    if not fallback:
        return f"<w:r>{drawing}</w:r>"
    return (
        '<w:r><mc:AlternateContent><mc:Choice Requires="wps">'
        f"{drawing}</mc:Choice><mc:Fallback>{_vml(text)}</mc:Fallback>"
        "</mc:AlternateContent></w:r>"
    )


def vml_text_box(text: str) -> str:
    """A legacy (Word 2007 and older) text box: VML only."""
    return f"<w:r>{_vml(text)}</w:r>"


def group(texts: Sequence[str]) -> str:
    """A run holding a group of shapes with text, one per text."""
    shapes = "".join(_shape(text, box=False) for text in texts)
    return (
        "<w:r>"
        + _anchored(
            f'<a:graphicData uri="{_GROUP_URI}"><wpg:wgp><wpg:cNvGrpSpPr/><wpg:grpSpPr/>'
            f"{shapes}</wpg:wgp></a:graphicData>"
        )
        + "</w:r>"
    )


def _shape(text: str, *, box: bool) -> str:
    return (
        f"<wps:wsp><wps:cNvSpPr{' txBox="1"' if box else ''}/><wps:spPr>"
        '<a:xfrm><a:off x="0" y="0"/><a:ext cx="1828800" cy="457200"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></wps:spPr>'
        f"<wps:txbx><w:txbxContent><w:p>{run(text)}</w:p></w:txbxContent></wps:txbx>"
        "<wps:bodyPr/></wps:wsp>"
    )


def _anchored(graphic_data: str) -> str:
    return (
        '<w:drawing><wp:anchor simplePos="0" relativeHeight="2" behindDoc="0" locked="0" '
        'layoutInCell="1" allowOverlap="1" distT="0" distB="0" distL="0" distR="0">'
        '<wp:simplePos x="0" y="0"/><wp:positionH relativeFrom="column"><wp:posOffset>0'
        '</wp:posOffset></wp:positionH><wp:positionV relativeFrom="paragraph"><wp:posOffset>0'
        '</wp:posOffset></wp:positionV><wp:extent cx="1828800" cy="457200"/><wp:wrapNone/>'
        '<wp:docPr id="1" name="Shape 1"/><wp:cNvGraphicFramePr/>'
        f"<a:graphic>{graphic_data}</a:graphic></wp:anchor></w:drawing>"
    )


def _vml(text: str) -> str:
    return (
        '<w:pict><v:shape style="position:absolute;width:144pt;height:36pt"><v:textbox>'
        f"<w:txbxContent><w:p>{run(text)}</w:p></w:txbxContent></v:textbox></v:shape></w:pict>"
    )


def xml_elements(xml: str) -> list[object]:
    """The elements of an XML fragment, with our namespaces declared."""
    from docx.oxml.parser import parse_xml

    return list(parse_xml(f"<w:body {_DECLARED}>{xml}</w:body>"))


def _add_notes(document: object, kind: str, notes: Sequence[str]) -> None:
    """word/footnotes.xml or word/endnotes.xml: the separators Word writes (one with text that
    must never be read), then the notes from w:id 1."""
    if not notes:
        return
    from docx.opc.constants import CONTENT_TYPE, RELATIONSHIP_TYPE
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part

    style = "FootnoteText" if kind == "footnote" else "EndnoteText"
    written = "".join(
        f'<w:{kind} w:id="{number}"><w:p><w:pPr><w:pStyle w:val="{style}"/></w:pPr>'
        f"<w:r><w:{kind}Ref/></w:r>{run(' ' + text)}</w:p></w:{kind}>"
        for number, text in enumerate(notes, start=1)
    )
    xml = (
        f'<w:{kind}s {_DECLARED}><w:{kind} w:type="separator" w:id="-1"><w:p><w:r>'
        f'<w:separator/></w:r></w:p></w:{kind}><w:{kind} w:type="continuationSeparator" '
        f'w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:{kind}>'
        f'<w:{kind} w:type="continuationNotice" w:id="{len(notes) + 1}"><w:p>'
        f"{run('continued on the next page')}</w:p></w:{kind}>{written}</w:{kind}s>"
    )
    content_type = CONTENT_TYPE.WML_FOOTNOTES if kind == "footnote" else CONTENT_TYPE.WML_ENDNOTES
    relation = RELATIONSHIP_TYPE.FOOTNOTES if kind == "footnote" else RELATIONSHIP_TYPE.ENDNOTES
    part = document.part  # type: ignore[attr-defined]
    notes_part = Part(PackURI(f"/word/{kind}s.xml"), content_type, xml.encode(), part.package)
    part.relate_to(notes_part, relation)


def make_encrypted_docx(blocks: Sequence[Block], password: str = "s3cret") -> bytes:
    """What Word writes for "Encrypt with Password": an OLE compound file (MS-OFFCRYPTO)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(make_docx(blocks))).encrypt(password, encrypted)
    return encrypted.getvalue()


def make_zip_without_word_document() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("notes.txt", "a zip, not a Word document")
    return buffer.getvalue()


def mangle_xml_part(data: bytes, rng: random.Random) -> bytes:
    """The package with one XML part damaged inside (characters, cuts or copies), re-zipped with
    good checksums: what a zip-level fuzz never reaches, the XML readers' error paths."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        parts = {entry.filename: source.read(entry) for entry in source.infolist()}
    name = rng.choice([name for name in parts if name.endswith((".xml", ".rels"))])
    body = bytearray(parts[name])
    mode = rng.randrange(3)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(body))
        if mode == 0:
            body[at] = rng.choice(b'<>"=/ 0123456789-abcxyz:')
        elif mode == 1:
            del body[at : at + rng.randint(1, 30)]
        else:
            start = rng.randrange(len(body))
            body[at:at] = body[start : start + rng.randint(1, 40)]
    parts[name] = bytes(body)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for part, content in parts.items():
            package.writestr(part, content)
    return buffer.getvalue()
