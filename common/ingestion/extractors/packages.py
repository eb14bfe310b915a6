"""Zip packages (OOXML, OpenDocument, EPUB) and OLE compound files: opened safely or refused.

A package is opened only after its directory is checked: zip-level encryption, an inflated size
over the limit (zip bombs; declared sizes are binding, zipfile stops at them and fails the CRC
check) and a damaged directory are each refused with a message naming the problem. A password-
protected OOXML file is not a zip at all but an OLE compound file holding an encrypted package,
as is a legacy Office 97-2003 file: both are told apart by their directory entries.
"""

from __future__ import annotations

import io
import logging
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO

from common.platform.errors import PermanentIngestionError

logger = logging.getLogger(__name__)

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Directory entry names of an OLE compound file (UTF-16LE): the encrypted-package key data
# (MS-OFFCRYPTO) and the main streams of legacy Word, Excel and PowerPoint files.
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_LEGACY_STREAMS = (
    ("WordDocument".encode("utf-16-le"), "legacy Word 97-2003 (.doc)", ".docx"),
    ("Workbook".encode("utf-16-le"), "legacy Excel 97-2003 (.xls)", ".xlsx"),
    ("PowerPoint Document".encode("utf-16-le"), "legacy PowerPoint 97-2003 (.ppt)", ".pptx"),
)
# Damaged packages surface from zipfile, zlib and XML parsers as builtin errors too: all mean
# "this file is broken", which no retry can fix. MemoryError and programming errors are not here.
PACKAGE_ERRORS: tuple[type[BaseException], ...] = (
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


def zip_names(data: bytes) -> list[str] | None:
    """The entry names of a zip package, or None when the bytes are not a readable zip."""
    if not data.startswith(ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            return package.namelist()
    except PACKAGE_ERRORS:
        return None


def zip_member(data: bytes, name: str, limit: int = 256) -> bytes | None:
    """The first bytes of one small entry (an ODF or EPUB `mimetype`), None if unreadable."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package, package.open(name) as member:
            return member.read(limit)
    except PACKAGE_ERRORS:
        return None


def open_package(
    data: bytes,
    *,
    label: str,
    max_unpacked_bytes: int,
    required: str | None = None,
    expected: str | None = None,
) -> zipfile.ZipFile:
    """The package as an open ZipFile, after the checks in the module docstring; `label` names
    the format in messages ("Word document"), `required` is an entry the format must have,
    `expected` its extension (".docx", for the legacy twin's message)."""
    if data.startswith(OLE_MAGIC):
        raise ole_error(data, label, expected)
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
        entries = package.infolist()
    except PACKAGE_ERRORS as exc:
        raise corrupt(label, exc, "not a valid zip package") from exc
    if any(entry.flag_bits & 0x1 for entry in entries):  # zip-level (legacy) encryption
        package.close()
        raise encrypted(label)
    if required is not None and required not in {entry.filename for entry in entries}:
        package.close()
        raise PermanentIngestionError(
            f"the file is a zip package without a {label} (no {required})"
        )
    inflated = sum(entry.file_size for entry in entries)
    if inflated > max_unpacked_bytes:
        package.close()
        raise PermanentIngestionError(
            f"the {label} unpacks to {inflated} bytes; the limit is {max_unpacked_bytes} bytes"
        )
    return package


def open_office[T](
    opener: Callable[[IO[bytes]], T],
    data: bytes,
    label: str,
    library_errors: tuple[type[BaseException], ...],
) -> T:
    """`opener` (python-docx's Document, python-pptx's Presentation) over the bytes, every way
    a damaged package fails it turned into a readable permanent error."""
    from lxml.etree import LxmlError

    try:
        return opener(io.BytesIO(data))
    except (LxmlError, *library_errors, *PACKAGE_ERRORS) as exc:
        raise corrupt(label, exc) from exc
    except (AttributeError, TypeError) as exc:
        # Opening only parses the package: a required attribute missing from a damaged part
        # reaches the library as None (None.lower(), a path joined with None).
        raise corrupt(label, exc, "a package part lacks a required attribute") from exc


def misplaced_part(exc: AttributeError, generic_part: type) -> bool:
    """Whether the library met a plain XML element or a generic part where the file should hold
    a specific one (a renamed root tag, a wrong content type): damage, not a bug of ours."""
    from lxml import etree

    return type(exc.obj) in (etree._Element, generic_part)


def encrypted(label: str) -> PermanentIngestionError:
    return PermanentIngestionError(
        f"the {label} is encrypted with a password; upload an unencrypted copy"
    )


def ole_error(data: bytes, label: str, expected: str | None = None) -> PermanentIngestionError:
    """An OLE compound file where a zip package was expected: encrypted, or a legacy format
    (told by its main stream, else the legacy twin of `expected`, e.g. ".docx")."""
    if _ENCRYPTION_INFO in data:
        return encrypted(label)
    for stream, legacy, modern in _LEGACY_STREAMS:
        if stream in data:
            return _legacy(legacy, modern)
    for _, legacy, modern in _LEGACY_STREAMS:
        if modern == expected:
            return _legacy(legacy, modern)
    return PermanentIngestionError(
        "the file is an OLE compound file (a legacy Office 97-2003 format), not one this "
        "service reads; save it in a current format (.docx, .xlsx, .pptx) and upload again"
    )


def _legacy(legacy: str, modern: str) -> PermanentIngestionError:
    return PermanentIngestionError(
        f"the file is a {legacy} or other OLE file, not {modern}; "
        f"save it as {modern} and upload again"
    )


def corrupt(label: str, exc: BaseException, detail: str | None = None) -> PermanentIngestionError:
    logger.info("unreadable %s: %s", label, type(exc).__name__)
    return PermanentIngestionError(
        f"the {label} is corrupt or truncated: {detail or describe(exc)}"
    )


def describe(exc: BaseException) -> str:
    """The library's own words (names of parts and XML tags, never text), at most 120 chars."""
    detail = str(exc).strip()
    if len(detail) > 1 and detail[0] == detail[-1] and detail[0] in "\"'":
        detail = detail[1:-1]  # KeyError quotes its message
    if not detail or "\\x" in detail or "b'" in detail:
        return type(exc).__name__
    return detail if len(detail) <= 120 else detail[:119] + "\u2026"
