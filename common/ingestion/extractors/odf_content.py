"""OpenDocument elements (content.xml, parsed by lxml) to page parts: shared by the text,
presentation and spreadsheet readers in `common.ingestion.extractors.odf`.

Paragraphs keep their spaces, tabs and line breaks; comments and ruby annotations are left out.
What floats in a paragraph (a footnote's body, a frame or shape anchored to it) is placed right
after the paragraph, the note as "[label] body" with "[label]" kept in the sentence. A table's
first non-empty row is its header; repeated rows and cells (`number-rows-repeated`,
`number-columns-repeated`) are counted rather than expanded when empty and capped when not, so
padding costs nothing; rows count against the document's `max_rows`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from common.ingestion.extractors.base import ExtractOptions, RawPage
from common.ingestion.extractors.layout import PageBuilder

_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
_PRESENTATION = "{urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"
MANIFEST = "{urn:oasis:names:tc:opendocument:xmlns:manifest:1.0}"
SPREADSHEET, SECTION = _OFFICE + "spreadsheet", _TEXT + "section"
P, H, LIST, NOTE, CITATION = (_TEXT + n for n in ("p", "h", "list", "note", "note-citation"))
SPACE, TAB_STOP, LINE_BREAK, NOTE_BODY = (
    _TEXT + n for n in ("s", "tab", "line-break", "note-body")
)
TABLE, ROW, CELL, COVERED, SHAPES = (
    _TABLE + n for n in ("table", "table-row", "table-cell", "covered-table-cell", "shapes")
)
DRAW_PAGE, NOTES, CLASS = _DRAW + "page", _PRESENTATION + "notes", _PRESENTATION + "class"
ROWS_REPEATED, COLUMNS_REPEATED = (
    _TABLE + "number-rows-repeated",
    _TABLE + "number-columns-repeated",
)
_ROW_GROUPS = frozenset(_TABLE + n for n in ("table-header-rows", "table-rows", "table-row-group"))
_LIST_ITEMS = frozenset({_TEXT + "list-item", _TEXT + "list-header"})
_BLOCKS = frozenset({P, H, LIST, TABLE, SECTION, _TEXT + "numbered-paragraph"})
_DRAWINGS = frozenset(
    _DRAW + name
    for name in ("frame", "text-box", "g", "a", "custom-shape", "rect", "ellipse", "circle",
                 "polygon", "polyline", "regular-polygon", "path", "line", "connector",
                 "caption", "measure")
)  # fmt: skip
# Parts of a paragraph with no text of their own for the reader (their tails still count).
_SILENT = frozenset({_OFFICE + "annotation", _OFFICE + "annotation-end", _TEXT + "ruby-text"})
BODIES = frozenset({_OFFICE + "text", SECTION})
_PLACEHOLDERS = frozenset({"page-number", "date-time", "footer", "header"})
_VALUES = tuple(
    _OFFICE + name
    for name in ("string-value", "value", "date-value", "time-value", "boolean-value")
)
# Widest row read; cells past it (data ~16,000 columns out) are left out with a notice.
MAX_COLUMNS = 1024
_MAX_SPACES = 64


def drop(element: Any) -> None:
    """Free a handled element and the siblings before it (the stream keeps memory flat)."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


class _Sink(Protocol):
    """Where read parts go: a page (PageBuilder) or plain text (a table cell, a title)."""

    def heading(self, level: int, title: str) -> None: ...
    def paragraph(self, text: str) -> None: ...
    def table(
        self,
        header: Sequence[str] | None,
        rows: Iterator[tuple[int, Sequence[str]]],
        options: ExtractOptions,
    ) -> int: ...


