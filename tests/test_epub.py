"""EPUB books: chapters as pages in spine order, titles from the table of contents as headings,
DRM refused while obfuscated fonts are not, every bad-file message, and the real pipeline.

Books are made in the test with ebooklib (EPUB 3 with nav and NCX) or written by hand with
zipfile (an EPUB 2 book with an NCX only, encryption.xml), so no binary fixture is kept.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from typing import Any

import pytest
from ebooklib import epub

from common.ingestion.chunking import chunk_text
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions
from common.ingestion.locations import with_locations
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus, JobStatus
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.mangling import assert_fails_only_cleanly, mangle
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

MIME_TYPE = "application/epub+zip"
CHAPTERS = [
    # (file, table-of-contents title or None, body)
    ("cover.xhtml", None, '<img src="cover.png" alt=""/>'),
    ("intro.xhtml", "Before you start",
     "<p>Read the safety notes first.</p><h2>Tools</h2><p>A torque wrench.</p>"),
    ("chap_01.xhtml", "Installing the pump",
     "<h1>Installing the pump</h1><p>Mount the blue pump on a level floor.</p>"
     "<h2>Wiring</h2><p>Connect the copper leads.</p>"),
    ("appendix.xhtml", None, "<h1>Appendix: part numbers</h1><p>XK-4471B seal kit.</p>"),
    ("notes.xhtml", None, "<p>No heading here, only a closing note.</p>"),
]  # fmt: skip


class WordCounter:
    def count_tokens(self, text: str) -> int:
        return len(text.split())


def make_book(chapters: Sequence[tuple[str, str | None, str]] = CHAPTERS) -> bytes:
    """An EPUB 3 book (nav document and NCX) written by ebooklib; the nav is in the spine."""
    book = epub.EpubBook()
    book.set_identifier("pump-manual")
    book.set_title("Pump manual")
    book.set_language("en")
    items = []
    for name, _, body in chapters:
        item = epub.EpubHtml(title=name, file_name=name, lang="en")
        item.content = f"<html><body>{body}</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = tuple(
        epub.Link(name, title, name) for name, title, _ in chapters if title is not None
    )
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    return buffer.getvalue()


def make_epub2(
    chapters: dict[str, str], ncx: dict[str, str], extra: dict[str, str] | None = None
) -> bytes:
    """A hand-written EPUB 2 book: OPF in OEBPS/, an NCX as its only table of contents."""
    manifest = "".join(
        f'<item id="c{n}" href="text/{name}" media-type="application/xhtml+xml"/>'
        for n, name in enumerate(chapters)
    )
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(len(chapters)))
    points = "".join(
        f'<navPoint id="p{n}"><navLabel><text>{title}</text></navLabel>'
        f'<content src="text/{name}#start"/></navPoint>'
        for n, (name, title) in enumerate(ncx.items())
    )
    files = {
        "mimetype": MIME_TYPE,
        "META-INF/container.xml": (
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>"
        ),
        "OEBPS/content.opf": (
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="2.0">'
            f'<manifest>{manifest}<item id="ncx" href="toc.ncx" '
            'media-type="application/x-dtbncx+xml"/></manifest>'
            f'<spine toc="ncx">{spine}</spine></package>'
        ),
        "OEBPS/toc.ncx": (
            '<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" '
            f'version="2005-1"><navMap>{points}</navMap></ncx>'
        ),
        **{
            f"OEBPS/text/{name}": (
                '<?xml version="1.0" encoding="iso-8859-1"?>'
                '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head>'
                f"<body>{body}</body></html>"
            )
            for name, body in chapters.items()
        },
        **(extra or {}),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, text in files.items():
            package.writestr(name, text.encode("latin-1" if "/text/" in name else "utf-8"))
    return buffer.getvalue()


def extract(data: bytes, mime_type: str | None = MIME_TYPE, **limits: Any) -> ExtractedText:
    return extract_text(
        data, mime_type=mime_type, filename="book.epub", options=ExtractOptions(**limits)
    )


def fails_with(data: bytes, message: str) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data)
    assert message in str(caught.value)
    return str(caught.value)


def page_texts(doc: ExtractedText) -> list[str]:
    return [doc.text[page.char_start : page.char_end] for page in doc.pages]


def encryption_xml(uri: str, algorithm: str) -> str:
    return (
        '<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"'
        ' xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        f'<enc:EncryptionMethod Algorithm="{algorithm}"/><enc:CipherData>'
        f'<enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>'
    )


def test_chapters_with_text_are_pages_in_spine_order_titled_by_the_table_of_contents() -> None:
    doc = extract(make_book())
    assert page_texts(doc) == [
        "Before you start\n\nRead the safety notes first.\n\nTools\n\nA torque wrench.",
        "Installing the pump\n\nMount the blue pump on a level floor.\n\n"
        "Wiring\n\nConnect the copper leads.",
        "Appendix: part numbers\n\nXK-4471B seal kit.",
        "No heading here, only a closing note.",
    ]
    assert doc.unit.value == "chapter" and doc.paged
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "Before you start"),
        (3, "Tools"),
        (1, "Installing the pump"),
        (3, "Wiring"),
        (1, "Appendix: part numbers"),
    ]
    for heading in doc.headings:
        assert doc.text.startswith(heading.title, heading.char_start)


def test_chunks_cite_their_chapter_and_carry_its_title() -> None:
    doc = extract(make_book())
    chunks = with_locations(
        chunk_text(doc, max_tokens=6, overlap_tokens=0, tokenizer=WordCounter()), doc
    )
    [wiring] = [chunk for chunk in chunks if "copper leads" in chunk.content]
    assert wiring.location == "chapter 2"
    assert all(chunk.location and chunk.location.startswith("chapter") for chunk in chunks)


def test_epub2_titles_come_from_the_ncx_and_legacy_encodings_decode() -> None:
    data = make_epub2(
        {
            "one.xhtml": "<p>Caf\u00e9 pumps are na\u00efve.</p>",
            "two.xhtml": "<h3>Two</h3><p>b</p>",
        },
        {"one.xhtml": "Chapter One"},
    )
    doc = extract(data)
    assert page_texts(doc) == ["Chapter One\n\nCaf\u00e9 pumps are na\u00efve.", "Two\n\nb"]
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Chapter One"), (1, "Two")]


def test_drm_protected_book_is_rejected_but_obfuscated_fonts_are_read() -> None:
    chapters = {"one.xhtml": "<p>secret text</p>"}
    drm = encryption_xml("OEBPS/text/one.xhtml", "http://www.w3.org/2001/04/xmlenc#aes256-cbc")
    fails_with(
        make_epub2(chapters, {}, {"META-INF/encryption.xml": drm}),
        "the EPUB book is protected by DRM (its chapters are encrypted); upload a DRM-free copy",
    )
    fonts = encryption_xml("OEBPS/fonts/a.otf", "http://www.idpf.org/2008/embedding")
    doc = extract(make_epub2(chapters, {}, {"META-INF/encryption.xml": fonts}))
    assert doc.text == "secret text"


def test_books_are_recognised_by_content_whatever_their_name() -> None:
    data = make_book()
    for mime_type in (None, "application/octet-stream", "application/zip"):
        doc = extract_text(data, mime_type=mime_type, filename="download")
        assert doc.unit.value == "chapter"


def test_zip_without_a_book_and_broken_package_documents_are_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("mimetype", MIME_TYPE)
    fails_with(buffer.getvalue(), "a zip package without an EPUB book (no META-INF/container.xml)")
    broken = make_epub2({"one.xhtml": "<p>x</p>"}, {}, {"OEBPS/content.opf": "<package><man"})
    fails_with(broken, "the EPUB book is corrupt or truncated: its package files are not well-")
    missing = _without(make_book(), "EPUB/content.opf")
    fails_with(missing, "the EPUB book is corrupt or truncated: its package document (OPF)")


@pytest.mark.parametrize("cut", [0.4, 0.9])
def test_truncated_book_is_rejected(cut: float) -> None:
    data = make_book()
    fails_with(data[: int(len(data) * cut)], "the EPUB book is corrupt or truncated: ")


def test_book_without_text_is_rejected() -> None:
    fails_with(make_book([("cover.xhtml", "Cover", "<img src='c.png'/>")]), "no text in the EPUB")


def test_mangled_books_fail_only_with_permanent_errors() -> None:
    """Fuzz: byte flips and cuts either extract or raise PermanentIngestionError, never leak."""
    original = make_book([(f"{n}{name}", t, body) for n in range(3) for name, t, body in CHAPTERS])
    assert_fails_only_cleanly(
        lambda _, rng: mangle(original, rng),
        lambda n, data: extract(data, None if n % 2 else MIME_TYPE),
        seed=4714,
        attempts=200,
    )


def test_book_becomes_ready_with_chunks_citing_chapters_under_their_titles(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    filler = "".join(f"<p>Paragraph {n} about routine pump care.</p>" for n in range(80))
    chapters = [
        ("one.xhtml", "Installing the pump", f"<h1>Installing the pump</h1>{filler}"),
        ("two.xhtml", "Servicing", f"<h2>Seals</h2>{filler}<p>Replace the copper seal.</p>"),
    ]
    data = make_book(chapters)
    blob = upload(ingestion_stack, tenant, "books/pump.epub", data, MIME_TYPE)
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.SUCCEEDED
    chunks = chunks_of(document.id)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.location in ("chapter 1", "chapter 2", "chapters 1-2")
    [seal] = [chunk for chunk in chunks if "copper seal" in chunk.content]
    assert seal.location == "chapter 2"
    assert seal.context is not None and "Servicing" in seal.context and "Seals" in seal.context


def _without(data: bytes, name: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info, source.read(info))
    return buffer.getvalue()
