"""Visible text of an HTML document with the stdlib parser (tolerant of broken markup, no deps).

Dropped: <head> (title and metadata: the document title comes from the file name), script, style,
noscript, template, svg, iframe, object, canvas, and any element marked `hidden`,
`aria-hidden="true"` or styled `display:none`. Block elements become paragraph breaks, <br> and
list items line breaks, table cells are separated by spaces; inside <pre> line breaks are kept,
elsewhere source whitespace collapses as a browser would.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RawPage
from common.ingestion.extractors.headings import HEADING_MARK, clean_heading, strip_marks
from common.ingestion.extractors.text import decode_text

_INVISIBLE = frozenset(
    {
        "head",
        "title",
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "iframe",
        "object",
        "canvas",
    }
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr"}
)  # fmt: skip
_BLOCK = frozenset(
    {"address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
     "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
     "h4", "h5", "h6", "header", "hr", "html", "legend", "main", "nav", "ol", "p", "pre",
     "section", "summary", "table", "tbody", "tfoot", "thead", "ul"}
)  # fmt: skip
_LINE = frozenset({"br", "li", "tr", "option"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_CELL = frozenset({"td", "th"})
_DISPLAY_NONE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """An HTML page: its visible text and headings, one page."""
    source = decode_text(data, declared_charset=options.charset or declared_charset(data))
    text, levels = html_outline(source)
    return RawDocument(
        [RawPage(text, headings=levels)], empty_message="no visible text in the HTML"
    )


def declared_charset(data: bytes) -> str | None:
    """The charset a <meta> tag declares in the first 4 KiB, as browsers look for it."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def html_to_text(source: str) -> str:
    """Visible text with block structure as blank lines (whitespace is normalised afterwards)."""
    text, _ = html_outline(source)
    return text.replace(HEADING_MARK, "")


def html_outline(source: str) -> tuple[str, list[tuple[int, str]]]:
    """The visible text with HEADING_MARK before each non-empty <h1>-<h6>, and their (level,
    text) in order (see `common.ingestion.extractors.headings`)."""
    parser = _VisibleText()
    parser.feed(strip_marks(source))
    parser.close()
    return parser.text(), parser.headings


def _is_hidden(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden":
            return True
        if name == "aria-hidden" and (value or "").strip().lower() == "true":
            return True
        if name == "style" and value and _DISPLAY_NONE.search(value):
            return True
    return False


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skip_tag: str | None = None  # the element whose subtree is being dropped
        self._skip_depth = 0
        self._pre_depth = 0
        self.headings: list[tuple[int, str]] = []
        self._heading: tuple[str, int, list[str]] | None = None  # tag, mark index, its text

    def text(self) -> str:
        return "".join(self._parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag == "head" and tag == "body":
            self._skip_tag, self._skip_depth = (
                None,
                0,
            )  # an unclosed <head> ends where <body> starts
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        if tag not in _VOID and (tag in _INVISIBLE or _is_hidden(attrs)):
            self._skip_tag, self._skip_depth = tag, 1
            return
        self._break(tag)
        if tag == "pre":
            self._pre_depth += 1
        if tag in _HEADINGS and self._heading is None:
            self._heading = (tag, len(self._parts), [])
            self._parts.append(HEADING_MARK)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is None:
            self._break(tag)  # <br/>, <hr/>: a self-closed element has no content to hide

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        if self._heading is not None and tag == self._heading[0]:
            _, mark, words = self._heading
            title = clean_heading("".join(words))
            if title:
                self.headings.append((int(tag[1]), title))
            else:
                self._parts[mark] = ""  # an empty heading marks nothing
            self._heading = None
        if tag in _BLOCK:  # line and cell breaks go before their element, blocks around it
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if self._skip_tag is not None:
            return
        if self._heading is not None:
            self._heading[2].append(data)
        if self._pre_depth:
            self._parts.append(data)
        else:
            self._parts.append(_WHITESPACE.sub(" ", data))

    def _break(self, tag: str) -> None:
        if tag in _BLOCK:
            self._parts.append("\n\n")
        elif tag in _LINE:
            self._parts.append("\n")
        elif tag in _CELL:
            self._parts.append(" ")
