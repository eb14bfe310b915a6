"""A cell value as a spreadsheet displays it, from the value and its number-format code.

Spreadsheets store 1599.99 and a format `"$"#,##0.00`; a reader sees `$1,599.99` and asks for
that, so sheets are indexed as displayed. The ECMA-376 (18.8.31) grammar is covered as Excel's
en-US display renders it: sections `positive;negative;zero;text` and `[>=1000]` conditions,
digit placeholders `0 # ?`, grouping and scaling commas, `%`, `E+00`, fractions (`# ?/?`, `?/16`),
quoted and escaped literals, `[$€-407]` currency symbols, `@`, and dates and times (`yyyy`,
`mmm`, `dddd`, `h:mm AM/PM`, `ss.00`, elapsed `[h]:mm`) from `datetime`, `date`, `time`,
`timedelta` values or serial numbers (1900 or 1904 date system). Colours, `_x` padding and `*x`
fills only affect layout and are dropped. General keeps integers exact (123456789012345, where
Excel's narrow columns show 1.23457E+14) and shows other numbers to 11 characters as Excel does.
Pure functions; parsed formats are cached.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
import re
from dataclasses import dataclass
from decimal import MAX_PREC, ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from typing import NamedTuple

__all__ = ["BUILTIN_FORMATS", "format_value", "is_date_format"]

# Built-in format ids (ECMA-376 18.8.30) as Excel displays them in en-US; 14 and 22 follow the
# system's short date, which is m/d/yyyy there.
BUILTIN_FORMATS: dict[int, str] = {
    0: "General", 1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00",
    5: '"$"#,##0_);("$"#,##0)', 6: '"$"#,##0_);[Red]("$"#,##0)',
    7: '"$"#,##0.00_);("$"#,##0.00)', 8: '"$"#,##0.00_);[Red]("$"#,##0.00)',
    9: "0%", 10: "0.00%", 11: "0.00E+00", 12: "# ?/?", 13: "# ??/??",
    14: "m/d/yyyy", 15: "d-mmm-yy", 16: "d-mmm", 17: "mmm-yy", 18: "h:mm AM/PM",
    19: "h:mm:ss AM/PM", 20: "h:mm", 21: "h:mm:ss", 22: "m/d/yyyy h:mm",
    37: "#,##0_);(#,##0)", 38: "#,##0_);[Red](#,##0)", 39: "#,##0.00_);(#,##0.00)",
    40: "#,##0.00_);[Red](#,##0.00)",
    41: '_(* #,##0_);_(* \\(#,##0\\);_(* "-"_);_(@_)',
    42: '_("$"* #,##0_);_("$"* \\(#,##0\\);_("$"* "-"_);_(@_)',
    43: '_(* #,##0.00_);_(* \\(#,##0.00\\);_(* "-"??_);_(@_)',
    44: '_("$"* #,##0.00_);_("$"* \\(#,##0.00\\);_("$"* "-"??_);_(@_)',
    45: "mm:ss", 46: "[h]:mm:ss", 47: "mm:ss.0", 48: "##0.0E+0", 49: "@",
}  # fmt: skip
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CONDITION = re.compile(r"(<=|>=|<>|<|>|=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_ELAPSED = re.compile(r"(?i)(h+|m+|s+)")
# One token of a format code; `layout` is `_x` padding or a `*x` fill, which change no text.
_TOKEN = re.compile(
    r'"(?P<quoted>[^"]*)"?|\\(?P<escaped>.)|(?P<layout>[_*].)|\[(?P<bracket>[^\]]*)\]?'
    r"|(?P<semicolon>;)|(?P<ampm>am/pm|a/p)|(?P<general>general)|(?P<exp>e[-+])"
    r"|(?P<date>y+|m+|d+|h+|s+)|(?P<char>.)",
    re.IGNORECASE | re.DOTALL,
)
_MAX_SERIAL = 2958466  # 10000-01-01: Excel shows ##### past 9999-12-31
_DECIMAL = Context(prec=MAX_PREC, rounding=ROUND_HALF_UP)  # rounding only, never inexact
_EPOCH_1900 = dt.datetime(1899, 12, 30)
_EPOCH_1904 = dt.datetime(1904, 1, 1)
_LEAP_BUG_END = dt.datetime(1900, 3, 1)  # Excel counts a 1900-02-29, so earlier serials shift

# Token kinds: literal text, digit placeholder, '.', ',', '%', exponent, '/', '@', General,
# date/time part, AM/PM, elapsed [h]/[m]/[s], fractional seconds.
LIT, DIGIT, POINT, COMMA, PERCENT, EXP, SLASH, AT, GENERAL = range(9)
DATE, AMPM, ELAPSED, SUBSEC = range(9, 13)
_DATE_KINDS = (DATE, AMPM, ELAPSED)
_CHARS = dict(zip("0#?.,%/@", (DIGIT, DIGIT, DIGIT, POINT, COMMA, PERCENT, SLASH, AT), strict=True))
Token = tuple[int, str]


@dataclass(frozen=True)
class _Section:
    tokens: tuple[Token, ...]
    kind: str  # "number", "date", "general", "text" or "literal"
    condition: tuple[str, float] | None = None


def format_value(
    value: object, number_format: str | int | None = None, *, date1904: bool = False
) -> str:
    """`value` (None, bool, str, int, float, Decimal, datetime, date, time, timedelta) as a
    cell formatted with `number_format` (a code or a built-in id) shows it."""
    if value is None:
        return ""
    if type(value) is int and number_format in (None, 0, "General"):
        return str(value)  # the commonest cell, spared the parse
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    sections = _parse(_code(number_format))
    if isinstance(value, str):
        text = next((s for s in sections if s.kind == "text"), None)
        return value if text is None else _render_text(text, value)
    if isinstance(value, Decimal) and not -308 < value.adjusted() < 308:
        value = float(value)  # beyond a spreadsheet's doubles: as a double shows it
    if isinstance(value, int | float | Decimal):
        return _format_number(value, sections, date1904)
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return _format_moment(value, sections, date1904)
    return str(value)


def is_date_format(number_format: str | int | None) -> bool:
    """Whether numbers in this format display as dates or times (its first section)."""
    sections = _parse(_code(number_format))
    return bool(sections) and sections[0].kind == "date"


def _code(number_format: str | int | None) -> str:
    if number_format is None:
        return "General"
    if isinstance(number_format, int):
        return BUILTIN_FORMATS.get(number_format, "General")
    return number_format


# --- parsing ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _parse(code: str) -> tuple[_Section, ...]:
    """The format's sections (at most four), each classified."""
    sections: list[_Section] = []
    tokens: list[Token] = []
    condition: tuple[str, float] | None = None
    for match in _TOKEN.finditer(code):
        group, text = match.lastgroup, match[match.lastgroup or 0]
        if group == "semicolon":
            sections.append(_classify(tokens, condition))
            tokens, condition = [], None
        elif group in ("quoted", "escaped"):
            tokens.append((LIT, text))
        elif group == "bracket":
            if (found := _CONDITION.fullmatch(text.strip())) is not None:
                condition = (found[1], float(found[2]))
            elif _ELAPSED.fullmatch(text):
                tokens.append((ELAPSED, text.lower()))
            elif text.startswith("$"):  # [$€-407]: currency symbol, then locale
                tokens.append((LIT, text[1:].split("-", 1)[0]))
            # colours, [DBNum1], [$-409] locales and the like do not change the text
        elif group == "date":
            tokens.append((DATE, text.lower()))
        elif group == "char":
            tokens.append((_CHARS.get(text, LIT), text))
        elif group is not None and group != "layout":
            tokens.append(({"ampm": AMPM, "general": GENERAL, "exp": EXP}[group], text))
    sections.append(_classify(tokens, condition))
    return tuple(sections[:4])


