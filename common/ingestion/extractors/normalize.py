"""Text normalisation shared by every format, so chunk offsets index one canonical text.

Rules: NUL and other control characters removed (tab and newline kept as whitespace), Unicode
normalised (NFKC for PDFs, where compatibility characters are font artefacts such as ligatures;
NFC elsewhere, so authored characters like "²" survive), words broken by a hyphen at a line end
re-joined, runs of horizontal whitespace collapsed to one space, lines stripped, single line breaks
kept, and any run of blank lines reduced to one paragraph break ("\\n\\n").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

UnicodeForm = Literal["NFC", "NFKC"]

# C0/C1 controls except \t and \n (\r, \f, \v become line breaks first), plus invisible format
# characters that only break words apart: soft hyphen, zero-width space, word joiner, BOM.
_DROP = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff]")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\u0085\u2028]")
_PARAGRAPH_BREAKS = re.compile(r"[\x0c\u2029]")
_HSPACE = re.compile(r"[^\S\n]+")
# "infor-\nmation" -> "information": a letter, a hyphen (ASCII or U+2010) at the end of a line,
# and a lower-case letter starting the next line. Upper case after the break ("Jean-\nPaul")
# is ambiguous and kept as written.
_BROKEN_WORD = re.compile(r"(?<=[^\W\d_])[-\u2010]\n(?=([^\W\d_]))")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str, *, form: UnicodeForm = "NFC") -> str:
    """Return the canonical form of `text` (see the module docstring); idempotent."""
    text = _PARAGRAPH_BREAKS.sub("\n\n", _LINE_BREAKS.sub("\n", text))
    text = _DROP.sub("", text)
    text = unicodedata.normalize(form, text)
    text = _HSPACE.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BROKEN_WORD.sub(_join_broken_word, text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _join_broken_word(match: re.Match[str]) -> str:
    return "" if match.group(1).islower() else match.group(0)


def has_text(text: str) -> bool:
    """Whether `text` holds anything besides whitespace."""
    return bool(text) and not text.isspace()
