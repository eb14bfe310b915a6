"""OpenDocument text, presentations and spreadsheets: reading order, headings, notes, sheets as
pages cited by row, streaming of padded sheets, every bad-file message, and the real pipeline.

The files are generated in the test with odfpy (tests/odf_files.py); an encrypted file is made by
hand (odfpy cannot encrypt): its manifest declares encryption-data for scrambled content.xml.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Sequence
from typing import Any

import pytest
from odf.draw import Frame, TextBox
from odf.office import Annotation
from odf.table import CoveredTableCell, TableCell, TableRow
from odf.text import (
    H,
    LineBreak,
    List,
    ListItem,
    Note,
    NoteBody,
    NoteCitation,
    P,
    S,
    Section,
    Span,
    Tab,
    TableOfContent,
)

from common.ingestion.chunking import chunk_text
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions
from common.ingestion.extractors.odf_content import MAX_COLUMNS
from common.ingestion.locations import with_locations
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus, JobStatus
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.mangling import assert_fails_only_cleanly, mangle
from tests.odf_files import (
    Row,
    cell,
    encrypted_copy,
    make_odp,
    make_ods,
    make_odt,
    table,
    text_frame,
)
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

ODT = "application/vnd.oasis.opendocument.text"
ODP = "application/vnd.oasis.opendocument.presentation"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
NAMES = {ODT: "a.odt", ODP: "a.odp", ODS: "a.ods"}


class WordCounter:
    def count_tokens(self, text: str) -> int:
        return len(text.split())


def extract(data: bytes, mime_type: str | None = ODT, **limits: Any) -> ExtractedText:
    filename = NAMES.get(mime_type or "", "upload.bin")
    return extract_text(
        data, mime_type=mime_type, filename=filename, options=ExtractOptions(**limits)
    )


def fails_with(data: bytes, message: str, mime_type: str = ODT, **limits: int) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, mime_type, **limits)
    assert message in str(caught.value)
    return str(caught.value)


def page_texts(doc: ExtractedText) -> list[str]:
    return [doc.text[page.char_start : page.char_end] for page in doc.pages]


def footnote(before: str, label: str, body: str, after: str) -> P:
    paragraph = P(text=before)
    note = Note(noteclass="footnote", id=f"ftn{label}")
    note.addElement(NoteCitation(text=label))
    note_body = NoteBody()
    note_body.addElement(P(text=body))
    note.addElement(note_body)
    paragraph.addElement(note)
    paragraph.addText(after)
    return paragraph


def bullet_list(*items: str | List) -> List:
    element = List()
    for item in items:
        entry = ListItem()
        entry.addElement(P(text=item) if isinstance(item, str) else item)
        element.addElement(entry)
    return element


def manual() -> bytes:
    spaced = P(text="Mount the")
    spaced.addElement(S(c=3))
    spaced.addElement(Span(text="blue pump"))
    spaced.addElement(Tab())
    spaced.addText("on a level floor.")
    spaced.addElement(LineBreak())
    spaced.addText("Then bleed it.")
    anchored = P(text="See the box.")
    frame = Frame(anchortype="paragraph", width="5cm", height="2cm")
    box = TextBox()
    box.addElement(P(text="Boxed warning: hot surface"))
    frame.addElement(box)
    anchored.addElement(frame)
    commented = P(text="Torque the bolts")
    comment = Annotation()
    comment.addElement(P(text="reviewer comment"))
    commented.addElement(comment)
    commented.addText(" to spec.")
    section = Section(name="Service")
    section.addElement(H(outlinelevel=2, text="Service"))
    section.addElement(footnote("Replace the seal every 500 hours", "1", "Or yearly.", "."))
    return make_odt(
        H(outlinelevel=1, text="Installation"),
        spaced,
        bullet_list("Unpack", bullet_list("Check the seal"), "Mount"),
        table([["Part", "Torque"], ["XK-4471B", "40 Nm"], ["Seal kit", "12 Nm"]]),
        anchored,
        commented,
        section,
    )


MANUAL_TEXT = (
    "Installation\n\n"
    "Mount the blue pump on a level floor.\nThen bleed it.\n\n"
    "- Unpack\n- Check the seal\n- Mount\n\n"
    "| Part | Torque |\n| XK-4471B | 40 Nm |\n| Seal kit | 12 Nm |\n\n"
    "See the box.\n\nBoxed warning: hot surface\n\n"
    "Torque the bolts to spec.\n\n"
    "Service\n\nReplace the seal every 500 hours[1].\n\n[1] Or yearly."
)


def test_text_document_reads_headings_lists_tables_frames_and_notes_in_order() -> None:
    doc = extract(manual())
    assert doc.text == MANUAL_TEXT
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Installation"), (2, "Service")]
    for heading in doc.headings:
        assert doc.text.startswith(heading.title, heading.char_start)
    assert not doc.paged and len(doc.pages) == 1
    assert [row.number for row in doc.rows] == [2, 3]


def test_tables_of_contents_are_left_out_and_merged_cells_read_once() -> None:
    contents = TableOfContent(name="toc")
    merged = table([["a", "b"]])
    row = TableRow()
    row.addElement(TableCell(numbercolumnsspanned=2))
    row.childNodes[0].addElement(P(text="wide"))
    row.addElement(CoveredTableCell())
    merged.addElement(row)
    doc = extract(make_odt(contents, H(outlinelevel=1, text="Body"), merged))
    assert doc.text == "Body\n\n| a | b |\n| wide | |"


def test_each_slide_is_a_page_with_its_title_as_heading_then_frames_then_notes() -> None:
    data = make_odp(
        [
            ("Quarterly pump review", [text_frame(["Prepared by field service"])], "Welcome."),
            (None, [text_frame(["Untitled slide body", "second line"])], None),
            ("Failure counts", [_frame_with(table([["Part", "Failures"], ["XK-4471B", "17"]]))],
             "Ask about the copper valve."),
        ]
    )  # fmt: skip
    doc = extract(data, ODP)
    assert page_texts(doc) == [
        "Quarterly pump review\n\nPrepared by field service\n\nNotes:\nWelcome.",
        "Untitled slide body\n\nsecond line",
        "Failure counts\n\n| Part | Failures |\n| XK-4471B | 17 |\n\n"
        "Notes:\nAsk about the copper valve.",
    ]
    assert doc.unit.value == "slide" and doc.paged
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "Quarterly pump review"),
        (1, "Failure counts"),
    ]
    chunks = with_locations(
        chunk_text(doc, max_tokens=12, overlap_tokens=0, tokenizer=WordCounter()), doc
    )
    [rows] = [chunk for chunk in chunks if "| XK-4471B | 17 |" in chunk.content]
    assert rows.location == "slide 3, row 2"
    [notes] = [chunk for chunk in chunks if "Welcome." in chunk.content]
    assert notes.location == "slide 1"


def _frame_with(element: object) -> Frame:
    frame = Frame(width="10cm", height="4cm")
    frame.addElement(element)
    return frame


BUDGET: dict[str, Sequence[Row]] = {
    "Budget": [
        2,  # two empty rows before the header
        ["Item", "Price", None, "Note"],
        ["Widget", "$1,599.99", None, "blue"],
        3,
        ["Gadget", "$2.50"],
        ["Gizmo", "12/31/2024", None, "red"],
    ],
    "Empty": [],
    "Staff": [["Name", "Role"], ["Ada", "Engineer"]],
}


def test_each_sheet_is_a_named_page_of_rows_cited_by_the_sheets_own_numbers() -> None:
    doc = extract(make_ods(BUDGET), ODS)
    assert page_texts(doc) == [
        "Budget\n\n| Item | Price | | Note |\n| Widget | $1,599.99 | | blue |\n"
        "| Gadget | $2.50 | | |\n| Gizmo | 12/31/2024 | | red |",
        "",
        "Staff\n\n| Name | Role |\n| Ada | Engineer |",
    ]
    assert [page.name for page in doc.pages] == ["Budget", "Empty", "Staff"]
    assert doc.unit.value == "sheet" and doc.paged
    assert [row.number for row in doc.rows] == [4, 8, 9, 2]
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Budget"), (1, "Staff")]


def test_tables_stacked_in_one_ods_sheet_each_name_their_own_columns() -> None:
    sheet: list[list[str | None] | int] = [
        ["Region", "Revenue"],
        ["North", "$1,200"],
        1,  # an empty row
        ["Team", "Lead"],
        ["Ops", "Ada"],
    ]
    doc = extract(make_ods({"Sales": sheet}), ODS)
    assert page_texts(doc) == [
        "Sales\n\n| Region | Revenue |\n| North | $1,200 |\n\n| Team | Lead |\n| Ops | Ada |"
    ]
    assert [row.number for row in doc.rows] == [2, 5]


def test_sheet_chunks_repeat_the_header_and_cite_sheet_and_rows() -> None:
    rows = [["Part", "Stock"], *([f"P-{n}", f"{n * 3} units"] for n in range(1, 41))]
    doc = extract_text(
        make_ods({"Stock": rows, "Other": [["a"], ["b"]]}),
        mime_type=ODS,
        filename="stock.ods",
        options=ExtractOptions(block_tokens=20, tokenizer=WordCounter()),
    )
    chunks = with_locations(
        chunk_text(doc, max_tokens=20, overlap_tokens=5, tokenizer=WordCounter()), doc
    )
    stock = [chunk for chunk in chunks if chunk.page_start == 1]
    assert len(stock) > 3
    for chunk in stock:
        assert "| Part | Stock |" in chunk.content
        assert chunk.location is not None and chunk.location.startswith("sheet Stock, rows ")
    assert stock[0].location == "sheet Stock, rows 2-3"
    assert chunks[-1].location == "sheet Other, row 2"


def test_padded_sheets_cost_nothing_and_rows_past_the_limit_get_a_notice() -> None:
    padded = TableRow(numberrowsrepeated=10**12)  # expanding this would never finish
    padded.addElement(TableCell(numbercolumnsrepeated=10**9))
    repeated = TableRow(numberrowsrepeated=10**12)
    repeated.addElement(cell("same"))
    data = make_ods(
        {"Big": [["Head"], ["first"]], "Later": [["Other"], ["row"]]},
        ("Big", padded),
        ("Big", repeated),
    )
    doc = extract(data, ODS, max_rows=5)
    assert page_texts(doc)[0] == "Big\n\n| Head |\n| first |\n" + "| same |\n" * 3 + "| same |"
    assert [row.number for row in doc.rows] == [2, 10**12 + 3, 10**12 + 4, 10**12 + 5, 10**12 + 6]
    assert page_texts(doc)[1] == ""
    assert doc.notices == [
        "only the first 5 rows of the OpenDocument spreadsheet were read; "
        "the rows after them were left out"
    ]


def test_wide_rows_are_cut_at_the_column_limit_and_values_without_text_are_read() -> None:
    wide = TableRow()
    wide.addElement(cell("x", repeat=10**9))
    valued = TableRow()
    valued.addElement(TableCell(valuetype="float", value="1599.99"))
    doc = extract(make_ods({"Wide": [["h"]]}, ("Wide", wide), ("Wide", valued)), ODS)
    assert doc.text.count("| x ") == MAX_COLUMNS
    assert doc.text.endswith("| 1599.99 |")
    assert doc.notices == [f"cells past column {MAX_COLUMNS} were left out"]


def test_opendocument_files_are_recognised_by_content_whatever_their_name() -> None:
    assert extract(make_odt(P(text="recognised")), None).text == "recognised"
    sheet = extract(make_ods({"S": [["h"], ["v"]]}), "application/octet-stream")
    assert sheet.unit.value == "sheet"
    slides = extract(make_odp([("Hello", [], None)]), "application/zip")
    assert slides.unit.value == "slide"


@pytest.mark.parametrize(
    ("mime_type", "label"),
    [
        (ODT, "OpenDocument text"),
        (ODP, "OpenDocument presentation"),
        (ODS, "OpenDocument spreadsheet"),
    ],
)
def test_password_protected_opendocument_files_are_rejected(mime_type: str, label: str) -> None:
    data = {
        ODT: make_odt(P(text="secret")),
        ODP: make_odp([("secret", [], None)]),
        ODS: make_ods({"S": [["secret"]]}),
    }[mime_type]
    fails_with(
        encrypted_copy(data),
        f"the {label} is encrypted with a password; upload an unencrypted copy",
        mime_type,
    )


def test_zip_without_content_and_malformed_content_are_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("mimetype", ODT)
    fails_with(buffer.getvalue(), "a zip package without a OpenDocument text (no content.xml)")
    broken = _replaced(make_odt(P(text="x")), "content.xml", b"<office:document-content><a>")
    message = fails_with(broken, "the OpenDocument text is corrupt or truncated: ")
    assert "content.xml is not well-formed XML (line 1)" in message


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_opendocument_file_is_rejected(cut: float) -> None:
    data = manual()
    fails_with(data[: int(len(data) * cut)], "the OpenDocument text is corrupt or truncated: ")


def test_zip_bombs_are_rejected_by_declared_size_and_a_false_size_fails_its_check() -> None:
    padded = _content(b"<text:p>" + b"x " * 100_000 + b"</text:p>")
    data = _replaced(make_odt(P(text="x")), "content.xml", padded)
    message = fails_with(data, "the OpenDocument text unpacks to ", max_unpacked_bytes=100_000)
    assert message.endswith("; the limit is 100000 bytes")
    # Declaring content.xml smaller than it inflates to: reading stops there and fails.
    lying = _declared_size(data, "content.xml", 1000)
    fails_with(lying, "the OpenDocument text is corrupt or truncated: ")


def test_deeply_nested_content_fails_as_a_permanent_error() -> None:
    nested = b"<text:list><text:list-item>" * 300 + b"</text:list-item></text:list>" * 300
    data = _replaced(make_odt(P(text="x")), "content.xml", _content(nested))
    fails_with(data, "the OpenDocument text ")


def test_opendocument_file_without_text_is_rejected() -> None:
    fails_with(make_odt(P(text=""), P(text="   ")), "no text in the OpenDocument text")
    fails_with(make_ods({"S": [2, [None]]}), "no text in the OpenDocument spreadsheet", ODS)


def test_entities_are_not_expanded() -> None:
    content = _content(b"<text:p>safe &lol;</text:p>").replace(
        b"<?xml version='1.0' encoding='UTF-8'?>",
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY lol "EXPANDED">]>',
    )
    doc = extract(_replaced(make_odt(P(text="x")), "content.xml", content))
    assert doc.text == "safe"


@pytest.mark.parametrize("mime_type", [ODT, ODP, ODS])
def test_mangled_opendocument_files_fail_only_with_permanent_errors(mime_type: str) -> None:
    """Fuzz: byte flips and cuts either extract or raise PermanentIngestionError, never leak."""
    original = {
        ODT: manual(),
        ODP: make_odp([("Title", [text_frame(["body"] * 20)], "notes")] * 5),
        ODS: make_ods(BUDGET),
    }[mime_type]
    assert_fails_only_cleanly(
        lambda _, rng: mangle(original, rng),
        lambda n, data: extract(data, None if n % 2 else mime_type),
        seed=4713,
        attempts=150,
    )


def test_spreadsheet_becomes_ready_with_chunks_citing_sheet_and_rows(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    parts = [["Part", "Price", "Bin"], *([f"XK-{n}", f"${n},099.99", f"B{n}"] for n in range(300))]
    staff = [["Name", "Role"], *([f"Person {n}", f"fitter {n}"] for n in range(60))]
    staff[40] = ["Ada", "copper valve lead"]
    data = make_ods({"Parts": parts, "Staff": staff})
    blob = upload(ingestion_stack, tenant, "inventory/parts.ods", data, ODS)
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    assert document.mime_type == ODS
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.SUCCEEDED
    chunks = [chunk for chunk in chunks_of(document.id) if chunk.page_start == chunk.page_end]
    on_parts = [chunk for chunk in chunks if chunk.page_start == 1]
    assert len(on_parts) > 3
    for chunk in on_parts:  # each names its columns and the rows it quotes
        assert "| Part | Price | Bin |" in chunk.content
        assert chunk.location is not None and chunk.location.startswith("sheet Parts, rows ")
        first, last = map(int, chunk.location.removeprefix("sheet Parts, rows ").split("-"))
        assert f"| XK-{first - 2} |" in chunk.content and f"| XK-{last - 2} |" in chunk.content
    [lead] = [chunk for chunk in chunks if "copper valve lead" in chunk.content]
    assert lead.location is not None and lead.location.startswith("sheet Staff, rows ")
    first, last = map(int, lead.location.removeprefix("sheet Staff, rows ").split("-"))
    assert first <= 41 <= last
    assert lead.context is not None and "Staff" in lead.context


def _content(body: bytes) -> bytes:
    return (
        b"<?xml version='1.0' encoding='UTF-8'?><office:document-content "
        b'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        b'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">'
        b"<office:body><office:text>" + body + b"</office:text></office:body>"
        b"</office:document-content>"
    )


def _replaced(data: bytes, name: str, body: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, body if info.filename == name else source.read(info))
    return buffer.getvalue()


def _declared_size(data: bytes, name: str, size: int) -> bytes:
    """The package with `name`'s uncompressed size rewritten in both of its zip headers."""
    patched = bytearray(data)
    encoded = name.encode()
    for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = patched.find(signature)
        while at != -1:
            length = struct.unpack_from("<H", patched, at + name_at - (4 if name_at == 30 else 18))
            if patched[at + name_at : at + name_at + length[0]] == encoded:
                struct.pack_into("<I", patched, at + offset, size)
            at = patched.find(signature, at + 4)
    return bytes(patched)
