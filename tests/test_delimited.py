"""CSV and TSV files: delimiters, quoting, row numbers, encodings, caps and malformed files."""

from __future__ import annotations

import codecs
import random
from typing import Any

import pytest

from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions
from common.ingestion.extractors.delimited import sniff_delimiter
from common.platform.errors import PermanentIngestionError

PRICES = 'Item,Price,Note\nWidget,"$1,599.99","says ""hi"""\nGadget,12.50,"two\nlines"\n'


def extract(
    data: bytes, filename: str = "prices.csv", mime_type: str | None = None, **options: Any
) -> ExtractedText:
    return extract_text(
        data, mime_type=mime_type, filename=filename, options=ExtractOptions(**options)
    )


def fails_with(data: bytes, message: str, filename: str = "prices.csv") -> None:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, filename)
    assert message in str(caught.value)


def test_records_become_table_rows_under_the_header() -> None:
    doc = extract(PRICES.encode())
    assert doc.text == (
        "| Item | Price | Note |\n"
        '| Widget | $1,599.99 | says "hi" |\n'
        "| Gadget | 12.50 | two lines |"
    )
    assert [page.number for page in doc.pages] == [1] and not doc.paged
    assert [row.number for row in doc.rows] == [2, 3]
    assert doc.text[doc.rows[1].char_start :].startswith("| Gadget |")
    assert doc.notices == []


def test_an_export_of_two_tables_gives_each_its_own_header() -> None:
    data = b"Item,Price\nWidget,$4.50\n\nWarehouse,City\nW1,Oslo\n\nW2,Bergen\n"
    assert extract(data).text == (
        "| Item | Price |\n| Widget | $4.50 |\n\n| Warehouse | City |\n| W1 | Oslo |\n"
        "| W2 | Bergen |"
    )


def test_rows_are_numbered_as_a_spreadsheet_opening_the_file_numbers_them() -> None:
    data = b"\nName,Team\n\nAnn,Red,,\n   ,  \nBo,Blue\n"
    doc = extract(data)
    assert doc.text == "| Name | Team |\n| Ann | Red |\n| Bo | Blue |"
    assert [row.number for row in doc.rows] == [4, 6]


@pytest.mark.parametrize(
    ("data", "delimiter"),
    [
        (b"Name;Price;City\nWidget;1599,99;Li\xc3\xa8ge\nGadget;12,50;Gent\n", ";"),
        (b"Name|Price\nWidget|1,599.99\nGadget|12.50\n", "|"),
        (b"Name\tPrice\nWidget\t1,599.99\nGadget\t12.50\n", "\t"),
        (b'Name,Note\nWidget,"a; b; c"\nGadget,"d; e"\n', ","),
        (b"just one column\nof words\n", ","),
    ],
)
def test_the_delimiter_is_whichever_splits_lines_most_consistently(
    data: bytes, delimiter: str
) -> None:
    assert sniff_delimiter(data.decode()) == delimiter
    doc = extract(data)
    assert doc.text.splitlines()[0].count(" | ") == data.splitlines()[0].count(delimiter.encode())


def test_european_exports_keep_decimal_commas_in_their_cells() -> None:
    data = b"Name;Price\nWidget;1599,99\nGadget;12,50\n"
    assert extract(data).text == "| Name | Price |\n| Widget | 1599,99 |\n| Gadget | 12,50 |"


def test_tsv_files_split_on_tabs_only() -> None:
    data = b"Name\tNote\nWidget\tred, blue; green\n"
    assert extract(data, "notes.tsv").text == "| Name | Note |\n| Widget | red, blue; green |"
    assert extract(data, "notes", "text/tab-separated-values").text.endswith("green |")


def test_pipes_in_cells_are_escaped_for_the_table() -> None:
    assert extract(b"a,b\nx|y,z\n").text == "| a | b |\n| x\\|y | z |"


