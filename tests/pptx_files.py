"""Generate test PowerPoint (.pptx) decks in memory with python-pptx, so no binary fixtures are
kept: a deck with the awkward parts of real ones (nested groups, a table, WordArt, notes, an
untitled slide), plain decks of text slides, and the bad files (encrypted, bombs).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

from lxml import etree
from pptx import Presentation
from pptx.chart.data import CategoryChartData
from pptx.enum.chart import XL_CHART_TYPE
from pptx.enum.shapes import MSO_SHAPE
from pptx.presentation import Presentation as Deck
from pptx.shapes.shapetree import GroupShapes, SlideShapes
from pptx.slide import Slide
from pptx.util import Inches

__all__ = [
    "make_deck",
    "make_encrypted_pptx",
    "make_pptx_bomb",
    "make_text_deck",
    "make_zip_without_presentation",
]

TITLE_ONLY, TITLE_AND_CONTENT, TITLE_SLIDE, BLANK = 5, 1, 0, 6
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_DGM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def make_deck() -> bytes:
    """Six slides; what each must read as is spelled out in tests/test_pptx.py."""
    deck = Presentation()
    first = _slide(deck, TITLE_SLIDE, "Quarterly pump review")
    first.placeholders[1].text_frame.text = "Prepared by the field service team"
    _notes(first, "Welcome everyone; the agenda is on the next slide.")

    groups = _slide(deck, TITLE_ONLY, "Service regions")
    _text_box(groups.shapes, "Middle box: the regions at a glance", left=1, top=3)
    outer = groups.shapes.add_group_shape()
    _text_box(outer.shapes, "Group top left: North region", left=1, top=2)
    inner = outer.shapes.add_group_shape()
    _text_box(inner.shapes, "Nested right: East region", left=5, top=2.2)
    _text_box(inner.shapes, "Nested below: South region", left=1, top=2.6)
    # python-pptx sizes a group to its children; moving the frame moves the children with it,
    # so the whole outer group (child offsets near 2 in) lands near the slide's bottom (5 in).
    _move_group(outer, top=Inches(5))
    _notes(groups, "Ask the audience which region the copper valve failures came from.")

    table = _slide(deck, TITLE_ONLY, "Failure counts")
    frame = table.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2))
    for row, cells in enumerate([["Part", "Failures"], ["XK-4471B", "17"], ["Seal kit", "4"]]):
        for column, value in enumerate(cells):
            frame.table.cell(row, column).text = value

    wordart = _slide(deck, TITLE_ONLY, "Safety first")
    shape = wordart.shapes.add_shape(
        MSO_SHAPE.ROUNDED_RECTANGLE, Inches(1), Inches(2), Inches(6), Inches(2)
    )
    shape.text_frame.text = "Lock out before opening the pump"
    body = shape.text_frame._txBody.find(f"{{{_A}}}bodyPr")
    etree.SubElement(body, f"{{{_A}}}prstTxWarp", prst="textArchUp")  # what WordArt writes

    untitled = deck.slides.add_slide(deck.slide_layouts[BLANK])
    _text_box(untitled.shapes, "Second line of the untitled slide", left=1, top=4)
    _text_box(untitled.shapes, "Right column of the untitled slide", left=5, top=1)
    _text_box(untitled.shapes, "First line of the untitled slide", left=1, top=1)
    _notes(untitled, "This slide has no title on purpose.")

    charts = _slide(deck, TITLE_ONLY, "Trend")
    data = CategoryChartData()
    data.categories = ["Q1", "Q2"]
    data.add_series("Failures", (17, 4))
    chart = charts.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED,
        Inches(1),
        Inches(2),
        Inches(6),
        Inches(4),
        data,  # type: ignore[arg-type]
    ).chart  # type: ignore[attr-defined]
    chart.has_title = True
    chart.chart_title.text_frame.text = "Failures per quarter"
    _smartart(charts, ["Inspect", "Repair", "Verify"])
    return _save(deck)


def make_text_deck(slides: Sequence[tuple[str, str, str]]) -> bytes:
    """One slide per (title, body, notes); an empty title gives a blank slide with a text box."""
    deck = Presentation()
    for title, body, notes in slides:
        if title:
            slide = _slide(deck, TITLE_AND_CONTENT, title)
            slide.placeholders[1].text_frame.text = body
        else:
            slide = deck.slides.add_slide(deck.slide_layouts[BLANK])
            _text_box(slide.shapes, body, left=1, top=1)
        if notes:
            _notes(slide, notes)
    return _save(deck)


def make_encrypted_pptx(data: bytes, password: str = "s3cret") -> bytes:
    """What PowerPoint writes for "Encrypt with Password": an OLE compound file (MS-OFFCRYPTO)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, encrypted)
    return encrypted.getvalue()


