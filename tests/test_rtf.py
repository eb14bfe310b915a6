"""RTF documents: text with its code pages, escapes and Unicode, paragraphs, what is skipped,
inputs that would make striprtf slow, and every bad-file message.

The documents are written by hand in the test (RTF is text), so no fixture is kept.
"""

from __future__ import annotations

import pytest

from common.ingestion.extract import ExtractedText, extract_text
from common.platform.errors import PermanentIngestionError
from tests.mangling import assert_fails_only_cleanly, mangle

MIME_TYPE = "application/rtf"
HEADER = (
    rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss\fcharset0 Helvetica;}"
    rb"{\f1\fnil\fcharset204 Arial Cyr;}}{\colortbl;\red0\green0\blue0;}"
    rb"{\info{\title Document properties}}{\header Running header}"
)
LETTER = HEADER + (
    rb"\pard\plain \f0 Caf\'e9 na\'efve r\u233?sum\u233?\par"
    rb"{\f1 \'cf\'f0\'e8\'e2\'e5\'f2}\par "
    rb"Emoji \u-10179?\u-8704? ok\line second line\par"
    rb"{\field{\*\fldinst{HYPERLINK \"http://example.com\"}}{\fldrslt{\ul link text}}} after\par"
    rb"{\*\shppict{\pict\pngblip 89504e470d0a1a0a}}{\footnote \chftn footnote text}"
    rb"{\*\annotation reviewer comment}Pump \{XK-4471B\}\par}"
)


def extract(
    data: bytes, mime_type: str | None = MIME_TYPE, filename: str = "a.rtf"
) -> ExtractedText:
    return extract_text(data, mime_type=mime_type, filename=filename)


def fails_with(data: bytes, message: str, **kwargs: str | None) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    return str(caught.value)


def test_text_reads_with_escapes_font_code_pages_and_unicode_paragraph_by_paragraph() -> None:
    doc = extract(LETTER)
    assert doc.text == (
        "Caf\u00e9 na\u00efve r\u00e9sum\u00e9\n\n\u041f\u0440\u0438\u0432\u0435\u0442\n\n"
        "Emoji \U0001f600 ok\nsecond line\n\nlink text after\n\nPump {XK-4471B}"
    )
    assert len(doc.pages) == 1 and not doc.paged


def test_the_declared_code_page_decodes_escapes_and_raw_bytes() -> None:
    cyrillic = "\u041f\u0440\u0438\u0432\u0435\u0442"
    escaped = (
        rb"{\rtf1\ansi\ansicpg1251 "
        + b"".join(rb"\'" + f"{byte:02x}".encode() for byte in cyrillic.encode("cp1251"))
        + rb" \par "
        + cyrillic.encode("cp1251")
        + b"}"
    )
    assert extract(escaped).text == f"{cyrillic}\n\n{cyrillic}"
    unknown = rb"{\rtf1\ansi\ansicpg99999 caf\'e9}"
    assert extract(unknown).text == "caf\u00e9"


def test_rtf_is_recognised_by_content_whatever_its_name() -> None:
    assert extract(LETTER, None, "letter.doc").text.startswith("Caf\u00e9")
    assert extract(LETTER, "application/octet-stream", "upload").text.startswith("Caf\u00e9")


def test_a_one_line_document_of_hyperlinks_reads_in_linear_time() -> None:
    field = rb"{\field{\*\fldinst{HYPERLINK \"http://example.com/x\"}}{\fldrslt{link}}} words "
    doc = extract(rb"{\rtf1\ansi " + field * 5000 + b"}")  # striprtf alone: ~15 s, quadratic
    assert doc.text.count("link words") == 5000


def test_pictures_and_objects_are_cut_out_and_binary_data_skipped() -> None:
    picture = rb"{\pict\pngblip " + b"0123456789abcdef" * 10_000 + b"}"
    binary = rb"{\*\objdata\bin6 {}\}{ }"
    doc = extract(rb"{\rtf1\ansi before " + picture + binary + rb" after\par}")
    assert doc.text == "before after"


def test_a_huge_or_unclosed_font_table_does_not_stall() -> None:
    table = rb"{\rtf1\ansi{\fonttbl" + rb"\f1 " * 200_000 + rb"}body\par}"
    assert extract(table).text == "body"
    fails_with(rb"{\rtf1\ansi{\fonttbl" + rb"\f1 " * 200_000, "no text in the RTF document")


def test_files_that_are_not_rtf_are_rejected() -> None:
    message = fails_with(b"plain text saved as rtf", "the RTF document is corrupt or truncated: ")
    assert message.endswith("it does not start with {\\rtf")
    fails_with(
        b"{\\rtf1 " + bytes(range(32)) * 100, "the RTF document is corrupt: it contains binary"
    )


@pytest.mark.parametrize(
    "control", [rb"\u99999999999?", rb"\u-99999999?", rb"\uc x", rb"\uc"], ids=str
)
def test_malformed_control_words_fail_with_a_permanent_error(control: bytes) -> None:
    fails_with(rb"{\rtf1\ansi text " + control + b" more}", "the RTF document is corrupt")


def test_rtf_without_text_is_rejected() -> None:
    fails_with(HEADER + rb"\pard\par\par}", "no text in the RTF document")


def test_truncated_rtf_keeps_the_text_before_the_cut() -> None:
    assert extract(LETTER[: LETTER.index(b"Emoji")]).text.endswith("\u0442")


def test_mangled_rtf_fails_only_with_permanent_errors() -> None:
    """Fuzz: byte flips and cuts either extract or raise PermanentIngestionError, never leak."""
    original = LETTER * 3
    assert_fails_only_cleanly(
        lambda n, rng: mangle(
            original, rng, flips=20, alphabet=b"\\{}'u-0123456789abcdefz " if n % 3 else None
        ),
        lambda _, data: extract(data),
        seed=4715,
        attempts=400,
    )