def _classify(tokens: list[Token], condition: tuple[str, float] | None) -> _Section:
    kinds = {kind for kind, _ in tokens}
    if kinds & set(_DATE_KINDS):
        return _Section(_date_tokens(tokens), "date", condition)
    if GENERAL in kinds:
        return _Section(tuple(tokens), "general", condition)
    if DIGIT in kinds:
        return _Section(tuple(tokens), "number", condition)
    if AT in kinds:
        return _Section(tuple(tokens), "text", condition)
    return _Section(tuple(tokens), "literal", condition)


def _date_tokens(tokens: list[Token]) -> tuple[Token, ...]:
    """Tells minutes from months (m after an hour or before a second is a minute), marks
    fractional seconds, and turns number tokens into literals."""
    out: list[Token] = []
    for index, token in enumerate(tokens):
        kind, text = token
        if kind == DATE and text in ("m", "mm"):
            before = next((t for k, t in reversed(out) if k in (DATE, ELAPSED)), "")
            after = next((t for k, t in tokens[index + 1 :] if k in (DATE, ELAPSED)), "")
            if before.startswith(("h", "[h")) or after.startswith("s"):
                text = "n" * len(text)  # minutes
        elif kind == POINT and out and out[-1][0] == DATE and out[-1][1].startswith("s"):
            digits = 0
            while tokens[index + 1 + digits : index + 2 + digits] == [(DIGIT, "0")]:
                digits += 1
            if digits:
                out.append((SUBSEC, "0" * digits))
                continue
        elif kind == DIGIT and out and out[-1][0] == SUBSEC:
            continue  # consumed by the fractional seconds
        if kind not in (DATE, AMPM, ELAPSED, LIT):
            kind = LIT
        out.append((kind, text))
    return tuple(out)


