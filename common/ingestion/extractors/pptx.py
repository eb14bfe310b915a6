"""PowerPoint (.pptx) with python-pptx: one page per slide, the slide title as its heading.

A slide reads as its title (a level-1 heading, so its chunks carry it in their heading path),
then the text of its shapes top to bottom, left to right: placeholders, text boxes, auto shapes
and WordArt (text in a shape, kept as written), the children of groups at their place on the
slide (a group's child offsets are mapped through its transform, nested groups included),
tables as Markdown rows, chart titles and SmartArt text; then the speaker notes as a last
paragraph opening with a "Notes:" line, so a question about what the speaker says finds them.
A slide without a title placeholder has no heading of its own: its chunks keep the heading path
of the slide before, which is often its subject (a continuation slide). A title too long for a
heading is kept as a paragraph, so no text is cut.

Table rows are numbered as in the table, the header row being row 1 (citations say "slide 4,
rows 2-9"); a table without PowerPoint's "Header Row" option has no header and starts at row 1.
Hidden slides are read: they are part of the deck, and slide numbers count them as PowerPoint
does. Footer, date and slide-number placeholders are left out, as Word headers are: they repeat
on every slide. Pictures have no text (no OCR of images inside slides).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from common.ingestion.extractors.base import ExtractOptions, PageUnit, RawDocument, RawPage
from common.ingestion.extractors.headings import MAX_HEADING_CHARS
from common.ingestion.extractors.layout import PageBuilder
from common.ingestion.extractors.packages import (
    PACKAGE_ERRORS,
    corrupt,
    misplaced_part,
    open_office,
    open_package,
)
from common.platform.errors import PermanentIngestionError

if TYPE_CHECKING:
    from lxml.etree import _Element
    from pptx.presentation import Presentation as PptxPresentation
    from pptx.shapes.base import BaseShape
    from pptx.shapes.graphfrm import GraphicFrame
    from pptx.slide import Slide
    from pptx.table import Table

MIME_TYPE = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
LABEL = "PowerPoint presentation"
_MAIN_PART = "ppt/presentation.xml"
NOTES_LINE = "Notes:"
_DIAGRAM_URI = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
_NS = {
    "p": "http://schemas.openxmlformats.org/presentationml/2006/main",
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "dgm": _DIAGRAM_URI,
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
}
# Maps a position in a group's child space to the slide's (EMU, as floats).
Place = Callable[[float, float], tuple[float, float]]


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """Every slide's text in order, one page each (see the module docstring)."""
    open_package(
        data,
        label=LABEL,
        max_unpacked_bytes=options.max_unpacked_bytes,
        required=_MAIN_PART,
        expected=".pptx",
    ).close()
    from lxml.etree import LxmlError
    from pptx.exc import PythonPptxError

    presentation = _open(data)
    deck = _Deck(options)
    try:
        count = len(presentation.slides)
        if count > options.max_pages:  # before any slide is read
            raise PermanentIngestionError(
                f"the {LABEL} has {count} slides; the limit is {options.max_pages} per document"
            )
        pages = [deck.slide(slide) for slide in presentation.slides]
    except (PythonPptxError, LxmlError, *PACKAGE_ERRORS) as exc:
        raise corrupt(LABEL, exc) from exc
    except AttributeError as exc:
        if not _misplaced(exc):
            raise
        raise corrupt(LABEL, exc, "a part or element is not of the kind it should be") from exc
    return RawDocument(
        pages,
        unit=PageUnit.SLIDE,
        paged=True,
        notices=deck.notices,
        empty_message=f"no text in the {LABEL}",
    )


def _open(data: bytes) -> PptxPresentation:
    import pptx
    from pptx.exc import PythonPptxError

    return open_office(pptx.Presentation, data, LABEL, (PythonPptxError,))


def _misplaced(exc: AttributeError) -> bool:
    from pptx.opc.package import Part

    return misplaced_part(exc, Part)


