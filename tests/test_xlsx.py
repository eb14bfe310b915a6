"""Excel (.xlsx) workbooks: sheets as pages, values as displayed, row caps, bad files, pipeline.

The workbooks are generated in the test with openpyxl (formula results and text boxes patched
into the package as Excel saves them, see tests/sheet_files.py), so no binary fixture is kept.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl.chart import BarChart, Reference
from openpyxl.utils.datetime import CALENDAR_MAC_1904
from openpyxl.workbook.workbook import Workbook

from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus, JobStatus
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.mangling import assert_fails_only_cleanly, mangle
from tests.sheet_files import (
    make_big_xlsx,
    make_encrypted_xlsx,
    make_streamed_xlsx,
    make_xlsx,
    rewrite_package,
    with_cached_results,
    with_dimension,
    with_text_boxes,
)
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

MIME_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BUDGET = [
    ["Item", "Price", "Ordered", "Serial"],
    ["Widget", 1599.99, dt.datetime(2024, 3, 5), 123456789012345],
    ["Gadget", 12.5, dt.datetime(2024, 11, 20), 42],
]
FORMATS = {
    ("Budget", "B2"): '"$"#,##0.00',
    ("Budget", "B3"): '"$"#,##0.00',
    ("Budget", "C2"): "d-mmm-yy",
    ("Budget", "C3"): "mmmm d, yyyy",
}


def extract(data: bytes, mime_type: str | None = MIME_TYPE, **options: Any) -> ExtractedText:
    return extract_text(
        data, mime_type=mime_type, filename="book.xlsx", options=ExtractOptions(**options)
    )


def fails_with(data: bytes, message: str, **options: Any) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, **options)
    assert message in str(caught.value)
    return str(caught.value)


def page_text(doc: ExtractedText, number: int) -> str:
    page = doc.pages[number - 1]
    return doc.text[page.char_start : page.char_end]


def test_each_sheet_is_a_page_named_after_it_with_its_rows_as_a_table() -> None:
    doc = extract(make_xlsx({"Budget": BUDGET, "Notes": [["Owner", "Ann"]]}, formats=FORMATS))
    assert page_text(doc, 1) == (
        "Budget\n\n| Item | Price | Ordered | Serial |\n"
        "| Widget | $1,599.99 | 5-Mar-24 | 123456789012345 |\n"
        "| Gadget | $12.50 | November 20, 2024 | 42 |"
    )
    assert page_text(doc, 2) == "Notes\n\n| Owner | Ann |"
    assert [(page.number, page.name) for page in doc.pages] == [(1, "Budget"), (2, "Notes")]
    assert doc.paged and doc.unit.value == "sheet"
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Budget"), (1, "Notes")]
    # data rows are cited by the sheet's own numbers; the header row is not a data row
    assert [row.number for row in doc.rows] == [2, 3]
    assert doc.text[doc.rows[0].char_start :].startswith("| Widget |")


def test_values_show_as_the_cells_display_them() -> None:
    rows = [
        ["What", "Value"],
        ["share", 0.125],
        ["when", dt.datetime(2024, 3, 5, 14, 7)],
        ["ok", True],
        ["broken", "#DIV/0!"],
        ["euro", 1599.99],
        ["elapsed", dt.timedelta(hours=27, minutes=5)],
        ["plain", 0.1 + 0.2],
    ]
    formats = {
        ("S", "B2"): "0.0%",
        ("S", "B3"): "m/d/yyyy h:mm AM/PM",
        ("S", "B6"): "[$€-407] #,##0.00",
        ("S", "B7"): "[h]:mm",
    }
    assert extract(make_xlsx({"S": rows}, formats=formats)).text == (
        "S\n\n| What | Value |\n| share | 12.5% |\n| when | 3/5/2024 2:07 PM |\n| ok | TRUE |\n"
        "| broken | #DIV/0! |\n| euro | € 1,599.99 |\n| elapsed | 27:05 |\n| plain | 0.3 |"
    )


def test_built_in_date_formats_and_the_1904_date_system() -> None:
    def edit(workbook: Workbook) -> None:
        workbook.epoch = CALENDAR_MAC_1904
        workbook["S"]["B2"].number_format = "mm-dd-yy"  # built-in id 14: the short date
        workbook["S"]["B3"].number_format = "yyyy-mm-dd"

    rows = [["What", "Date"], ["short", dt.datetime(2024, 3, 5)], ["iso", dt.datetime(2024, 3, 5)]]
    assert extract(make_xlsx({"S": rows}, edit=edit)).text == (
        "S\n\n| What | Date |\n| short | 3/5/2024 |\n| iso | 2024-03-05 |"
    )


def test_title_rows_above_the_header_are_lines_and_single_columns_have_a_header() -> None:
    sheet = [["Quarterly budget"], [], ["Prepared by Ann"], ["Item", "Cost"], ["Pump", 40]]
    doc = extract(make_xlsx({"Report": sheet, "List": [["Name"], ["Ann"], ["Bo"]]}))
    assert page_text(doc, 1) == (
        "Report\n\nQuarterly budget\nPrepared by Ann\n\n| Item | Cost |\n| Pump | 40 |"
    )
    assert page_text(doc, 2) == "List\n\n| Name |\n| Ann |\n| Bo |"
    assert [row.number for row in doc.rows] == [1, 3, 5, 2, 3]


def test_tables_stacked_in_one_sheet_each_name_their_own_columns() -> None:
    sheet = [
        ["Region", "Revenue"],
        ["North", 1200],
        ["South", 900],
        [],
        ["Orders by customer"],
        ["Customer", "Order", "Shipped"],
        ["Acme", "A-17", dt.datetime(2024, 3, 5)],
        [],
        ["Total", 2100],  # after a gap, a row with a number continues the table
    ]
    doc = extract(make_xlsx({"Sales": sheet}, formats={("Sales", "C7"): "yyyy-mm-dd"}))
    assert page_text(doc, 1) == (
        "Sales\n\n| Region | Revenue |\n| North | 1200 |\n| South | 900 |\n\n"
        "Orders by customer\n\n| Customer | Order | Shipped |\n| Acme | A-17 | 2024-03-05 |\n"
        "| Total | 2100 |"
    )
    # the second header is no data row; the title line keeps its row number
    assert [row.number for row in doc.rows] == [2, 3, 5, 7, 9]


def test_leading_empty_columns_and_trailing_empty_cells_are_dropped() -> None:
    def edit(workbook: Workbook) -> None:
        sheet = workbook["S"]
        sheet.move_range("A1:C3", rows=1, cols=2)  # the table now starts at C2
        sheet["H9"].number_format = "0.00"  # styled, empty: part of no row

    rows = [["Item", "Cost", None], ["Pump", 40, None], ["Seal", None, None]]
    assert extract(make_xlsx({"S": rows}, edit=edit)).text == (
        "S\n\n| Item | Cost |\n| Pump | 40 |\n| Seal |"
    )


def test_every_table_block_opens_with_the_header_row() -> None:
    rows = [["Part", "Supplier", "Price"]] + [
        [f"part-{n}", f"Supplier {n % 7}", n * 1.25] for n in range(1, 121)
    ]
    doc = extract(make_xlsx({"Parts": rows}, formats={}), block_tokens=60)
    blocks = page_text(doc, 1).split("\n\n")[1:]
    assert len(blocks) > 5
    assert all(block.startswith("| Part | Supplier | Price |\n") for block in blocks)
    assert [row.number for row in doc.rows] == list(range(2, 122))
    assert sum(block.count("\n") for block in blocks) == 120


def test_formulas_show_their_saved_results_and_missing_results_are_noticed() -> None:
    rows = [["Item", "Cost"], ["Pump", 40], ["Seal", 2.5], ["Total", "=SUM(B2:B3)"]]
    data = make_xlsx({"Costs": rows}, formats={("Costs", "B4"): '"$"#,##0.00'})
    saved = extract(with_cached_results(data, {"B4": "42.5"}))
    assert saved.text.endswith("| Total | $42.50 |") and saved.notices == []
    unsaved = extract(data)
    assert unsaved.text.endswith("| Seal | 2.5 |\n| Total |")
    assert unsaved.notices == [
        "formulas in sheet 'Costs' were saved without their results, so their cells are empty "
        "(open and save the file in Excel to store them)"
    ]


def test_a_merged_value_appears_once_at_its_top_left_cell() -> None:
    def edit(workbook: Workbook) -> None:
        workbook["S"].merge_cells("B2:C3")

    rows = [["Region", "Q1", "Q2"], ["North", "flat", None], ["South", None, None]]
    assert extract(make_xlsx({"S": rows}, edit=edit)).text == (
        "S\n\n| Region | Q1 | Q2 |\n| North | flat |\n| South |"
    )


def test_text_boxes_follow_their_sheets_table_and_grouped_shapes_are_read_once() -> None:
    data = make_xlsx({"Plan": [["Step", "Owner"], ["Dig", "Ann"]], "Other": [["a", "b"]]})
    boxed = with_text_boxes(data, [["Read me first", "then the table"], ["Grouped note"]])
    doc = extract(boxed)
    assert page_text(doc, 1) == (
        "Plan\n\n| Step | Owner |\n| Dig | Ann |\n\nRead me first\nthen the table\n\nGrouped note"
    )
    assert page_text(doc, 2) == "Other\n\n| a | b |"


def test_hidden_sheets_are_read_and_chartsheets_skipped() -> None:
    def edit(workbook: Workbook) -> None:
        workbook["Lookup"].sheet_state = "hidden"
        chart = BarChart()
        chart.add_data(Reference(workbook["Main"], min_col=1, max_col=2, min_row=2, max_row=2))
        workbook.create_chartsheet("Chart").add_chart(chart)

    sheets: dict[str, list[Any]] = {"Main": [["a", "b"], [1, 2]], "Lookup": [["code", "name"]]}
    doc = extract(make_xlsx(sheets, edit=edit))
    assert [page.name for page in doc.pages] == ["Main", "Lookup"]
    assert "| code | name |" in doc.text


def test_workbook_without_values_is_rejected() -> None:
    fails_with(make_xlsx({"One": [], "Two": [[None, "", None]]}), "no text in the Excel workbook")


def test_row_cap_stops_reading_and_says_how_many_rows_were_left() -> None:
    sheets: dict[str, list[Any]] = {
        "First": [["n", "square"]] + [[n, n * n] for n in range(1, 30)],
        "Second": [["x", "y"], [1, 2]],
        "Third": [["x", "y"], [3, 4]],
    }
    doc = extract(make_xlsx(sheets), max_rows=10)
    assert [row.number for row in doc.rows] == list(range(2, 11))
    assert [page.char_start == page.char_end for page in doc.pages] == [False, True, True]
    assert doc.notices == [
        "indexed the first 10 rows; 20 more rows in sheet 'First' and sheets 'Second', 'Third' "
        "were skipped (AI_INFRA_MAX_SHEET_ROWS)"
    ]
    # the cap spans the workbook: the second sheet gets what the first left
    doc = extract(make_xlsx(sheets), max_rows=31)
    assert doc.notices == [
        "indexed the first 31 rows; 1 more row in sheet 'Second' and sheet 'Third' were skipped "
        "(AI_INFRA_MAX_SHEET_ROWS)"
    ]


def test_a_sheet_without_a_declared_size_is_cut_without_a_count() -> None:
    doc = extract(make_streamed_xlsx(3000), max_rows=100)
    assert doc.rows[-1].number == 100
    assert doc.notices == [
        "indexed the first 100 rows; the rest of sheet 'Data' was skipped (AI_INFRA_MAX_SHEET_ROWS)"
    ]


def test_a_sheet_claiming_the_whole_grid_reads_only_what_it_holds() -> None:
    data = with_dimension(make_xlsx({"S": [["a", "b"], [1, 2]]}), "A1:XFD1048576")
    doc = extract(data)
    assert doc.text == "S\n\n| a | b |\n| 1 | 2 |" and doc.notices == []


@pytest.mark.parametrize("dimension", ["A1:XFD1048576", None])
def test_a_capped_sheet_of_300000_rows_is_streamed_in_bounded_memory(
    tmp_path: Path, dimension: str | None
) -> None:
    """The peak memory of the extracting process grows by a few MiB for a sheet whose XML is
    tens of MiB, whether its dimension claims the whole grid or is missing (measured in a fresh
    process)."""
    path = tmp_path / "big.xlsx"
    path.write_bytes(make_big_xlsx(300_000, dimension=dimension))
    with zipfile.ZipFile(path) as package:
        assert package.getinfo("xl/worksheets/sheet1.xml").file_size > 40_000_000
    probe = f"""