# --- numbers ------------------------------------------------------------------------------


def _format_number(
    value: int | float | Decimal, sections: tuple[_Section, ...], d1904: bool
) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "#NUM!"
    section, signed = _choose(sections, value)
    if section is None or section.kind == "general":
        text = _general(value if signed or value >= 0 else -value)
        return text if section is None else _with_literals(section, text)
    if section.kind == "literal":
        return _literals(section.tokens)
    if section.kind == "date":
        moment = _from_serial(value, d1904)
        return _general(value) if moment is None else _render_date(section, *moment)
    return _render_number(section, value if signed or value >= 0 else -value)


def _choose(sections: tuple[_Section, ...], value: float | Decimal) -> tuple[_Section | None, bool]:
    """The section for a number, and whether it shows the sign itself (see the module doc)."""
    numeric = [s for s in sections[:3] if s.kind != "text"]
    if not numeric:
        return None, True
    if any(s.condition for s in numeric[:2]):
        for section in numeric:
            if section.condition is None or _holds(section.condition, value):
                return section, True
        return None, True
    if value < 0 and len(numeric) > 1:
        return numeric[1], False
    if value == 0 and len(numeric) > 2:
        return numeric[2], True
    return numeric[0], True


def _holds(condition: tuple[str, float], value: float | Decimal) -> bool:
    op, limit = condition
    if isinstance(value, Decimal):
        value = float(value)  # a Decimal too big for a float is infinite
    return {
        "<": value < limit, ">": value > limit, "=": value == limit,
        "<=": value <= limit, ">=": value >= limit, "<>": value != limit,
    }[op]  # fmt: skip


def _decimal(value: int | float | Decimal) -> Decimal:
    """Exact for integers; floats to the 15 significant digits a spreadsheet keeps."""
    if isinstance(value, float):
        return Decimal(f"{value:.15g}")
    return Decimal(value)


def _round(number: Decimal, places: int) -> Decimal:
    return number.quantize(Decimal(1).scaleb(-places), context=_DECIMAL)


