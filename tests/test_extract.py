"""Extraction of every supported format from generated inputs, and every bad-input error message."""

from __future__ import annotations

import random

import pytest

from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.normalize import normalize_text
from common.platform.errors import PermanentIngestionError
from common.platform.formats import SUPPORTED, sniff_mime_type
from tests.pdfs import (
    make_corrupt_pdf,
    make_encrypted_pdf,
    make_pdf,
    make_textless_pdf,
    make_truncated_pdf,
    page_text,
)


def extract(
    data: bytes, mime_type: str | None = None, filename: str = "file", max_pages: int = 50
) -> ExtractedText:
    return extract_text(data, mime_type=mime_type, filename=filename, max_pages=max_pages)


def page_texts(doc: ExtractedText) -> list[str]:
    return [doc.text[p.char_start : p.char_end] for p in doc.pages]


def fails_with(data: bytes, message: str, **kwargs: object) -> None:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)


# --- PDF ----------------------------------------------------------------------------------------


def test_pdf_pages_keep_their_numbers_and_exact_spans():
    pages = [page_text(n, words=40) for n in range(1, 5)]
    doc = extract(make_pdf(pages), "application/pdf", "report.pdf")
    assert [p.number for p in doc.pages] == [1, 2, 3, 4]
    for number, text in enumerate(page_texts(doc), start=1):
        assert text.startswith(f"Page {number} sentence 0")
        assert f"topic{number}x3" in text and f"topic{number + 1}x" not in text
        assert " ".join(text.split()) == " ".join(pages[number - 1].split())
    assert doc.text == "\n\n".join(page_texts(doc))


def test_blank_pdf_page_keeps_numbering_with_an_empty_span():
    doc = extract(make_pdf(["first page text", " ", "third page text"]), "application/pdf", "a.pdf")
    assert page_texts(doc) == ["first page text", "", "third page text"]
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.text == "first page text\n\nthird page text"


def test_pdf_words_hyphenated_at_line_ends_are_rejoined():
    doc = extract(
        make_pdf(["The infor-\nmation retrieval sys-\ntem is well-\nKnown."]),
        "application/pdf",
        "a.pdf",
    )
    assert doc.text == "The information retrieval system is well-\nKnown."


def test_pdf_is_recognised_by_magic_bytes_when_the_type_is_generic():
    data = make_pdf(["magic bytes decide"])
    for mime in (None, "application/octet-stream"):
        assert extract(data, mime, "upload.bin").text == "magic bytes decide"


def test_owner_only_encrypted_pdf_still_extracts():
    data = make_encrypted_pdf(["restricted but readable"], user_password="")
    assert extract(data, "application/pdf", "a.pdf").text == "restricted but readable"


def test_pdf_encrypted_with_a_password_is_rejected():
    fails_with(
        make_encrypted_pdf(["secret"]),
        "the PDF is encrypted with a password; upload an unencrypted copy",
        mime_type="application/pdf",
    )


@pytest.mark.parametrize("kind", ["image", "drawing", "blank"])
def test_textless_pdf_is_rejected_as_needing_ocr(kind: str):
    fails_with(
        make_textless_pdf(3, kind=kind),
        "no extractable text (scanned or image-only PDF?); OCR is not supported",
        mime_type="application/pdf",
    )


@pytest.mark.parametrize(
    "data", [make_truncated_pdf(), make_truncated_pdf(keep=0.9), make_corrupt_pdf(), b"%PDF-1.4\n"]
)
def test_corrupt_or_truncated_pdf_is_rejected(data: bytes):
    fails_with(data, "the PDF is corrupt or truncated: ", mime_type="application/pdf")


def test_pdf_over_the_page_limit_is_rejected():
    fails_with(
        make_pdf(["a", "b", "c"]),
        "the PDF has 3 pages; the limit is 2 pages",
        mime_type="application/pdf",
        max_pages=2,
    )


def test_mangled_pdfs_fail_only_with_permanent_errors():
    """Fuzz: byte flips and cuts of a valid PDF either extract or raise PermanentIngestionError."""
    original = make_pdf([page_text(n) for n in range(1, 4)])
    rng = random.Random(1234)
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        try:
            extract(bytes(data), "application/pdf", "f.pdf")
            outcomes["ok"] += 1
        except PermanentIngestionError as error:
            outcomes["rejected"] += 1
            assert "b'" not in str(error) and "\\x" not in str(error), (
                "file bytes leaked into the message"
            )
    assert outcomes["rejected"] > 0


# --- other bad input ----------------------------------------------------------------------------


def test_empty_file_is_rejected():
    fails_with(b"", "the file is empty", mime_type="text/plain", filename="a.txt")


def test_unsupported_type_is_rejected_with_the_supported_list():
    fails_with(
        b"\x00\x00\x00\x18ftypmp42....",
        f"unsupported file type 'video/mp4' (supported: {SUPPORTED})",
        mime_type="video/mp4",
    )
    assert SUPPORTED.startswith("PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx)")
    fails_with(b"ID3\x04\x00", "unsupported file type 'audio/mpeg'", filename="song.mp3")