import resource, sys
from pathlib import Path
from common.ingestion.extract import extract_text
from common.ingestion.extractors.base import ExtractOptions
from tests.sheet_files import make_xlsx
extract_text(make_xlsx({{"S": [["a", "b"]]}}), mime_type=None, filename="a.xlsx")
data = Path({str(path)!r}).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
doc = extract_text(data, mime_type=None, filename="a.xlsx", options=ExtractOptions(max_rows=2000))
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(growth, doc.rows[-1].number, doc.notices[0])
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    growth_kib, last_row, notice = result.stdout.strip().split(" ", 2)
    assert int(last_row) == 2000
    left = "1,046,576 more rows in sheet 'Data'" if dimension else "the rest of sheet 'Data'"
    assert notice.startswith(f"indexed the first 2,000 rows; {left}")
    assert int(growth_kib) < 40 * 1024


def test_workbooks_are_recognised_by_content_and_by_name() -> None:
    data = make_xlsx({"S": [["found", "here"]]})
    assert extract(data, mime_type=None).text == "S\n\n| found | here |"
    assert extract(data, mime_type="application/octet-stream").text == "S\n\n| found | here |"


def test_password_protected_and_legacy_workbooks_are_rejected() -> None:
    fails_with(
        make_encrypted_xlsx(make_xlsx({"S": BUDGET})),
        "the Excel workbook is encrypted with a password; upload an unencrypted copy",
    )
    legacy = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "Workbook".encode("utf-16-le")
    fails_with(legacy, "legacy Excel 97-2003 (.xls) or other OLE file, not .xlsx")


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_truncated_workbook_is_rejected(cut: float) -> None:
    data = make_xlsx({"Budget": BUDGET * 20})
    fails_with(data[: int(len(data) * cut)], "the Excel workbook is corrupt or truncated: ")


