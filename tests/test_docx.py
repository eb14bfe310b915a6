"""Word (.docx) files: reading order, headings, text boxes, shapes and notes, offsets, every
bad-file message, and the real pipeline.

The documents are generated in the test with python-docx, text boxes and notes written as Word
writes their XML (tests/docx_files.py), and encrypted with msoffcrypto-tool, as Word's "Encrypt
with Password" does, so no binary fixture lives in the repository.
"""

from __future__ import annotations

import io
import random

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls

from common.ingestion.chunking import chunk_text
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.docx import MIME_TYPE
from common.ingestion.sections import heading_paths
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus, JobStatus
from tests.docx_files import (
    Block,
    group,
    make_docx,
    make_encrypted_docx,
    make_zip_without_word_document,
    mangle_xml_part,
    note_reference,
    run,
    text_box,
    vml_text_box,
    xml_elements,
)
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.mangling import assert_fails_only_cleanly, mangle
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

MANUAL: list[Block] = [
    ("title", "Pump manual"),
    ("h1", "Installation"),
    "Mount the  blue pump\ton a level floor.",
    [["Part", "Torque"], ["XK-4471B", "40 Nm"]],
    ("h2", "Service"),
    "Replace the seal every 500 hours.",
]


class WordCounter:
    def count_tokens(self, text: str) -> int:
        return len(text.split())


def extract(
    data: bytes, mime_type: str | None = MIME_TYPE, filename: str = "a.docx"
) -> ExtractedText:
    return extract_text(data, mime_type=mime_type, filename=filename, max_pages=10)


def fails_with(data: bytes, message: str, **kwargs: str | None) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    return str(caught.value)


def test_paragraphs_headings_and_tables_come_in_reading_order() -> None:
    doc = extract(make_docx(MANUAL))
    assert doc.text == (
        "Pump manual\n\nInstallation\n\nMount the blue pump on a level floor.\n\n"
        "Part Torque\nXK-4471B 40 Nm\n\nService\n\nReplace the seal every 500 hours."
    )
    assert [(p.number, p.char_start, p.char_end) for p in doc.pages] == [(1, 0, len(doc.text))]


def test_merged_and_nested_cells_are_read_once_in_place() -> None:
    document = docx.Document(io.BytesIO(make_docx([[["a", "b", "c"], ["d", "e", "f"]], "after"])))
    table = document.tables[0]
    table.cell(0, 0).merge(table.cell(0, 1))  # horizontal: "a b" in one cell
    table.cell(0, 2).merge(table.cell(1, 2))  # vertical: "c f" spans both rows
    inner = table.cell(1, 0).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "inner1", "inner2"
    buffer = io.BytesIO()
    document.save(buffer)
    assert extract(buffer.getvalue()).text == "a b c f\nd inner1 inner2 e\n\nafter"


def test_word_heading_styles_become_headings_of_the_sections_they_open() -> None:
    doc = extract(make_docx(MANUAL))
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "Pump manual"),
        (2, "Installation"),
        (3, "Service"),
    ]
    for heading in doc.headings:
        assert doc.text.startswith(heading.title, heading.char_start)
    chunks = chunk_text(doc, max_tokens=6, overlap_tokens=0, tokenizer=WordCounter())
    paths = dict(zip((c.content for c in chunks), heading_paths(doc.headings, chunks), strict=True))
    [seal] = [content for content in paths if "Replace the seal" in content]
    assert paths[seal] == ["Pump manual", "Installation", "Service"]


def test_headings_by_outline_level_or_a_style_based_on_a_heading_and_long_ones_stay_text() -> None:
    document = docx.Document(io.BytesIO(make_docx(["Body", "Outlined", "Custom", "x " * 80])))
    custom = document.styles.add_style("Procedure", WD_STYLE_TYPE.PARAGRAPH)
    custom.base_style = document.styles["Heading 2"]
    _, outlined, styled, long = document.paragraphs
    outlined.paragraph_format.element.get_or_add_pPr().append(
        parse_xml(f'<w:outlineLvl {nsdecls("w")} w:val="0"/>')
    )
    styled.style = custom
    long.style = document.styles["Heading 1"]
    buffer = io.BytesIO()
    document.save(buffer)
    doc = extract(buffer.getvalue())
    assert [(h.level, h.title) for h in doc.headings] == [(2, "Outlined"), (3, "Custom")]
    assert doc.text.endswith("x x x")


