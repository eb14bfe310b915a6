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
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from common.platform.errors import PermanentIngestionError

if TYPE_CHECKING:
    from docx.table import Table, _Cell

logger = logging.getLogger(__name__)

MIME_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
# The stream an encrypted OOXML package keeps its key data in (MS-OFFCRYPTO), as stored in the
# compound file's directory (UTF-16LE names).
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
# python-docx reads every part into memory: refuse packages that would inflate beyond this
# (zip bombs). Declared sizes are binding: zipfile stops at them and fails the CRC check.
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
# Damaged packages surface from zipfile, zlib and the XML parser as builtin errors too: all mean
# "this file is broken", which no retry can fix. MemoryError and programming errors are not here.
_PACKAGE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    KeyError,
    IndexError,
    ValueError,  # includes UnicodeDecodeError
    NotImplementedError,  # zip features zipfile cannot read (newer versions, patched data)
)


def is_docx(data: bytes) -> bool:
    """Whether the bytes are a zip package with a Word main document (for untyped uploads)."""
    if not data.startswith(_ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            return "word/document.xml" in package.namelist()
    except _PACKAGE_ERRORS:
        return False  # a damaged zip is not recognised as Word: it fails as text instead


def extract_docx_text(data: bytes) -> str:
    """The body text in reading order (see the module docstring)."""
    if data.startswith(_OLE_MAGIC):
        raise _ole_file(data)
    _check_package(data)
    import docx
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_blocks(document.iter_inner_content()))
    except (OpcError, LxmlError, *_PACKAGE_ERRORS) as exc:
        raise _corrupt(exc) from exc
    return "\n\n".join(block for block in blocks if block.strip())


def _check_package(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            entries = package.infolist()
    except _PACKAGE_ERRORS as exc:
        raise _corrupt(exc, "not a valid zip package") from exc
    names = {entry.filename for entry in entries}
    inflated = sum(entry.file_size for entry in entries)
    if any(entry.flag_bits & 0x1 for entry in entries):  # zip-level (legacy) encryption
        raise PermanentIngestionError(
            "the Word document is encrypted with a password; upload an unencrypted copy"
        )
    if "word/document.xml" not in names:
        raise PermanentIngestionError(
            "the file is a zip package without a Word document (no word/document.xml)"
        )
    if inflated > MAX_UNCOMPRESSED_BYTES:
        raise PermanentIngestionError(
            f"the Word document unpacks to {inflated} bytes; the limit is "
            f"{MAX_UNCOMPRESSED_BYTES} bytes"
        )


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


def _ole_file(data: bytes) -> PermanentIngestionError:
    if _ENCRYPTION_INFO in data:
        return PermanentIngestionError(
            "the Word document is encrypted with a password; upload an unencrypted copy"
        )
    return PermanentIngestionError(
        "the file is a legacy Word 97-2003 (.doc) or other OLE file, not .docx; "
        "save it as .docx and upload again"
    )


def _corrupt(exc: BaseException, detail: str | None = None) -> PermanentIngestionError:
    logger.info("unreadable Word document: %s", type(exc).__name__)
    detail = detail or _detail(exc)
    return PermanentIngestionError(f"the Word document is corrupt or truncated: {detail}")


def _detail(exc: BaseException) -> str:
    """The library's own words (names of parts and XML tags, never text), at most 120 chars."""
    detail = str(exc).strip()
    if len(detail) > 1 and detail[0] == detail[-1] and detail[0] in "\"'":
        detail = detail[1:-1]  # KeyError quotes its message
    if not detail or "\\x" in detail or "b'" in detail:
        return type(exc).__name__
    return detail if len(detail) <= 120 else detail[:119] + "\u2026"