class _Deck:
    """Reads slides one by one; counts table rows against the document's limit."""

    def __init__(self, options: ExtractOptions) -> None:
        self.options = options
        self.rows_left = options.max_rows
        self.notices: list[str] = []

    def slide(self, slide: Slide) -> RawPage:
        page = PageBuilder()
        title = slide.shapes.title
        if title is not None and title.has_text_frame:
            _title(page, title.text_frame.text)
        # Stable sort: shapes at the same spot keep their z-order.
        placed = sorted(_placed(slide.shapes, _slide_space), key=lambda item: item[0])
        for _, shape in placed:
            if title is None or shape.element is not title.element:
                self.shape(page, shape, slide)
        notes = _notes(slide)
        if notes.strip():
            page.paragraph(f"{NOTES_LINE}\n{notes}")
        return page.build()

    def shape(self, page: PageBuilder, shape: BaseShape, slide: Slide) -> None:
        from pptx.enum.shapes import PP_PLACEHOLDER
        from pptx.shapes.graphfrm import GraphicFrame

        if shape.is_placeholder and shape.placeholder_format.type in (
            PP_PLACEHOLDER.FOOTER,
            PP_PLACEHOLDER.DATE,
            PP_PLACEHOLDER.SLIDE_NUMBER,
        ):
            return
        if shape.has_text_frame:
            page.paragraph(shape.text_frame.text)  # type: ignore[attr-defined]
        elif isinstance(shape, GraphicFrame):
            if shape.has_table:
                self.table(page, shape.table)
            elif shape.has_chart:
                page.paragraph(_chart_title(shape))
            elif shape.element.graphicData_uri == _DIAGRAM_URI:
                page.paragraph(_diagram_text(shape, slide))

    def table(self, page: PageBuilder, table: Table) -> None:
        grid = [[cell.text for cell in row.cells] for row in table.rows]
        header = grid.pop(0) if grid and table.first_row else None
        first = 2 if header is not None else 1
        numbered = list(enumerate(grid, start=first))
        if len(numbered) > self.rows_left:
            numbered = numbered[: self.rows_left]
            if not self.notices:
                self.notices.append(
                    f"only the first {self.options.max_rows} table rows of the {LABEL} were "
                    "read; the rows after them were left out"
                )
        self.rows_left -= len(numbered)
        page.table(header, numbered, self.options)


def _title(page: PageBuilder, text: str) -> None:
    if len(" ".join(text.split())) <= MAX_HEADING_CHARS:
        page.heading(1, text)
    else:
        page.paragraph(text)


def _slide_space(x: float, y: float) -> tuple[float, float]:
    return x, y


def _placed(
    shapes: Iterable[BaseShape], place: Place
) -> Iterator[tuple[tuple[float, float], BaseShape]]:
    """Every shape that is not a group, with its (top, left) on the slide; groups are opened
    recursively, each child placed through its group's transform."""
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _placed(shape.shapes, _child_space(shape, place))
        else:
            left, top = place(float(shape.left or 0), float(shape.top or 0))
            yield (top, left), shape


def _child_space(group: BaseShape, outer: Place) -> Place:
    """A group's child coordinates (a:chOff, a:chExt) mapped onto its frame (a:off, a:ext)."""
    xfrm = group.element.find("p:grpSpPr/a:xfrm", _NS)
    if xfrm is None:
        return outer
    x, y = _point(xfrm, "a:off", "x", "y")
    cx, cy = _point(xfrm, "a:ext", "cx", "cy")
    child_x, child_y = _point(xfrm, "a:chOff", "x", "y")
    child_cx, child_cy = _point(xfrm, "a:chExt", "cx", "cy")
    scale_x = cx / child_cx if child_cx else 1.0
    scale_y = cy / child_cy if child_cy else 1.0

    def place(left: float, top: float) -> tuple[float, float]:
        return outer(x + (left - child_x) * scale_x, y + (top - child_y) * scale_y)

    return place


def _point(xfrm: _Element, path: str, first: str, second: str) -> tuple[int, int]:
    element = xfrm.find(path, _NS)
    if element is None:
        return 0, 0
    return int(element.get(first, 0)), int(element.get(second, 0))


def _notes(slide: Slide) -> str:
    if not slide.has_notes_slide:  # notes_slide would create one
        return ""
    frame = slide.notes_slide.notes_text_frame
    return frame.text if frame is not None else ""


def _chart_title(frame: GraphicFrame) -> str:
    chart = frame.chart
    if not chart.has_title or not chart.chart_title.has_text_frame:
        return ""
    return str(chart.chart_title.text_frame.text)


def _diagram_text(frame: GraphicFrame, slide: Slide) -> str:
    """The text of a SmartArt graphic's nodes, one per line, from its data part."""
    from pptx.oxml import parse_xml

    ids = frame.element.find(".//dgm:relIds", _NS)
    rid = ids.get(f"{{{_NS['r']}}}dm") if ids is not None else None
    if rid is None:
        return ""
    data = parse_xml(slide.part.related_part(rid).blob)
    lines = []
    for point in data.iterfind("dgm:ptLst/dgm:pt", _NS):
        if point.get("type", "node") != "node":
            continue  # transitions and layout points carry no text of the author's
        for paragraph in point.iterfind("dgm:t/a:p", _NS):
            lines.append("".join(run.text or "" for run in paragraph.iterfind(".//a:t", _NS)))
    return "\n".join(lines)
