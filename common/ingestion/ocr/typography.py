"""Latin typography the Chinese/English recogniser folds or confuses, restored in its output.

The PP-OCR model rapidocr ships reads Chinese and English. In a line of Latin text it
- writes the CJK forms of some punctuation (angle brackets, fullwidth forms): the same glyphs;
- reads typographic quotes as straight ones (U+2019 as ', U+201C as "), though typeset text (Word,
  LaTeX, a printed contract) sets them curly: the direction follows from the neighbours, as a
  typesetter's "smart quotes" decide it;
- reads one bracket of a pair ⟨name⟩ as a parenthesis or a "greater than" sign; a pair with one
  unmistakable angle bracket is an angle pair;
- reads "O" as "0" after capitals (`\\ES0@Hook` for `\\ESO@Hook`): a zero between two capitals
  and a letter (or `@`, `_`) inside one name is the letter; at a name's end it is a number
  (`UART0`).
So a scanned page reads like the text layer of the same page (bench/formats.py measures it).
Lines holding CJK text keep every form as read: there they belong. A scan whose original
sets straight quotes (a code listing) gets curly ones: the cost of the rule.
"""

from __future__ import annotations

import re
import unicodedata

_CJK_ANGLES = str.maketrans({"\u3008": "\u27e8", "\u3009": "\u27e9"})
# A quote opens at the start of a box or after a space, an opening bracket or a dash.
_OPENING = r"(?:^|(?<=[\s(\[{<⟨—–-]))"
_OPEN_SINGLE = re.compile(_OPENING + "'")
_OPEN_DOUBLE = re.compile(_OPENING + '"')
# The shortest bracketed span without brackets inside, on one line.
_BRACKET_PAIR = re.compile(r"([(⟨<])([^()⟨⟩<>\n]{1,40}?)([)⟩>])")
_ZERO_AFTER_CAPITALS = re.compile(r"(?<=[A-Z]{2})0(?=[A-Za-z@_])")


def latin_typography(text: str) -> str:
    """One recognised box of text with its Latin forms restored (see the module docstring)."""
    if any(_is_cjk(char) for char in text):
        return text
    text = unicodedata.normalize("NFKC", text.translate(_CJK_ANGLES))
    text = _OPEN_SINGLE.sub("‘", text).replace("'", "’")
    text = _OPEN_DOUBLE.sub("“", text).replace('"', "”")
    text = _BRACKET_PAIR.sub(_angle_pair, text)
    return _ZERO_AFTER_CAPITALS.sub("O", text)


def _angle_pair(match: re.Match[str]) -> str:
    opening, inside, closing = match.groups()
    if opening == "⟨" or closing == "⟩":
        return f"⟨{inside}⟩"
    return match.group(0)


def _is_cjk(char: str) -> bool:
    point = ord(char)
    return (
        0x3040 <= point <= 0x30FF  # kana
        or 0x3400 <= point <= 0x4DBF
        or 0x4E00 <= point <= 0x9FFF  # ideographs
        or 0xAC00 <= point <= 0xD7AF  # hangul
        or 0xF900 <= point <= 0xFAFF
        or 0x20000 <= point <= 0x2FA1F
    )
