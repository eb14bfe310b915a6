"""RTF documents: their text by striprtf, one page (RTF has no fixed pages).

The bytes decode as the document's code page (`\\ansicpg`, else Windows-1252, as RTF readers
assume); striprtf turns `\\'xx` escapes into characters by the code page of the current font
(`\\fcharset`) and `\\uN` into Unicode (the surrogate pairs Word writes for emoji are joined
here). Headers, footers, footnotes, comments and document properties are destinations striprtf
skips.

striprtf walks the source one token at a time in Python, and two of its regexes are quadratic
on long lines, so the source is prepared in linear passes first: pictures, OLE objects and theme
data (hex blobs, often most of the file) are cut out by brace matching; the font table is
rewritten to one short entry per font; fields are split from their instructions so the
hyperlink rewrite (quadratic on a one-line document) never matches, and a hyperlink reads as its
text. Each `\\par` is doubled so paragraphs end in a blank line as in the other formats
(`\\line` stays one line break). Measured on one core: a 5 MB RTF reads in ~1.5 s (striprtf's own
pace; preparing adds ~5%), and so does a 5 MB one-line RTF of hyperlinks, which striprtf alone
takes tens of minutes on.
"""

from __future__ import annotations

import codecs
import logging
import re

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RawPage
from common.ingestion.extractors.headings import strip_marks
from common.ingestion.extractors.packages import corrupt
from common.platform.errors import PermanentIngestionError

logger = logging.getLogger(__name__)

LABEL = "RTF document"
_CODE_PAGE = re.compile(rb"\\ansicpg(\d{1,5})")
# Destinations that hold binary or hex data, never text (pictures, OLE objects, theme, XML).
_HEAVY = re.compile(
    r"\{(?:\\\*)?\\(?:pict|objdata|datastore|themedata|colorschememapping|xmlnstbl|blipuid)"
    r"(?![a-z])"
)
_BRACES = re.compile(r"\\[\\{}]|[{}]|\\bin(\d{1,9}) ?")
_FONT_TABLE = re.compile(r"\{[^{}]*\\fonttbl")  # as striprtf finds it
_FONT = re.compile(r"\\f(\d{1,9})|\\fcharset(\d{1,3})")
_FIELD = re.compile(r"\{\\field\{", re.IGNORECASE)
_PARAGRAPH = re.compile(r"(?<!\\)\\par(?![a-zA-Z])")
_CODE_PAGE_WORD = re.compile(r"\\ansicpg\d*")
# Mac character sets striprtf names codecs Python lacks for: the Windows code page of the script.
_MAC_CHARSETS = {78: 128, 79: 136, 80: 129, 82: 177, 85: 134, 86: 238, 87: 204, 88: 222, 89: 238}
# Bytes that never occur in an RTF file outside \bin data: C0 controls but tab, CR, LF.
_BINARY_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_TEXT_BYTES = bytes(b for b in range(256) if b not in _BINARY_BYTES)
_MAX_BINARY_SHARE = 0.01


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """An RTF document's text, one page (see the module docstring)."""
    text = rtf_text(data)
    return RawDocument([RawPage(strip_marks(text))], empty_message=f"no text in the {LABEL}")


def rtf_text(data: bytes) -> str:
    from striprtf.striprtf import rtf_to_text

    data = data.removeprefix(codecs.BOM_UTF8)
    if not data.lstrip().startswith(b"{\\rtf"):
        raise PermanentIngestionError(
            f"the {LABEL} is corrupt or truncated: it does not start with {{\\rtf"
        )
    if b"\\bin" not in data and _binary_share(data) > _MAX_BINARY_SHARE:
        raise PermanentIngestionError(f"the {LABEL} is corrupt: it contains binary data")
    code_page = _code_page(data)
    source = _prepared(data.decode(f"cp{code_page}", errors="replace"))
    # striprtf reads \ansicpg itself and falls back to UTF-8 on one Python lacks.
    source = _CODE_PAGE_WORD.sub(f"\\\\ansicpg{code_page}", source)
    try:
        text: str = rtf_to_text(  # type: ignore[no-untyped-call]
            source, encoding=f"cp{code_page}", errors="replace"
        )
    except (ValueError, OverflowError, LookupError, IndexError, TypeError) as exc:
        # striprtf's own failures on malformed control words: \u with a code point out of
        # range (ValueError, OverflowError), \uc without its count (TypeError).
        raise corrupt(LABEL, exc, "a control word is malformed") from exc
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _code_page(data: bytes) -> int:
    """The declared ANSI code page if Python knows it, else 1252."""
    match = _CODE_PAGE.search(data, 0, 4096)
    if match:
        try:
            codecs.lookup(f"cp{int(match.group(1))}")
            return int(match.group(1))
        except LookupError:
            logger.info("unknown RTF code page; reading as Windows-1252")
    return 1252


def _prepared(source: str) -> str:
    """The source with striprtf's slow paths defused (see the module docstring)."""
    source = _without_heavy_groups(source)
    source = _compact_font_table(source)
    source = _PARAGRAPH.sub(r"\\par\\par", source)  # a blank line between paragraphs
    return _FIELD.sub(lambda match: match.group()[:-1] + "\n{", source)


def _without_heavy_groups(source: str) -> str:
    parts: list[str] = []
    position = 0
    while match := _HEAVY.search(source, position):
        parts.append(source[position : match.start()])
        position = _group_end(source, match.start())
    parts.append(source[position:])
    return "".join(parts)


def _group_end(source: str, start: int) -> int:
    """Where the group opening at `start` closes (escaped braces and \\bin data skipped)."""
    depth = 0
    position = start
    while token := _BRACES.search(source, position):
        position = token.end()
        if token.group(1) is not None:
            position += int(token.group(1))  # \binN: N bytes of raw data follow
        elif token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                return position
    return len(source)


def _compact_font_table(source: str) -> str:
    """The font table as `{\\fN\\fcharsetM F;}` entries: all striprtf reads from it."""
    match = _FONT_TABLE.search(source)
    if match is None:
        return source
    end = _group_end(source, match.start())
    charsets: dict[str, int] = {}
    font: str | None = None
    for token in _FONT.finditer(source, match.start(), end):
        if token.group(1) is not None:
            font = token.group(1)
        elif font is not None:
            charset = int(token.group(2))
            charsets[font] = _MAC_CHARSETS.get(charset, charset)
    table = "".join(f"{{\\f{font}\\fcharset{charset} F;}}" for font, charset in charsets.items())
    return f"{source[: match.start()]}{{\\fonttbl{table}}}{source[end:]}"


def _binary_share(data: bytes) -> float:
    sample = data[: 1 << 20]
    return len(sample.translate(None, _TEXT_BYTES)) / max(1, len(sample))
