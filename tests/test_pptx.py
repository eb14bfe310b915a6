"""PowerPoint (.pptx) decks: slide order and reading order, titles as headings, notes, tables,
citations by slide, every bad-file message, and the real pipeline.

The decks are generated in the test with python-pptx (tests/pptx_files.py) and encrypted with
msoffcrypto-tool, as PowerPoint's "Encrypt with Password" does; no binary fixture is kept.
"""

from __future__ import annotations

import io
import random

import pptx
import pytest

from common.ingestion.chunking import chunk_text
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions
from common.ingestion.extractors.pptx import MIME_TYPE, NOTES_LINE
from common.ingestion.locations import with_locations
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus, JobStatus
from tests.docx_files import mangle_xml_part
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.mangling import assert_fails_only_cleanly, mangle
from tests.pptx_files import (
    make_deck,
    make_encrypted_pptx,
    make_pptx_bomb,
    make_text_deck,
    make_zip_without_presentation,
)
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

DECK = make_deck()
SLIDES = [
    "Quarterly pump review\n\nPrepared by the field service team\n\n"
    "Notes:\nWelcome everyone; the agenda is on the next slide.",
    # The outer group's children sit at 2 in within the group but at 5 in on the slide.
    "Service regions\n\nMiddle box: the regions at a glance\n\nGroup top left: North region\n\n"
    "Nested right: East region\n\nNested below: South region\n\n"
    "Notes:\nAsk the audience which region the copper valve failures came from.",
    "Failure counts\n\n| Part | Failures |\n| XK-4471B | 17 |\n| Seal kit | 4 |",
    "Safety first\n\nLock out before opening the pump",
    "First line of the untitled slide\n\nRight column of the untitled slide\n\n"
    "Second line of the untitled slide\n\nNotes:\nThis slide has no title on purpose.",
    "Trend\n\nFailures per quarter\n\nInspect\nRepair\nVerify",
]


class WordCounter:
    def count_tokens(self, text: str) -> int:
        return len(text.split())


def extract(
    data: bytes,
    mime_type: str | None = MIME_TYPE,
    filename: str = "a.pptx",
    options: ExtractOptions | None = None,
) -> ExtractedText:
    return extract_text(data, mime_type=mime_type, filename=filename, options=options)


def fails_with(data: bytes, message: str, options: ExtractOptions | None = None) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, options=options)
    assert message in str(caught.value)
    return str(caught.value)


def page_texts(doc: ExtractedText) -> list[str]:
    return [doc.text[page.char_start : page.char_end] for page in doc.pages]


def test_each_slide_is_a_page_read_title_first_then_shapes_by_position_then_notes() -> None:
    doc = extract(DECK)
    assert page_texts(doc) == SLIDES
    assert doc.unit.value == "slide" and doc.paged
    assert [page.number for page in doc.pages] == [1, 2, 3, 4, 5, 6]


def test_slide_titles_are_level_one_headings_and_untitled_slides_have_none() -> None:
    doc = extract(DECK)
    titles = [(h.level, h.title) for h in doc.headings]
    assert titles == [
        (1, "Quarterly pump review"),
        (1, "Service regions"),
        (1, "Failure counts"),
        (1, "Safety first"),
        (1, "Trend"),
    ]
    for heading in doc.headings:
        assert doc.text.startswith(heading.title, heading.char_start)
    untitled = doc.pages[4]
    assert not [h for h in doc.headings if untitled.char_start <= h.char_start < untitled.char_end]