def _plain(number: Decimal) -> str:
    """Fixed notation without trailing zeros."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _general(value: int | float | Decimal) -> str:
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) < 1e15
    ):
        return str(int(value))
    number = _decimal(value)
    size = abs(number)
    if size >= Decimal("1e15") or (0 < size < Decimal("1e-9")):
        return _scientific_general(number)
    whole = len(str(int(size))) if size >= 1 else 1
    fixed = _plain(_round(number, max(0, 10 - whole) if size >= 1 else 9))
    if 0 < size < Decimal("1e-4") and len(fixed.replace("-", "").lstrip("0.")) < min(
        6, len(number.as_tuple().digits)
    ):
        return _scientific_general(number)
    return "0" if fixed in ("-0", "") else fixed


def _scientific_general(number: Decimal) -> str:
    exponent = number.adjusted()
    mantissa = _round(number.scaleb(-exponent), 5)
    if abs(mantissa) >= 10:
        exponent, mantissa = exponent + 1, _round(mantissa.scaleb(-1), 5)
    sign = "-" if exponent < 0 else "+"
    return f"{_plain(mantissa)}E{sign}{abs(exponent):02d}"


def _with_literals(section: _Section, text: str) -> str:
    return "".join(
        text if kind == GENERAL else value
        for kind, value in section.tokens
        if kind in (LIT, GENERAL)
    )


def _literals(tokens: tuple[Token, ...]) -> str:
    return "".join(text for kind, text in tokens if kind == LIT)


class _Layout(NamedTuple):
    """Where a number section's parts are (computed once per format)."""

    static: tuple[str, ...]  # each token's text when it is not a digit slot
    int_slots: tuple[int, ...]
    dec_slots: tuple[int, ...]
    exp_slots: tuple[int, ...]
    exp: int | None
    percent: int
    scale: int  # thousands divided away by trailing commas
    grouped: bool
    engineering: bool


@functools.cache
def _layout(tokens: tuple[Token, ...]) -> _Layout:
    kinds = [kind for kind, _ in tokens]
    digit_at = [i for i, kind in enumerate(kinds) if kind == DIGIT]
    exp = kinds.index(EXP) if EXP in kinds else len(tokens)
    point = min(kinds.index(POINT) if POINT in kinds else len(tokens), exp)
    int_slots = tuple(i for i in digit_at if i < point)
    # Commas: between integer digits they group; after the last digit before the exponent
    # they divide by 1000 each; before any digit they are literal.
    mantissa_end = max((i for i in digit_at if i < exp), default=digit_at[0])
    static = tuple(
        text if kind in (LIT, PERCENT, POINT) or (kind == COMMA and i < digit_at[0]) else ""
        for i, (kind, text) in enumerate(tokens)
    )
    return _Layout(
        static=static,
        int_slots=int_slots,
        dec_slots=tuple(i for i in digit_at if point < i < exp),
        exp_slots=tuple(i for i in digit_at if i > exp),
        exp=exp if exp < len(tokens) else None,
        percent=kinds.count(PERCENT),
        scale=kinds[mantissa_end + 1 : exp].count(COMMA),
        grouped=bool(int_slots) and COMMA in kinds[int_slots[0] : int_slots[-1]],
        engineering=len(int_slots) > 1 and any(tokens[i][1] != "0" for i in int_slots),
    )


def _render_number(section: _Section, value: int | float | Decimal) -> str:
    tokens = section.tokens
    if any(kind == SLASH for kind, _ in tokens):
        return _render_fraction(tokens, value)
    layout = _layout(tokens)
    number = _decimal(value)
    if layout.percent or layout.scale:
        number = (number * 100**layout.percent).scaleb(-3 * layout.scale)
    out = list(layout.static)
    if layout.exp is not None:
        number, exponent = _exponent(
            number, len(layout.int_slots), len(layout.dec_slots), layout.engineering
        )
        marker = tokens[layout.exp][1]
        zeros = sum(1 for i in layout.exp_slots if tokens[i][1] == "0")
        _fill_left(out, layout.exp_slots, tokens, str(abs(exponent)).zfill(zeros))
        out[layout.exp] = marker[0] + ("-" if exponent < 0 else "+" if marker[1] == "+" else "")
    number = _round(number, len(layout.dec_slots))
    sign = ""
    if number.is_signed():
        sign, number = "-", number.copy_abs()
    whole, _, fraction = format(number, "f").partition(".")
    _fill_left(out, layout.int_slots, tokens, "" if whole == "0" else whole, layout.grouped)
    _fill_right(out, layout.dec_slots, tokens, fraction)
    text = "".join(out).strip()
    return sign + text if sign and any(c in "123456789" for c in text) else text