def test_text_boxes_and_shapes_are_read_once_after_the_paragraph_they_are_anchored_in() -> None:
    doc = extract(
        make_docx(
            [
                ("runs", run("The pump room.") + text_box("Boxed warning: wear gloves")),
                ("runs", text_box("Outlet valve label", box=False, fallback=False)),
                (
                    "runs",
                    run("Flow:") + group(["Inlet side", "Outlet side"]) + run(" left to right."),
                ),
                ("runs", vml_text_box("Legacy box: drain first")),
                "After the shapes.",
            ]
        )
    )
    assert doc.text == (
        "The pump room.\n\nBoxed warning: wear gloves\n\nOutlet valve label\n\n"
        "Flow: left to right.\n\nInlet side\n\nOutlet side\n\nLegacy box: drain first\n\n"
        "After the shapes."
    )


def test_text_boxes_in_table_cells_are_part_of_their_cell() -> None:
    document = docx.Document(io.BytesIO(make_docx([[["Part", "Note"]]])))
    cell = document.tables[0].cell(0, 1)
    cell.paragraphs[0]._p.extend(xml_elements(text_box("boxed")))
    buffer = io.BytesIO()
    document.save(buffer)
    assert extract(buffer.getvalue()).text == "Part Note boxed"


def test_footnotes_and_endnotes_follow_the_paragraph_that_references_them() -> None:
    doc = extract(
        make_docx(
            [
                ("h1", "Pumps"),
                ("runs", run("The pump") + note_reference("footnote", 2) + run(" is bolted down.")),
                ("runs", run("Costs rose") + note_reference("endnote", 1) + run(".")),
                ("runs", run("Seals wear") + note_reference("footnote", 1) + run(".")),
                "The end.",
            ],
            footnotes=["Use M12 bolts.", "See the plinth drawing."],
            endnotes=["Figures from the 2023 audit."],
        )
    )
    # Numbered in order of reference, whatever their ids; separators and the continuation
    # notice ("continued on the next page") are never read.
    assert doc.text == (
        "Pumps\n\nThe pump[1] is bolted down.\n\n[1] See the plinth drawing.\n\n"
        "Costs rose[i].\n\n[i] Figures from the 2023 audit.\n\n"
        "Seals wear[2].\n\n[2] Use M12 bolts.\n\nThe end."
    )


def test_a_note_referenced_in_a_table_follows_the_whole_table() -> None:
    document = docx.Document(
        io.BytesIO(
            make_docx([[["Part", "Torque"], ["XK-4471B", "40 Nm"]], "After."], footnotes=["Dry."])
        )
    )
    cell = document.tables[0].cell(1, 1)
    cell.paragraphs[0]._p.extend(xml_elements(note_reference("footnote", 1)))
    buffer = io.BytesIO()
    document.save(buffer)
    assert extract(buffer.getvalue()).text == "Part Torque\nXK-4471B 40 Nm[1]\n\n[1] Dry.\n\nAfter."


def test_content_controls_insertions_and_fields_are_read_and_deletions_are_not() -> None:
    doc = extract(
        make_docx(
            [
                (
                    "body",
                    '<w:sdt><w:sdtPr><w:alias w:val="Cover"/></w:sdtPr><w:sdtContent>'
                    f"<w:p>{run('Cover page title')}</w:p></w:sdtContent></w:sdt>",
                ),
                (
                    "runs",
                    run("Keep")
                    + f'<w:ins w:id="1" w:author="a">{run(" inserted")}</w:ins>'
                    + '<w:del w:id="2" w:author="a"><w:r><w:delText> deleted</w:delText>'
                    + "</w:r></w:del>"
                    + f'<w:fldSimple w:instr="PAGE">{run(" 7")}</w:fldSimple>'
                    + f'<w:hyperlink w:anchor="x">{run(" linked")}</w:hyperlink>',
                ),
            ]
        )
    )
    assert doc.text == "Cover page title\n\nKeep inserted 7 linked"