class _Words:
    """A sink that keeps only the words, for text nested where blocks cannot be (a cell)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def heading(self, level: int, title: str) -> None:
        self.parts.append(title)

    def paragraph(self, text: str) -> None:
        self.parts.append(text)

    def table(
        self,
        header: Sequence[str] | None,
        rows: Iterator[tuple[int, Sequence[str]]],
        options: ExtractOptions,
    ) -> int:
        self.parts.extend(header or ())
        for _, cells in rows:
            self.parts.extend(cells)
        return 0

    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


class OdfReader:
    """Turns ODF elements into page parts; counts rows against the document's limit."""

    def __init__(self, options: ExtractOptions, label: str, rows: str) -> None:
        self.options = options
        self._cap_notice = (
            f"only the first {options.max_rows} {rows} of the {label} were read; "
            "the rows after them were left out"
        )
        self.rows_left = options.max_rows
        self.notices: list[str] = []
        self._wide = False

    def checkpoint(self) -> None:
        if self.options.checkpoint is not None:
            self.options.checkpoint()

    # Blocks ---------------------------------------------------------------------------------

    def block(self, element: Any, sink: _Sink) -> None:
        tag = element.tag
        if tag in (P, H):
            text, floating = self._inline(element)
            if tag == H:
                sink.heading(_int(element.get(_TEXT + "outline-level"), 1), text)
            else:
                sink.paragraph(text)
            self._floating(floating, sink)
        elif tag == LIST:
            after: list[Any] = []
            sink.paragraph("\n".join(self._list_lines(element, after)))
            self._floating(after, sink)
        elif tag == TABLE:
            rows = self._table_rows(element)
            header = self._header(rows)
            if header is not None:
                sink.table(header[1], _padded(rows, len(header[1])), self.options)
        elif tag in _DRAWINGS or tag in _BLOCKS:  # containers: sections, frames, shapes
            for child in element:
                self.block(child, sink)

    def _inline(self, element: Any) -> tuple[str, list[Any]]:
        """A paragraph's text, and what floats in it (notes, frames) to place after it."""
        parts: list[str] = []
        floating: list[Any] = []
        self._collect(element, parts, floating)
        return "".join(parts), floating

    def _collect(self, element: Any, parts: list[str], floating: list[Any]) -> None:
        if element.text:
            parts.append(element.text)
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                pass  # an unexpanded entity reference
            elif tag == SPACE:
                parts.append(" " * min(_int(child.get(_TEXT + "c"), 1), _MAX_SPACES))
            elif tag == TAB_STOP:
                parts.append("\t")
            elif tag == LINE_BREAK:
                parts.append("\n")
            elif tag == NOTE:
                label = _note_label(child)
                parts.append(f"[{label}]" if label else "")
                floating.append(child)
            elif tag in _DRAWINGS:
                floating.append(child)
            elif tag not in _SILENT:
                self._collect(child, parts, floating)
            if child.tail:
                parts.append(child.tail)

    def _floating(self, floating: list[Any], sink: _Sink) -> None:
        for element in floating:
            if element.tag != NOTE:
                self.block(element, sink)
                continue
            label = _note_label(element)
            body = element.find(NOTE_BODY)
            text = self.plain(body) if body is not None else ""
            sink.paragraph(f"[{label}] {text}" if label and text else text)

    def _list_lines(self, element: Any, floating: list[Any]) -> Iterator[str]:
        for item in element:
            if item.tag not in _LIST_ITEMS:
                continue
            bullet = "- "  # on the item's first paragraph only
            for child in item:
                if child.tag in (P, H):
                    text, inner = self._inline(child)
                    floating.extend(inner)
                    if text.strip():
                        yield bullet + " ".join(text.split())
                        bullet = ""
                elif child.tag == LIST:
                    yield from self._list_lines(child, floating)
                else:
                    floating.append(child)  # a table or frame in a list item: after the list

    def plain(self, element: Any) -> str:
        """All the text inside an element as one line (a cell, a title, a note)."""
        words = _Words()
        for child in element:
            self.block(child, words)
        return words.text()

    # Tables ---------------------------------------------------------------------------------

    def _table_rows(self, table: Any) -> Iterator[tuple[int, list[str]]]:
        """(row number, cells) of the non-empty rows of a table held whole in memory."""
        number = 0
        for row in _rows_of(table):
            cells = self._cells(row) if self.rows_left >= 0 else []
            number, rows = self._repeated(row, number, cells)
            yield from rows

    def _repeated(
        self, row: Any, number: int, cells: list[str]
    ) -> tuple[int, list[tuple[int, list[str]]]]:
        """A row as often as `number-rows-repeated` says (counted, not expanded, if empty)."""
        repeat = _int(row.get(ROWS_REPEATED), 1)
        if not any(cells):
            return number + repeat, []
        taken = min(repeat, self.rows_left)
        self.rows_left -= taken
        if taken < repeat:  # the limit is reached: say so once, read no more cells
            self.rows_left = -1
            self.notices.append(self._cap_notice)
        return number + repeat, [(number + n, cells) for n in range(1, taken + 1)]

    def _cells(self, row: Any) -> list[str]:
        cells: list[str] = []
        blanks = 0
        for cell in row:
            if cell.tag not in (CELL, COVERED):
                continue
            repeat = _int(cell.get(COLUMNS_REPEATED), 1)
            text = self._cell_text(cell)
            if not text:
                blanks += repeat  # counted, not expanded: only blanks before a value are kept
                continue
            start = len(cells) + blanks
            taken = min(repeat, MAX_COLUMNS - start)
            if taken < repeat:
                self._too_wide()
            if taken <= 0:
                break
            cells += [""] * blanks + [text] * taken
            blanks = 0
        return cells

    def _header(self, rows: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]] | None:
        """The first non-empty row, which names the columns (not counted against the limit)."""
        header = next(rows, None)
        if header is not None and self.rows_left >= 0:
            self.rows_left += 1
        return header

    def _too_wide(self) -> None:
        if not self._wide:
            self._wide = True
            self.notices.append(f"cells past column {MAX_COLUMNS} were left out")

    def _cell_text(self, cell: Any) -> str:
        if len(cell) == 1 and cell[0].tag == P and len(cell[0]) == 0:  # the common case
            return " ".join((cell[0].text or "").split())
        if len(cell) == 0:
            return next((value for value in map(cell.get, _VALUES) if value), "")
        return self.plain(cell)

    # Slides and sheets ----------------------------------------------------------------------

    def slide(self, page: Any) -> RawPage:
        builder = PageBuilder()
        title = next((child for child in page if child.get(CLASS) == "title"), None)
        if title is not None:
            builder.heading(1, self.plain(title))
        for child in page:
            if child is not title and child.get(CLASS) not in _PLACEHOLDERS:
                self.block(child, builder)
        notes = page.find(NOTES)
        if notes is not None:
            lines = _Words()
            for child in notes:
                if child.tag in _DRAWINGS:
                    self.block(child, lines)
            text = "\n".join(part for part in lines.parts if part.strip())
            builder.paragraph(f"Notes:\n{text}" if text else "")
        return builder.build()

    def sheet(self, table: Any, events: Iterator[tuple[str, Any]]) -> RawPage:
        """A sheet read from the stream up to its end tag; `table` has just started."""
        name = table.get(_TABLE + "name") or None
        shapes = _Words()
        rows = self._streamed_rows(events, shapes)
        header = self._header(rows)
        builder = PageBuilder()
        if header is not None:
            builder.heading(1, name or "")
            builder.table(header[1], _padded(rows, len(header[1])), self.options, stacked=True)
        for _ in rows:  # drain to the sheet's end (nothing left when the table took them all)
            pass
        if shapes.parts:
            if builder.empty:
                builder.heading(1, name or "")
            for text in shapes.parts:
                builder.paragraph(text)
        return builder.build(name=name)

    def _streamed_rows(
        self, events: Iterator[tuple[str, Any]], shapes: _Words
    ) -> Iterator[tuple[int, list[str]]]:
        nested = 0  # tables inside cells: read as the cell's text
        number = 0
        for event, element in events:
            tag = element.tag
            if tag == TABLE:
                if event == "start":
                    nested += 1
                elif nested == 0:
                    drop(element)
                    return
                else:
                    nested -= 1
            elif event == "end" and nested == 0:
                if tag == ROW:
                    cells = self._cells(element) if self.rows_left >= 0 else []
                    number, rows = self._repeated(element, number, cells)
                    drop(element)
                    yield from rows
                elif tag == SHAPES:
                    for child in element:
                        self.block(child, shapes)
                    drop(element)


def _padded(rows: Iterator[tuple[int, list[str]]], width: int) -> Iterator[tuple[int, list[str]]]:
    """Rows as wide as the header at least (trailing empty cells are not stored)."""
    for number, cells in rows:
        yield number, cells + [""] * (width - len(cells))


def _rows_of(table: Any) -> Iterator[Any]:
    for child in table:
        if child.tag == ROW:
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _rows_of(child)


def _note_label(note: Any) -> str:
    citation = note.find(CITATION)
    return "".join(citation.itertext()).strip() if citation is not None else ""


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        return default