def _exponent(number: Decimal, width: int, places: int, engineering: bool) -> tuple[Decimal, int]:
    """Mantissa and exponent: `width` integer digits, or with `##0.0E+0` a multiple of the
    placeholder count as exponent (engineering notation)."""
    if number == 0:
        return number, 0
    width = max(1, width)
    step = width if engineering else 1
    exponent = (
        (number.adjusted() // width) * width if engineering else number.adjusted() - (width - 1)
    )
    mantissa = _round(number.scaleb(-exponent), places)
    if abs(mantissa) >= Decimal(10) ** width:  # 9.99 rounded up to 10.0
        exponent += step
        mantissa = _round(number.scaleb(-exponent), places)
    return mantissa, exponent


_EMPTY_DIGIT = {"0": "0", "#": "", "?": " "}


def _fill_left(
    out: list[str],
    slots: tuple[int, ...],
    tokens: tuple[Token, ...],
    digits: str,
    grouped: bool = False,
) -> None:
    """Integer digits into their placeholders right to left; extra digits go to the first."""
    if not slots:
        return
    if grouped:
        zeros = next((len(slots) - n for n, i in enumerate(slots) if tokens[i][1] == "0"), 0)
        padded = digits.zfill(zeros)
        head = len(padded) % 3 or 3
        groups = [padded[:head]] + [padded[i : i + 3] for i in range(head, len(padded), 3)]
        out[slots[0]] = ",".join(groups) if padded else ""
        return
    rest = digits
    for i in reversed(slots[1:]):
        out[i], rest = (rest[-1], rest[:-1]) if rest else (_EMPTY_DIGIT[tokens[i][1]], "")
    out[slots[0]] = rest or _EMPTY_DIGIT[tokens[slots[0]][1]]


def _fill_right(
    out: list[str], slots: tuple[int, ...], tokens: tuple[Token, ...], fraction: str
) -> None:
    """Decimal digits left to right; trailing zeros vanish under # and blank under ?."""
    for i, digit in zip(slots, fraction, strict=False):
        out[i] = digit
    for i in reversed(slots):
        if tokens[i][1] == "0" or out[i] != "0":
            break
        out[i] = _EMPTY_DIGIT[tokens[i][1]]


def _render_fraction(tokens: tuple[Token, ...], value: int | float | Decimal) -> str:
    kinds = [kind for kind, _ in tokens]
    slash = kinds.index(SLASH)
    den_end = slash + 1
    while den_end < len(tokens) and (kinds[den_end] == DIGIT or tokens[den_end][1].isdigit()):
        den_end += 1
    den_text = "".join(text for _, text in tokens[slash + 1 : den_end])
    num_start = slash
    while num_start > 0 and kinds[num_start - 1] == DIGIT:
        num_start -= 1
    int_slots = [i for i in range(num_start) if kinds[i] == DIGIT]
    if not den_text or num_start == slash:
        return _general(value)
    sign = "-" if value < 0 else ""
    size = Fraction(abs(_decimal(value)))
    whole = int(size) if int_slots else 0
    part = size - whole
    if den_text.strip("0#?"):  # a fixed denominator such as /16
        den = int(den_text.replace("#", "0").replace("?", "0"))
        num = round(part * den)
    else:
        best = part.limit_denominator(10 ** len(den_text) - 1)
        num, den = best.numerator, best.denominator
    if int_slots and num == den:
        whole, num = whole + 1, 0
    head = _literals(tokens[: int_slots[0]]) if int_slots else _literals(tokens[:num_start])
    tail = _literals(tokens[den_end:])
    pieces = []
    if int_slots and (whole or num == 0):
        pieces.append(str(whole))
    if num or not int_slots:
        pieces.append(f"{num}/{den}")
    body = " ".join(pieces) if pieces else "0"
    return f"{sign if body != '0' else ''}{head}{body}{tail}".strip()


def _render_text(section: _Section, value: str) -> str:
    return "".join(
        value if kind == AT else text for kind, text in section.tokens if kind in (LIT, AT)
    )


# --- dates and times ----------------------------------------------------------------------

Moment = dt.datetime | dt.date | dt.time | dt.timedelta


def _format_moment(value: Moment, sections: tuple[_Section, ...], d1904: bool) -> str:
    """A date or time value: in its date section, else as a serial number where the format is
    numeric, else in ISO form (a typed date cell with the General format)."""
    elapsed = _elapsed(value, d1904)
    serial = elapsed / dt.timedelta(days=1)
    section, signed = _choose(sections, serial)
    if section is not None and section.kind == "date":
        return _render_date(section, _wall_clock(value, elapsed, d1904), elapsed)
    if section is not None and section.kind == "number":
        return _render_number(section, serial if signed else abs(serial))
    if section is not None and section.kind == "literal":
        return _literals(section.tokens)
    if isinstance(value, dt.timedelta):
        return _render_date(_parse("[h]:mm:ss")[0], _wall_clock(value, elapsed, d1904), elapsed)
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.datetime) and value.time() != dt.time():
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    return value.strftime("%Y-%m-%d")


