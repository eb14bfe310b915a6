"""Which format an upload is: by its content first, then its declared type, then its name.

Binary formats carry signatures (PDF, zip packages told apart by their entries, OLE compound
files, RTF, image magic numbers): a file whose bytes say what it is is read as that, whatever
it is called, so a scan saved as `.pdf` but holding a PNG still reads. Text formats have no
signature: the declared type decides, then the extension; with neither, JSON is recognised by
parsing and anything else is tried as plain text (binary data is refused by decoding).
"""

from __future__ import annotations

import json

from common.ingestion.extractors.packages import (
    OLE_MAGIC,
    ZIP_MAGIC,
    ole_error,
    zip_member,
    zip_names,
)
from common.platform.errors import PermanentIngestionError
from common.platform.formats import (
    BY_KIND,
    GENERIC_MIME_TYPES,
    SUPPORTED,
    Kind,
    kind_of_mime,
    sniff_mime_type,
)

_ODF_KINDS = {
    b"application/vnd.oasis.opendocument.text": Kind.ODT,
    b"application/vnd.oasis.opendocument.presentation": Kind.ODP,
    b"application/vnd.oasis.opendocument.spreadsheet": Kind.ODS,
    b"application/epub+zip": Kind.EPUB,
}
_OOXML_PARTS = (
    ("word/document.xml", Kind.DOCX),
    ("ppt/presentation.xml", Kind.PPTX),
    ("xl/workbook.xml", Kind.XLSX),
)
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"GIF87a",
    b"GIF89a",
)
_JSON_SNIFF_BYTES = 8 * 1024 * 1024


def detect_kind(data: bytes, mime_type: str | None, filename: str) -> Kind:
    """The format to read `data` as (see the module docstring); raises PermanentIngestionError
    for types the service does not read."""
    resolved = sniff_mime_type(filename, mime_type)
    named = kind_of_mime(resolved)
    found = _sniff(data, named)
    if found is not None:
        return found
    if named is not None:
        return named
    if resolved is not None and resolved not in GENERIC_MIME_TYPES:
        raise PermanentIngestionError(
            f"unsupported file type '{resolved}' (supported: {SUPPORTED})"
        )
    if data.startswith(ZIP_MAGIC):
        raise PermanentIngestionError(
            "unsupported file type: a zip archive, not an Office, OpenDocument or EPUB file "
            f"(supported: {SUPPORTED}); upload the files inside it instead"
        )
    if _looks_like_json(data):
        return Kind.JSON
    return Kind.TEXT  # no type at all: try text (binary data is rejected by decoding)


def _sniff(data: bytes, named: Kind | None) -> Kind | None:
    """The kind the content's signature proves, if any."""
    if data.startswith(b"%PDF-") or (named is None and b"%PDF-" in data[:1024]):
        # The PDF spec allows junk before the header; readers look in the first KiB.
        return Kind.PDF
    if data.startswith(OLE_MAGIC):
        label = BY_KIND[named].noun if named else "file"
        expected = f".{named.value}" if named in (Kind.DOCX, Kind.XLSX, Kind.PPTX) else None
        raise ole_error(data, label, expected)
    if data.startswith(b"{\\rtf"):
        return Kind.RTF
    if data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return Kind.IMAGE
    if data.startswith(b"BM") and named is Kind.IMAGE:
        return Kind.IMAGE
    names = zip_names(data)
    if names is None:
        return None
    if "mimetype" in names:
        declared = (zip_member(data, "mimetype") or b"").strip()
        if declared in _ODF_KINDS:
            return _ODF_KINDS[declared]
    for part, kind in _OOXML_PARTS:
        if part in names:
            return kind
    return None


def _looks_like_json(data: bytes) -> bool:
    head = data[:64].lstrip()
    if not head.startswith((b"{", b"[")) or len(data) > _JSON_SNIFF_BYTES:
        return False
    try:
        json.loads(data)
    except ValueError:
        return False
    return True
