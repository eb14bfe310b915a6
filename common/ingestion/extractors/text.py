"""Bytes to str for text formats: BOM-aware UTF-8/16/32, then Windows-1252, then Latin-1.

No charset detector: UTF-8 is what almost every modern tool writes, and the single-byte fallback
never fails, so a legacy Western file still ingests (other legacy code pages decode as mojibake
rather than being rejected). Binary data sent as text is rejected by its share of control
bytes (UTF-16 without a BOM counts as binary).
"""

from __future__ import annotations

import codecs

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RawPage
from common.ingestion.extractors.headings import strip_marks
from common.platform.errors import PermanentIngestionError
from common.platform.formats import SUPPORTED

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Bytes that never occur in text: C0 controls other than \t \n \v \f \r and ESC, and DEL.
_BINARY_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_TEXT_BYTES = bytes(b for b in range(256) if b not in _BINARY_BYTES)
# Random bytes are ~11% such bytes. Valid UTF-8 with a few stray NULs or controls is still text
# (they are removed by normalisation); without valid UTF-8 we accept almost none.
_MAX_BINARY_SHARE_UTF8 = 0.05
_MAX_BINARY_SHARE_LEGACY = 0.005


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """A plain text file: one page."""
    source = decode_text(data, declared_charset=options.charset)
    return RawDocument([RawPage(strip_marks(source))])


def decode_text(data: bytes, *, declared_charset: str | None = None) -> str:
    """Decode a text file; raise PermanentIngestionError for binary data."""
    for bom, encoding in _BOMS:  # UTF-32-LE's BOM starts with UTF-16-LE's: check it first
        if data.startswith(bom):
            return _decode_strict(data[len(bom) :], encoding)
    share = _binary_share(data)
    if share > _MAX_BINARY_SHARE_UTF8:
        raise _binary()
    if declared_charset:
        try:
            return data.decode(_known_encoding(declared_charset))
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown declared charset: fall through to the sniffing order
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if share > _MAX_BINARY_SHARE_LEGACY:  # not UTF-8 and with control bytes: binary
        raise _binary()
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # total: every byte maps to a code point


def _decode_strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PermanentIngestionError(
            f"the file starts with a {encoding} byte order mark but is not valid {encoding}"
        ) from exc


def _known_encoding(name: str) -> str:
    """The codec name for `name` (raises LookupError for unknown names)."""
    return codecs.lookup(name.strip().strip("\"'")).name


def _binary_share(data: bytes) -> float:
    """The share of bytes that never occur in text (sampled from the first MiB)."""
    sample = data[: 1 << 20]
    if not sample:
        return 0.0
    binary = len(sample.translate(None, _TEXT_BYTES))  # deletes the text bytes, keeps the rest
    return binary / len(sample)


def _binary() -> PermanentIngestionError:
    return PermanentIngestionError(
        f"the file does not look like text (it contains binary data); supported: {SUPPORTED}"
    )