def make_pptx_bomb(data: bytes, inflated: int) -> bytes:
    """The deck plus one entry of `inflated` zero bytes (deflated to about 1/1000th)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package,
    ):
        for entry in source.infolist():
            package.writestr(entry, source.read(entry))
        package.writestr("ppt/media/padding.bin", bytes(inflated))
    return buffer.getvalue()


def make_zip_without_presentation() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("slides.txt", "a zip, not a PowerPoint presentation")
    return buffer.getvalue()


def _slide(deck: Deck, layout: int, title: str) -> Slide:
    slide: Slide = deck.slides.add_slide(deck.slide_layouts[layout])
    assert slide.shapes.title is not None
    slide.shapes.title.text_frame.text = title
    return slide


def _text_box(shapes: SlideShapes | GroupShapes, text: str, *, left: float, top: float) -> None:
    box = shapes.add_textbox(Inches(left), Inches(top), Inches(3), Inches(0.4))
    box.text_frame.text = text


def _smartart(slide: Slide, nodes: Sequence[str]) -> None:
    """A SmartArt graphic as PowerPoint stores it: a frame pointing at a diagram data part whose
    points hold the text (transitions between them hold none). python-pptx cannot draw one."""
    from pptx.opc.package import Part
    from pptx.opc.packuri import PackURI
    from pptx.oxml import parse_xml

    points = "".join(
        f'<dgm:pt modelId="{n}"><dgm:t><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p>'
        f'</dgm:t></dgm:pt><dgm:pt modelId="t{n}" type="parTrans"><dgm:t><a:p><a:r>'
        "<a:t>not shown</a:t></a:r></a:p></dgm:t></dgm:pt>"
        for n, text in enumerate(nodes, start=1)
    )
    data = (
        f'<dgm:dataModel xmlns:dgm="{_DGM}" xmlns:a="{_A}"><dgm:ptLst>'
        f'<dgm:pt modelId="0" type="doc"/>{points}</dgm:ptLst></dgm:dataModel>'
    )
    part = Part(
        PackURI(f"/ppt/diagrams/data{slide.slide_id}.xml"),
        "application/vnd.openxmlformats-officedocument.drawingml.diagramData+xml",
        slide.part.package,
        data.encode(),
    )
    rid = slide.part.relate_to(part, f"{_R}/diagramData")
    frame = parse_xml(
        f'<p:graphicFrame xmlns:p="{_P}" xmlns:a="{_A}" xmlns:r="{_R}">'
        '<p:nvGraphicFramePr><p:cNvPr id="90" name="Diagram"/><p:cNvGraphicFramePr/><p:nvPr/>'
        '</p:nvGraphicFramePr><p:xfrm><a:off x="0" y="6400000"/><a:ext cx="100" cy="100"/>'
        f'</p:xfrm><a:graphic><a:graphicData uri="{_DGM}"><dgm:relIds xmlns:dgm="{_DGM}" '
        f'r:dm="{rid}" r:lo="" r:qs="" r:cs=""/></a:graphicData></a:graphic></p:graphicFrame>'
    )
    slide.shapes._spTree.append(frame)


def _move_group(group: object, *, top: int) -> None:
    xfrm = group._element.grpSpPr.xfrm  # type: ignore[attr-defined]
    xfrm.off.y = top


def _notes(slide: Slide, text: str) -> None:
    frame = slide.notes_slide.notes_text_frame
    assert frame is not None
    frame.text = text


def _save(deck: Deck) -> bytes:
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()