def _elapsed(value: Moment, d1904: bool) -> dt.timedelta:
    """The value as time since the date system's day zero (its serial number)."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, dt.time):
        return dt.datetime.combine(dt.date.min, value) - dt.datetime.min
    moment = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    moment = moment.replace(tzinfo=None)
    if d1904:
        return moment - _EPOCH_1904
    return moment - (_EPOCH_1900 if moment >= _LEAP_BUG_END else _EPOCH_1900 + dt.timedelta(days=1))


def _wall_clock(value: Moment, elapsed: dt.timedelta, d1904: bool) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    base = _EPOCH_1904 if d1904 else _EPOCH_1900 + dt.timedelta(days=1)  # serial 0: day "0"
    return base + elapsed


def _from_serial(
    serial: int | float | Decimal, d1904: bool
) -> tuple[dt.datetime, dt.timedelta] | None:
    """The date and time of a serial number; None past 9999-12-31 (Excel shows #####)."""
    if not 0 <= serial < _MAX_SERIAL:
        return None
    serial = float(serial)
    elapsed = dt.timedelta(microseconds=round(serial * 86_400_000_000))
    base = _EPOCH_1904 if d1904 else _EPOCH_1900 + dt.timedelta(days=0 if serial >= 61 else 1)
    if elapsed > dt.datetime.max - base:
        return None
    return base + elapsed, elapsed


def _render_date(section: _Section, moment: dt.datetime, elapsed: dt.timedelta) -> str:
    places = max((len(text) for kind, text in section.tokens if kind == SUBSEC), default=0)
    step = 10 ** (6 - min(places, 6))
    micro = elapsed.microseconds
    rounding = dt.timedelta(microseconds=(micro + step // 2) // step * step - micro)
    with contextlib.suppress(OverflowError):  # 9999-12-31 23:59:59.9 stays as it is
        moment += rounding
    elapsed += rounding
    twelve = any(kind == AMPM for kind, _ in section.tokens)
    return "".join(_date_part(kind, text, moment, elapsed, twelve) for kind, text in section.tokens)


def _date_part(
    kind: int, text: str, moment: dt.datetime, elapsed: dt.timedelta, twelve: bool
) -> str:
    if kind == LIT:
        return text
    if kind == AMPM:  # in the case written: AM/PM, am/pm, A/P
        am = moment.hour < 12
        if len(text) == 5:
            return text[:2] if am else text[3:]
        return text[0] if am else text[2]
    if kind == SUBSEC:
        return "." + f"{moment.microsecond:06d}"[: len(text)]
    if kind == ELAPSED:
        seconds = int(elapsed.total_seconds() // 1)
        amount = {"h": seconds // 3600, "m": seconds // 60, "s": seconds}[text[0]]
        return str(amount).zfill(len(text))
    letter, size = text[0], len(text)
    if letter == "y":
        return f"{moment.year % 100:02d}" if size <= 2 else f"{moment.year:04d}"
    if letter == "m":
        name = _MONTHS[moment.month - 1]
        return [str(moment.month), f"{moment.month:02d}", name[:3], name, name[0]][min(size, 5) - 1]
    if letter == "d":
        name = _DAYS[moment.weekday()]
        return [str(moment.day), f"{moment.day:02d}", name[:3], name][min(size, 4) - 1]
    if letter == "h":
        hour = (moment.hour % 12 or 12) if twelve else moment.hour
        return f"{hour:02d}" if size > 1 else str(hour)
    if letter == "n":
        return f"{moment.minute:02d}" if size > 1 else str(moment.minute)
    return f"{moment.second:02d}" if size > 1 else str(moment.second)