@pytest.mark.parametrize(
    ("data", "mime_type"),
    [
        (codecs.BOM_UTF8 + "Name,City\nZoë,Liège\n".encode(), None),
        (codecs.BOM_UTF16_LE + "Name\tCity\nZoë\tLiège\n".encode("utf-16-le"), None),
        ("Name,City\nZoë,Liège\n".encode("cp1252"), None),
        ("Name,City\nZoë,Liège\n".encode("latin-1"), "text/csv; charset=ISO-8859-1"),
    ],
)
def test_encodings_are_decoded_as_for_text_files(data: bytes, mime_type: str | None) -> None:
    assert extract(data, mime_type=mime_type).text == "| Name | City |\n| Zoë | Liège |"


def test_every_table_block_opens_with_the_header() -> None:
    lines = ["Part,Supplier,Price"] + [f"part-{n},Supplier {n % 7},{n}.25" for n in range(1, 201)]
    doc = extract("\n".join(lines).encode(), block_tokens=60)
    blocks = doc.text.split("\n\n")
    assert len(blocks) > 10
    assert all(block.startswith("| Part | Supplier | Price |\n") for block in blocks)
    assert [row.number for row in doc.rows] == list(range(2, 202))


def test_row_cap_stops_reading_and_counts_the_lines_left() -> None:
    lines = ["n,square"] + [f"{n},{n * n}" for n in range(1, 101)]
    doc = extract("\n".join(lines).encode(), max_rows=10)
    assert [row.number for row in doc.rows] == list(range(2, 11))
    assert doc.notices == [
        "indexed the first 10 rows; 91 more lines of the CSV file were skipped "
        "(AI_INFRA_MAX_SHEET_ROWS)"
    ]
    assert extract(("\n".join(lines) + "\n").encode(), max_rows=100).notices == [
        "indexed the first 100 rows; 1 more line of the CSV file was skipped "
        "(AI_INFRA_MAX_SHEET_ROWS)"
    ]


def test_nul_characters_and_classic_mac_line_ends_still_read() -> None:
    doc = extract(b"name,value\nfirst\x00 row,1\n" + b"other row,2\n" * 10)
    assert doc.text.startswith("| name | value |\n| first row | 1 |\n| other row | 2 |")
    assert extract(b"a,b\r1,2\r3,4").text == "| a | b |\n| 1 | 2 |\n| 3 | 4 |"


def test_a_quote_never_closed_is_read_again_line_by_line() -> None:
    body = "".join(f"row {n},{n}\n" for n in range(20_000))
    doc = extract(f'name,value\nbad,"oops\n{body}'.encode())
    assert '| bad | "oops |' in doc.text and "| row 19999 | 19999 |" in doc.text
    assert doc.notices == [
        "the CSV file's quoting is broken (field larger than field limit (131072)); it was read "
        "line by line with its quotes kept as text"
    ]


def test_a_record_the_parser_cannot_hold_is_rejected_with_its_reason() -> None:
    fails_with(b"a,b\n" + b"x" * 200_000 + b"\n", "the CSV file could not be parsed: field larger")


def test_binary_and_empty_files_are_rejected() -> None:
    fails_with(bytes(range(256)) * 10, "binary")
    fails_with(b"\n\n , \n", "no text in the CSV file")
    fails_with(b"\t\n", "no text in the TSV file", filename="empty.tsv")


def test_mangled_csv_files_fail_only_with_permanent_errors() -> None:
    """Fuzz: byte flips, quotes and cuts either extract or raise PermanentIngestionError."""
    original = (PRICES * 30).encode()
    rng = random.Random(1599)
    for attempt in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.choice(b'",;\t|\n\r\x00\xff\xfe')
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        try:
            extract(bytes(data), "f.tsv" if attempt % 3 == 0 else "f.csv")
        except PermanentIngestionError as error:
            assert "b'" not in str(error) and "\\x" not in str(error)