def test_text_with_our_mark_characters_cannot_forge_headings() -> None:
    doc = extract(make_docx([("h1", "Ti\ufdd0tle"), "bo\ufdd1dy"], footnotes=["no\ufdd0te"]))
    assert doc.text == "Title\n\nbody" and len(doc.headings) == 1 and doc.rows == []


def test_word_files_are_recognised_by_extension_and_by_content() -> None:
    data = make_docx(["recognised"])
    assert extract(data, None, "notes.docx").text == "recognised"
    assert extract(data, "application/octet-stream", "upload.bin").text == "recognised"
    assert extract(data, None, "no-extension").text == "recognised"


def test_password_protected_word_file_is_rejected() -> None:
    fails_with(
        make_encrypted_docx(MANUAL),
        "the Word document is encrypted with a password; upload an unencrypted copy",
    )


def test_legacy_doc_and_zip_without_a_document_are_rejected() -> None:
    ole_header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    fails_with(ole_header, "legacy Word 97-2003 (.doc) or other OLE file, not .docx")
    fails_with(make_zip_without_word_document(), "a zip package without a Word document")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_word_file_is_rejected(cut: float) -> None:
    data = make_docx(MANUAL)
    fails_with(data[: int(len(data) * cut)], "the Word document is corrupt or truncated: ")


def test_word_file_without_text_is_rejected() -> None:
    fails_with(make_docx(["", "   ", [["", ""]]]), "no text in the Word document")


def test_mangled_word_files_fail_only_with_permanent_errors() -> None:
    """Fuzz: byte flips and cuts either extract or raise PermanentIngestionError, never leak."""
    original = make_docx(MANUAL * 5)
    assert_fails_only_cleanly(
        lambda _, rng: mangle(original, rng),
        lambda n, data: extract(data, None if n % 2 else MIME_TYPE, "f.docx"),
        seed=4711,
        attempts=300,
    )


def test_word_files_with_damaged_xml_fail_only_with_permanent_errors() -> None:
    """Fuzz inside the package: damaged XML parts, re-zipped, reach python-docx's parsers."""
    original = make_docx(
        [*MANUAL, ("runs", run("Pump") + note_reference("footnote", 1) + text_box("boxed"))],
        footnotes=["Note."],
    )
    rng = random.Random(4713)
    for _ in range(60):
        try:
            extract(mangle_xml_part(original, rng), None, "f.docx")
        except PermanentIngestionError as error:
            assert "b'" not in str(error) and "\\x" not in str(error)


def test_word_file_becomes_ready_with_chunks_slicing_the_extracted_text(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    data = make_docx([*MANUAL, *(f"Paragraph {n} about the copper valve." for n in range(300))])
    blob = upload(ingestion_stack, tenant, "manuals/pump.docx", data, MIME_TYPE)
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    assert document.mime_type == MIME_TYPE
    chunks = chunks_of(document.id)
    assert len(chunks) > 1
    extracted = extract(data)
    for chunk in chunks:
        assert extracted.text[chunk.char_start : chunk.char_end] == chunk.content
        assert chunk.page_start == chunk.page_end == 1
    assert "XK-4471B 40 Nm" in chunks[0].content


def test_encrypted_word_file_fails_once_with_a_readable_error(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    blob = upload(
        ingestion_stack,
        tenant,
        "secret.docx",
        make_encrypted_docx(MANUAL),
        "application/octet-stream",
    )
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.FAILED})
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.error_message == (
        "the Word document is encrypted with a password; upload an unencrypted copy"
    )
