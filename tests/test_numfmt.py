"""Cell values as a spreadsheet displays them: number formats, currency, dates and times."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from common.ingestion.extractors.numfmt import BUILTIN_FORMATS, format_value, is_date_format

ACCOUNTING = '_("$"* #,##0.00_);_("$"* \\(#,##0.00\\);_("$"* "-"??_);_(@_)'
MOMENT = dt.datetime(2024, 3, 5, 14, 7, 9)


@pytest.mark.parametrize(
    ("value", "code", "shown"),
    [
        (1599.99, '"$"#,##0.00', "$1,599.99"),
        (1599.99, "[$€-407] #,##0.00", "€ 1,599.99"),
        (1599.99, "[$$-409]#,##0.00", "$1,599.99"),
        (1599.99, "#,##0.00 [$€-1]", "1,599.99 €"),
        (-1599.99, '"$"#,##0.00', "-$1,599.99"),
        (1599.99, ACCOUNTING, "$1,599.99"),
        (-1599.99, ACCOUNTING, "$(1,599.99)"),
        (0, ACCOUNTING, "$-"),
        (1599.99, 44, "$1,599.99"),
        (-5, 8, "($5.00)"),
        (1234.5, 39, "1,234.50"),
        (-1234.5, "#,##0.00_);[Red](#,##0.00)", "(1,234.50)"),
        (-1234.5, "#,##0.00;[Color 10]-#,##0.00", "-1,234.50"),
        (0, '#,##0.00;(#,##0.00);"zero"', "zero"),
        (7, "0", "7"),
        (2.5, "0", "3"),  # half away from zero, as Excel rounds
        (-2.5, "0", "-3"),
        (2.675, "0.00", "2.68"),  # 2.675 is 2.67499.. in binary; Excel keeps 15 digits
        (Decimal("1.005"), "0.00", "1.01"),
        (-0.001, "0.00", "0.00"),
        (1234567.891, "#,##0", "1,234,568"),
        (1234567.891, "#,##0.00", "1,234,567.89"),
        (5, "0000", "0005"),
        (5, "0,000", "0,005"),
        (0, "#,##0", "0"),
        (0, "#,###", ""),
        (0.5, "#.##", ".5"),
        (1, "0.0#", "1.0"),
        (1.25, "0.0#", "1.25"),
        (123456789, "000-00-0000", "123-45-6789"),
        (1234567, "#,##0,", "1,235"),
        (1234567, '0.0,,"M"', "1.2M"),
        (3.5, '0.0 "kg"', "3.5 kg"),
        (3.5, "0.0\\ \\k\\g", "3.5 kg"),
        (0.125, "0%", "13%"),
        (0.125, "0.0%", "12.5%"),
        (0.125, 10, "12.50%"),
        (12345.678, "0.00E+00", "1.23E+04"),
        (0.00012, "0.00E+00", "1.20E-04"),
        (0.00012, "0.00E-00", "1.20E-04"),
        (12345.678, "0.00E-00", "1.23E04"),
        (9.999, "0.00E+00", "1.00E+01"),
        (-12345.678, 11, "-1.23E+04"),
        (12345, "##0.0E+0", "12.3E+3"),
        (12345, "00.00E+00", "12.35E+03"),
        (0, "0.00E+00", "0.00E+00"),
        (1.25, "# ?/?", "1 1/4"),
        (0.3333, "# ??/??", "1/3"),
        (-1.75, 12, "-1 3/4"),
        (2.5, "?/?", "5/2"),
        (1.0625, "# ?/16", "1 1/16"),
        (3, "# ?/?", "3"),
        (0, "# ?/?", "0"),
        (1500, '[>=1000]#,##0,"K";0', "2K"),
        (15, '[>=1000]#,##0,"K";0', "15"),
        (5551234, "[<=9999999]###-####;(###) ###-####", "555-1234"),
        (5, "@", "5"),
        (5, ";;;", ""),
        (3.5, 'General" kg"', "3.5 kg"),
        (-3.5, "General;(General)", "(3.5)"),
        (5, "[Blue]General", "5"),
    ],
)
def test_numbers_show_as_their_format_displays_them(value: object, code: str, shown: str) -> None:
    assert format_value(value, code) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (123456789012345, "123456789012345"),
        (123456789012345.0, "123456789012345"),
        (12345678901234567890, "12345678901234567890"),
        (-42, "-42"),
        (42.0, "42"),
        (1 / 3, "0.333333333"),
        (100 / 3, "33.33333333"),
        (0.1 + 0.2, "0.3"),
        (1234.5678, "1234.5678"),
        (12345678.9123, "12345678.91"),
        (-0.5, "-0.5"),
        (0.00005, "0.00005"),
        (1.23456e-7, "1.23456E-07"),
        (1e-12, "1E-12"),
        (1e20, "1E+20"),
        (1.5e15, "1.5E+15"),
        (Decimal("2.50"), "2.5"),
        (float("nan"), "#NUM!"),
        (float("inf"), "#NUM!"),
    ],
)
def test_general_keeps_integers_exact_and_floats_to_eleven_characters(
    value: object, shown: str
) -> None:
    assert format_value(value) == shown
    assert format_value(value, "General") == shown
    assert format_value(value, 0) == shown


@pytest.mark.parametrize(
    ("value", "code", "shown"),
    [
        (MOMENT, "yyyy-mm-dd", "2024-03-05"),
        (MOMENT, "m/d/yyyy", "3/5/2024"),
        (MOMENT, "d-mmm-yy", "5-Mar-24"),
        (MOMENT, "mmmm d, yyyy", "March 5, 2024"),
        (MOMENT, "mmmmm", "M"),
        (MOMENT, "dddd, mmmm dd", "Tuesday, March 05"),
        (MOMENT, "ddd d mmm", "Tue 5 Mar"),
        (MOMENT, "h:mm", "14:07"),
        (MOMENT, "hh:mm:ss", "14:07:09"),
        (MOMENT, "h:mm:ss AM/PM", "2:07:09 PM"),
        (MOMENT, "h:mm am/pm", "2:07 pm"),
        (MOMENT, "h A/P", "2 P"),
        (MOMENT.replace(hour=0), "h:mm AM/PM", "12:07 AM"),
        (MOMENT, "yyyy-mm-dd hh:mm", "2024-03-05 14:07"),
        (MOMENT, "mm:ss", "07:09"),  # minutes before seconds, not the month
        (MOMENT, "[$-409]mmm d", "Mar 5"),
        (MOMENT, '"Due "d mmm', "Due 5 Mar"),
        (MOMENT, 14, "3/5/2024"),
        (MOMENT, 15, "5-Mar-24"),
        (MOMENT, 16, "5-Mar"),
        (MOMENT, 17, "Mar-24"),
        (MOMENT, 18, "2:07 PM"),
        (MOMENT, 19, "2:07:09 PM"),
        (MOMENT, 20, "14:07"),
        (MOMENT, 21, "14:07:09"),
        (MOMENT, 22, "3/5/2024 14:07"),
        (MOMENT.replace(microsecond=600_000), "hh:mm:ss", "14:07:10"),
        (MOMENT.replace(microsecond=650_000), "mm:ss.0", "07:09.7"),
        (MOMENT.replace(microsecond=654_321), "h:mm:ss.000", "14:07:09.654"),
        (
            dt.datetime(2024, 12, 31, 23, 59, 59, 700_000),
            "yyyy-mm-dd hh:mm:ss",
            "2025-01-01 00:00:00",
        ),
        (dt.date(2024, 3, 5), "d mmm yyyy", "5 Mar 2024"),
        (dt.time(9, 30), "h:mm AM/PM", "9:30 AM"),
        (dt.timedelta(hours=27, minutes=5), "[h]:mm", "27:05"),
        (dt.timedelta(hours=27, minutes=5, seconds=3), 46, "27:05:03"),
        (dt.timedelta(minutes=90, seconds=30), "[mm]:ss", "90:30"),
        (dt.timedelta(seconds=75), "[ss]", "75"),
    ],
)
def test_dates_and_times_show_as_their_format_displays_them(
    value: object, code: str | int, shown: str
) -> None:
    assert format_value(value, code) == shown


@pytest.mark.parametrize(
    ("serial", "code", "shown"),
    [
        (45292, "yyyy-mm-dd", "2024-01-01"),
        (45292.75, "m/d/yyyy h:mm", "1/1/2024 18:00"),
        (45292.75, 14, "1/1/2024"),
        (45292.5, "h:mm AM/PM", "12:00 PM"),
        (1, "yyyy-mm-dd", "1900-01-01"),
        (59, "yyyy-mm-dd", "1900-02-28"),
        (61, "yyyy-mm-dd", "1900-03-01"),
        (1.5, "[h]:mm", "36:00"),
        (0.25, "h:mm", "6:00"),
        (-1, "yyyy-mm-dd", "-1"),  # Excel shows ##### for dates before its epoch
        (3e6, "yyyy-mm-dd", "3000000"),
    ],
)
def test_serial_numbers_in_date_formats_are_dates_of_the_1900_system(
    serial: float, code: str | int, shown: str
) -> None:
    assert format_value(serial, code) == shown


def test_the_1904_date_system_counts_from_1904() -> None:
    assert format_value(45292, "yyyy-mm-dd", date1904=True) == "2028-01-02"
    assert format_value(0, "yyyy-mm-dd", date1904=True) == "1904-01-01"
    # an elapsed format counts from the workbook's day zero
    assert format_value(dt.datetime(1904, 1, 2, 6), "[h]", date1904=True) == "30"
    assert format_value(dt.datetime(1900, 1, 2, 6), "[h]") == "54"


def test_dates_without_a_date_format_show_as_serials_or_in_iso_form() -> None:
    assert format_value(dt.datetime(2024, 3, 5), "0.00") == "45356.00"
    assert format_value(dt.datetime(2024, 3, 5)) == "2024-03-05"
    assert format_value(dt.datetime(2024, 3, 5, 1, 2, 3)) == "2024-03-05 01:02:03"
    assert format_value(dt.date(2024, 3, 5), "@") == "2024-03-05"
    assert format_value(dt.time(9, 30)) == "09:30:00"
    assert format_value(dt.timedelta(hours=30)) == "30:00:00"
    tz = dt.timezone(dt.timedelta(hours=2))
    assert format_value(dt.datetime(2024, 3, 5, 8, tzinfo=tz), "yyyy-mm-dd hh:mm") == (
        "2024-03-05 08:00"
    )


def test_text_booleans_and_errors_show_as_they_are() -> None:
    assert format_value(None) == ""
    assert format_value(True) == "TRUE"
    assert format_value(False, "0.00") == "FALSE"
    assert format_value("#DIV/0!", "0.00") == "#DIV/0!"
    assert format_value("#N/A") == "#N/A"
    assert format_value("Widget", '0;-0;0;"Item: "@') == "Item: Widget"
    assert format_value("Widget", "@") == "Widget"
    assert format_value("Widget", '"$"#,##0.00') == "Widget"
    assert format_value("Widget", ACCOUNTING) == "Widget"


def test_date_formats_are_told_apart_from_number_formats() -> None:
    assert is_date_format("yyyy-mm-dd") and is_date_format(14) and is_date_format("[h]:mm")
    assert is_date_format("h:mm AM/PM;@")
    assert (
        not is_date_format('0.00 "days"')
        and not is_date_format("#,##0")
        and not is_date_format(None)
    )
    assert all(isinstance(code, str) for code in BUILTIN_FORMATS.values())


def test_any_format_code_renders_without_raising() -> None:
    """Fuzz: codes built from the grammar's pieces, in any order, never raise."""
    pieces = ['"x"', "\\-", "_)", "*-", "[Red]", "[>=5]", "[$€-407]", "[h]", "0", "#", "?",
              ".", ",", "%", "E+", "/", "@", "General", "y", "mm", "d", "h", "ss", "AM/PM",
              ";", " ", "(", "[", "]", '"']  # fmt: skip
    rng = random.Random(20240305)
    values: list[object] = [
        0, -1.5, 1234567.891, 1e300, -1e-300, 10**30, -(10**400), Decimal("1e999999"), "text",
        MOMENT, dt.time(1, 2), dt.timedelta(days=-2), dt.date(1, 1, 1), dt.datetime.max,
    ]  # fmt: skip
    for _ in range(3000):
        code = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for value in values:
            assert isinstance(format_value(value, code), str)
