"""Word (.docx) files: reading order, offsets, every bad-file message, and the real pipeline.

The documents are generated in the test with python-docx (and encrypted with msoffcrypto-tool,
as Word's "Encrypt with Password" does), so no binary fixture lives in the repository.
"""

from __future__ import annotations

import io
import random

import docx
import pytest

from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.docx import MIME_TYPE
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus, JobStatus
from tests.docx_files import Block, make_docx, make_encrypted_docx, make_zip_without_word_document
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

MANUAL: list[Block] = [
    ("title", "Pump manual"),
    ("h1", "Installation"),
    "Mount the  blue pump\ton a level floor.",
    [["Part", "Torque"], ["XK-4471B", "40 Nm"]],
    ("h2", "Service"),
    "Replace the seal every 500 hours.",
]


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
    rng = random.Random(4711)
    rejected = 0
    for attempt in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        try:
            extract(bytes(data), None if attempt % 2 else MIME_TYPE, "f.docx")
        except PermanentIngestionError as error:
            rejected += 1
            assert "b'" not in str(error) and "\\x" not in str(error)
    assert rejected > 0


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
