"""Word (.docx) body text with python-docx: paragraphs, headings and tables in reading order.

Every paragraph and heading becomes its own paragraph (a blank line apart); a table becomes one
block with a line per row and its cells separated by spaces (as the HTML and Markdown extractors
do), nested tables in place. A merged cell is read once. Headers, footers, comments and text
boxes are left out: they repeat on every page or sit outside the reading order. Word has no fixed
pages, so the document is one page.

A password-protected .docx is not a zip at all but an OLE compound file holding an encrypted
package (as is a legacy .doc): both are recognised by their magic bytes and refused with a
message saying what to upload instead.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RawPage
from common.ingestion.extractors.headings import strip_marks
from common.ingestion.extractors.packages import PACKAGE_ERRORS, corrupt, open_package, zip_names

if TYPE_CHECKING:
    from docx.table import Table, _Cell

logger = logging.getLogger(__name__)

MIME_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LABEL = "Word document"
_MAIN_PART = "word/document.xml"


def is_docx(data: bytes) -> bool:
    """Whether the bytes are a zip package with a Word main document (for untyped uploads)."""
    return _MAIN_PART in (zip_names(data) or ())


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """The body text in reading order, one page (see the module docstring)."""
    text = extract_docx_text(data, max_unpacked_bytes=options.max_unpacked_bytes)
    return RawDocument([RawPage(text)], empty_message="no text in the Word document")


def extract_docx_text(data: bytes, *, max_unpacked_bytes: int = 512 * 1024 * 1024) -> str:
    """The body text in reading order (see the module docstring)."""
    open_package(
        data,
        label=LABEL,
        max_unpacked_bytes=max_unpacked_bytes,
        required=_MAIN_PART,
        expected=".docx",
    ).close()
    import docx
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_blocks(document.iter_inner_content()))
    except (OpcError, LxmlError, *PACKAGE_ERRORS) as exc:
        raise corrupt(LABEL, exc) from exc
    return strip_marks("\n\n".join(block for block in blocks if block.strip()))


def _blocks(content: Iterator[object]) -> Iterator[str]:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for item in content:
        if isinstance(item, Paragraph):
            yield item.text
        elif isinstance(item, Table):
            yield _table_text(item)


def _table_text(table: Table) -> str:
    """One line per row, cells separated by spaces; a merged cell only where it starts."""
    lines: list[str] = []
    # The cells' XML elements, kept alive so that lxml hands out the same proxy for a merged
    # cell each time it repeats (in row.cells, and in the rows a vertical merge spans).
    seen: set[object] = set()
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            if cell._tc in seen:
                continue
            seen.add(cell._tc)
            cells.append(_cell_text(cell))
        line = " ".join(text for text in cells if text)
        if line:
            lines.append(line)
    return "\n".join(lines)


def _cell_text(cell: _Cell) -> str:
    return " ".join(" ".join(_blocks(cell.iter_inner_content())).split())