def test_chunks_cite_the_slides_they_quote_and_table_rows_by_their_row() -> None:
    doc = extract(DECK)
    assert [row.number for row in doc.rows] == [2, 3]
    for budget in (12, 20, 40):
        chunks = with_locations(
            chunk_text(doc, max_tokens=budget, overlap_tokens=0, tokenizer=WordCounter()), doc
        )
        for chunk in chunks:
            slides = [
                page.number
                for page in doc.pages
                if page.char_start < chunk.char_end and chunk.char_start < page.char_end
            ]
            assert (chunk.page_start, chunk.page_end) == (slides[0], slides[-1])
            place = f"slide {slides[0]}" if len(slides) == 1 else f"slides {slides[0]}-{slides[-1]}"
            assert chunk.location is not None and chunk.location.startswith(place)
    chunks = with_locations(
        chunk_text(doc, max_tokens=20, overlap_tokens=0, tokenizer=WordCounter()), doc
    )
    [table] = [chunk for chunk in chunks if "| XK-4471B | 17 |" in chunk.content]
    assert table.location == "slide 3, rows 2-3"
    [notes] = [chunk for chunk in chunks if "copper valve failures" in chunk.content]
    assert notes.location == "slide 2"
    assert "Notes:\nAsk the audience" in notes.content


def test_table_without_a_header_row_numbers_rows_from_one() -> None:
    deck = pptx.Presentation(io.BytesIO(make_text_deck([("Stock", "", "")])))
    frame = deck.slides[0].shapes.add_table(2, 2, 0, 0, 100, 100)
    frame.table.first_row = False
    for row in range(2):
        for column in range(2):
            frame.table.cell(row, column).text = f"r{row}c{column}"
    doc = extract(_saved(deck))
    assert doc.text == "Stock\n\n| r0c0 | r0c1 |\n| r1c0 | r1c1 |"
    assert [row.number for row in doc.rows] == [1, 2]


def test_hidden_slides_are_read_and_keep_their_numbers() -> None:
    deck = pptx.Presentation(io.BytesIO(make_text_deck([("One", "a", ""), ("Two", "b", "")])))
    deck.slides[0]._element.set("show", "0")
    assert page_texts(extract(_saved(deck))) == ["One\n\na", "Two\n\nb"]


def test_footer_date_and_slide_number_placeholders_are_left_out() -> None:
    deck = pptx.Presentation(io.BytesIO(make_text_deck([("Plan", "body text", "")])))
    slide = deck.slides[0]
    for placeholder in slide.slide_layout.placeholders:
        if placeholder.placeholder_format.type.name in ("FOOTER", "DATE", "SLIDE_NUMBER"):
            slide.shapes.clone_placeholder(placeholder)
    repeated = [shape for shape in slide.placeholders if shape.placeholder_format.idx > 1]
    assert len(repeated) == 3
    for shape in repeated:
        shape.text_frame.text = "Confidential"
    assert extract(_saved(deck)).text == "Plan\n\nbody text"


def test_a_title_too_long_for_a_heading_is_kept_whole_as_a_paragraph() -> None:
    title = " ".join(f"word{n}" for n in range(40))
    doc = extract(make_text_deck([(title, "body", "")]))
    assert doc.text == f"{title}\n\nbody" and doc.headings == []


def test_text_with_our_mark_characters_cannot_forge_headings_or_rows() -> None:
    doc = extract(make_text_deck([("Ti\ufdd0tle", "bo\ufdd1dy", "no\ufdd0tes")]))
    assert doc.text == "Title\n\nbody\n\nNotes:\nnotes"
    assert len(doc.headings) == 1 and doc.rows == []


def test_decks_are_recognised_by_extension_and_by_content() -> None:
    data = make_text_deck([("Recognised", "", "")])
    assert extract(data, None, "slides.pptx").text == "Recognised"
    assert extract(data, "application/octet-stream", "upload.bin").text == "Recognised"
    assert extract(data, None, "no-extension").text == "Recognised"


def test_deck_with_more_slides_than_the_limit_is_rejected_before_reading() -> None:
    data = make_text_deck([(f"Slide {n}", "", "") for n in range(4)])
    fails_with(
        data,
        "the PowerPoint presentation has 4 slides; the limit is 3",
        ExtractOptions(max_pages=3),
    )
    assert len(extract(data, options=ExtractOptions(max_pages=4)).pages) == 4


def test_table_rows_past_the_row_limit_are_left_out_with_a_notice() -> None:
    doc = extract(DECK, options=ExtractOptions(max_rows=1))
    assert [row.number for row in doc.rows] == [2]
    assert "| Seal kit |" not in doc.text
    assert doc.notices == [
        "only the first 1 table rows of the PowerPoint presentation were read; "
        "the rows after them were left out"
    ]