def test_zip_without_a_workbook_and_damaged_parts_are_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("notes.txt", "a zip, not a workbook")
    fails_with(buffer.getvalue(), "a zip package without a Excel workbook")  # detection's words
    data = make_xlsx({"S": BUDGET})
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(broken, "w") as target:
        for name in source.namelist():
            body = source.read(name)
            target.writestr(name, body[: len(body) // 2] if name.endswith("sheet1.xml") else body)
    fails_with(broken.getvalue(), "the Excel workbook is corrupt or truncated: ")
    unreadable = rewrite_package(
        data, {"xl/worksheets/sheet1.xml": lambda xml: xml.replace(b"<v>42</v>", b"<v>Secret</v>")}
    )
    message = fails_with(
        unreadable, "the Excel workbook is corrupt or truncated: damaged cell data"
    )
    assert "Secret" not in message


def test_zip_bomb_is_refused_before_it_is_inflated() -> None:
    data = make_xlsx({"S": [["x" * 1000, "y"]] * 2000})
    message = fails_with(data, "the Excel workbook unpacks to ", max_unpacked_bytes=1_000_000)
    assert message.endswith("the limit is 1000000 bytes")


def test_mangled_workbooks_fail_only_with_permanent_errors() -> None:
    """Fuzz: byte flips and cuts either extract or raise PermanentIngestionError, never leak."""
    original = with_text_boxes(
        with_cached_results(
            make_xlsx(
                {"Budget": [*BUDGET, ["Total", 0, None, "=SUM(D2:D3)"]], "More": BUDGET},
                formats=FORMATS,
            ),
            {"D4": "123456789012387"},
        ),
        [["a box"], ["a grouped box"]],
    )
    assert_fails_only_cleanly(
        lambda _, rng: mangle(original, rng, flips=30, cut=0.2),
        lambda n, data: extract(data, None if n % 2 else MIME_TYPE),
        seed=1599,
        attempts=300,
    )


def test_workbook_becomes_ready_with_chunks_citing_sheet_and_rows(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    parts = [["Part", "Supplier", "Price"]] + [
        [f"XK-{n:04d}", f"Supplier number {n % 9}", 1000 + n / 100] for n in range(1, 161)
    ]
    formats = {("Parts", f"C{n}"): '"$"#,##0.00' for n in range(2, 162)}
    data = make_xlsx({"Summary": [["Owner", "Ann"]], "Parts": parts}, formats=formats)
    blob = upload(ingestion_stack, tenant, "sheets/parts.xlsx", data, MIME_TYPE)
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.SUCCEEDED and job.notice is None
    chunks = chunks_of(document.id)
    table = [chunk for chunk in chunks if chunk.page_end == 2]
    assert len(table) > 3
    cited: list[int] = []
    for chunk in table:
        # every chunk of the table names its columns right above its rows
        assert "| Part | Supplier | Price |\n| XK-" in chunk.content
        if chunk.page_start == 2:  # the sheet's name is the heading path of its chunks
            assert chunk.context is not None and chunk.context.endswith("> Parts")
        assert chunk.location is not None
        place = re.fullmatch(r"sheet (?:Summary to sheet )?Parts, rows (\d+)-(\d+)", chunk.location)
        assert place is not None, chunk.location
        first, last = int(place[1]), int(place[2])
        # row n of the sheet holds part n - 1 (row 1 is the header)
        shown = [int(n) + 1 for n in re.findall(r"^\| XK-(\d+) \|", chunk.content, re.M)]
        assert shown == list(range(first, last + 1))
        cited += shown
    assert sorted(set(cited)) == list(range(2, 162))
    assert "| XK-0001 | Supplier number 1 | $1,000.01 |" in table[0].content