def test_binary_junk_sent_as_text_is_rejected():
    junk = random.Random(5).randbytes(4096)
    fails_with(
        junk, "does not look like text", mime_type="application/octet-stream", filename="blob"
    )
    fails_with(junk, "does not look like text", mime_type="text/plain", filename="a.txt")


def test_whitespace_only_text_is_rejected():
    fails_with(b" \n\t\r\n \x0c \n", "no extractable text", mime_type="text/plain")
    fails_with(
        b"<html><head><title>t</title></head><body> </body></html>",
        "no visible text",
        filename="a.html",
    )


# --- plain text ---------------------------------------------------------------------------------


def test_plain_text_is_normalised():
    raw = (
        "  Caf\u0065\u0301  au\tlait\x00 \x07\r\nsecond   line\r\n\r\n\r\n\r\n"
        "new para infor-\nmation\u00ad here\x0cafter form feed\n"
    )
    doc = extract(raw.encode(), "text/plain", "a.txt")
    assert doc.text == "Café au lait\nsecond line\n\nnew para information here\n\nafter form feed"
    assert [(p.number, p.char_start, p.char_end) for p in doc.pages] == [(1, 0, len(doc.text))]


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        ("\ufeffnaïve café".encode(), None),
        ("naïve café".encode("utf-16"), None),  # with BOM
        ("naïve café".encode("cp1252"), None),
        ("naïve café".encode("latin-1"), "iso-8859-1"),
    ],
)
def test_text_encodings_are_decoded(data: bytes, charset: str | None):
    mime = f"text/plain; charset={charset}" if charset else "text/plain"
    assert extract(data, mime, "a.txt").text == "naïve café"


def test_bytes_invalid_in_utf8_and_cp1252_fall_back_to_latin1():
    # 0x8d is undefined in Windows-1252; in Latin-1 it is a C1 control, which normalisation drops
    assert extract(b"caf\xe9 \x8d ok", None, "a.txt").text == "café ok"


def test_normalisation_uses_nfkc_for_pdfs_and_nfc_elsewhere():
    assert normalize_text("\ufb01nd x\u00b2", form="NFKC") == "find x2"
    assert normalize_text("\ufb01nd x\u00b2", form="NFC") == "\ufb01nd x\u00b2"


# --- Markdown and HTML --------------------------------------------------------------------------


def test_markdown_keeps_headings_and_content_but_drops_syntax():
    source = """---
title: front matter is metadata
---
# Install *guide*

Run `pip install x` then see [the docs](https://example.com/docs) or ![diagram](d.png).

- first **item**
- second item

```python
print("code stays")
```

Subtitle
--------
> quoted text with snake_case_name

| col a | col b |
|-------|-------|
| 1     | 2     |

[ref]: https://example.com
"""
    doc = extract(source.encode(), None, "README.md")
    assert doc.text == (
        "Install guide\n\n"
        "Run pip install x then see the docs or diagram.\n\n"
        "first item\nsecond item\n\n"
        'print("code stays")\n\n'
        "Subtitle\n\n"
        "quoted text with snake_case_name\n\n"
        "col a col b\n1 2"
    )


def test_html_yields_visible_text_with_block_structure():
    html = b"""<!DOCTYPE html><html><head><title>Tab title</title><meta charset="windows-1252">
<style>body { color: red }</style><script>var secret = 1;</script></head>
<body><nav>Home</nav><h1>Caf\xe9 menu</h1>
<p>First   paragraph
   spans lines &amp; has <b>bold</b> text.</p>
<noscript>enable js</noscript><template><p>template</p></template>
<div hidden>hidden div</div><span style="display: none">invisible</span>
<ul><li>one</li><li>two</li></ul>
<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
<p>line<br>break</p><svg><text>vector</text></svg></body></html>"""
    doc = extract(html, "text/html", "page.html")
    assert doc.text == (
        "Home\n\nCafé menu\n\nFirst paragraph spans lines & has bold text."
        "\n\none\ntwo\n\nk v\na 1\n\nline\nbreak"
    )


# --- MIME types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "declared", "expected"),
    [
        ("notes.md", None, "text/markdown"),
        ("notes.MARKDOWN", "application/octet-stream", "text/markdown"),
        ("dir/report.pdf", None, "application/pdf"),
        (
            "Minutes.DOCX",
            "application/octet-stream",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("page.htm", "", "text/html"),
        ("a.txt", "Text/Plain; charset=utf-8", "text/plain"),
        ("a.pdf", "text/plain", "text/plain"),  # a specific declared type is trusted
        ("photo.png", None, "image/png"),
        ("no-extension", None, None),
        ("no-extension", "application/octet-stream", "application/octet-stream"),
    ],
)
def test_sniff_mime_type(filename: str, declared: str | None, expected: str | None):
    assert sniff_mime_type(filename, declared) == expected