def test_password_protected_deck_is_rejected() -> None:
    fails_with(
        make_encrypted_pptx(DECK),
        "the PowerPoint presentation is encrypted with a password; upload an unencrypted copy",
    )


def test_legacy_ppt_and_zip_without_a_presentation_are_rejected() -> None:
    ole_header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    fails_with(ole_header, "legacy PowerPoint 97-2003 (.ppt) or other OLE file, not .pptx")
    fails_with(make_zip_without_presentation(), "a zip package without a PowerPoint presentation")


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_deck_is_rejected(cut: float) -> None:
    fails_with(
        DECK[: int(len(DECK) * cut)], "the PowerPoint presentation is corrupt or truncated: "
    )


def test_zip_bomb_is_rejected_by_its_declared_size() -> None:
    bomb = make_pptx_bomb(DECK, inflated=4 * 1024 * 1024)
    assert len(bomb) < 64 * 1024 + len(DECK)
    message = fails_with(
        bomb, "the PowerPoint presentation unpacks to ", ExtractOptions(max_unpacked_bytes=2**21)
    )
    assert message.endswith("; the limit is 2097152 bytes")


def test_deck_without_text_is_rejected() -> None:
    fails_with(
        make_text_deck([("", "", ""), ("", "  ", "")]), "no text in the PowerPoint presentation"
    )


def test_mangled_decks_fail_only_with_permanent_errors() -> None:
    """Fuzz: byte flips and cuts either extract or raise PermanentIngestionError, never leak."""
    assert_fails_only_cleanly(
        lambda _, rng: mangle(DECK, rng),
        lambda n, data: extract(data, None if n % 2 else MIME_TYPE, "f.pptx"),
        seed=4712,
        attempts=300,
    )


def test_decks_with_damaged_xml_fail_only_with_permanent_errors() -> None:
    """Fuzz inside the package: damaged XML parts, re-zipped, reach python-pptx's parsers (a
    renamed root element or a missing attribute must read as a corrupt file, not a crash)."""
    rng = random.Random(4714)
    for _ in range(60):
        try:
            extract(mangle_xml_part(DECK, rng), None, "f.pptx")
        except PermanentIngestionError as error:
            assert "b'" not in str(error) and "\\x" not in str(error)


def test_deck_becomes_ready_with_a_chunk_per_slide_citing_it(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    from common.inference.embeddings import get_embedder
    from common.ingestion.sections import CONTEXT_TOKENS
    from common.platform.config import get_settings

    # The worker's chunk budget; a slide of 60-90% of it is one chunk (a page break is the
    # strongest boundary and no overlap crosses it), so every chunk names exactly one slide.
    embedder = get_embedder()
    budget = min(get_settings().chunk_tokens, embedder.max_input_tokens - CONTEXT_TOKENS)
    notes = "The violet van needs new tyres before March."
    slides = []
    for number, title in enumerate(["Fleet", "Vans", "Depots"], start=1):
        body = ""
        while embedder.count_tokens(f"{title}\n\n{body}\n\n{NOTES_LINE}\n{notes}") < budget * 0.6:
            body += f"Slide {number} fact {len(body)} about the depot fleet. "
        slides.append((title, body, notes if number == 2 else ""))
    data = make_text_deck(slides)
    blob = upload(ingestion_stack, tenant, "reviews/fleet.pptx", data, MIME_TYPE)
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    assert document.mime_type == MIME_TYPE
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.SUCCEEDED
    chunks = chunks_of(document.id)
    assert [chunk.location for chunk in chunks] == ["slide 1", "slide 2", "slide 3"]
    assert [chunk.page_start for chunk in chunks] == [1, 2, 3]
    assert f"{NOTES_LINE}\n{notes}" in chunks[1].content
    assert chunks[1].context is not None and chunks[1].context.endswith("Vans")


def _saved(deck: object) -> bytes:
    buffer = io.BytesIO()
    deck.save(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()
