"""Generate test PDFs in memory with fpdf2, so no binary fixtures live in the repository.

Every helper returns the PDF's bytes. Text goes through fpdf2's core Helvetica font, so it must be
Latin-1 (the helpers raise ValueError otherwise rather than writing replacement glyphs).
Other engineers import these for end-to-end tests: keep the signatures stable.
"""

from __future__ import annotations

import io

from fpdf import FPDF
from fpdf.enums import EncryptionMethod

__all__ = [
    "make_corrupt_pdf",
    "make_encrypted_pdf",
    "make_pdf",
    "make_textless_pdf",
    "make_truncated_pdf",
    "page_text",
]


def page_text(number: int, words: int = 60) -> str:
    """Deterministic, page-unique prose: every sentence names its page, so tests can find it."""
    sentences = []
    for i in range(max(1, words // 10)):
        sentences.append(
            f"Page {number} sentence {i} talks about topic{number}x{i} in plain words here."
        )
    return " ".join(sentences)


def _new_document() -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_font("Helvetica", size=11)
    pdf.set_creator("ai-infra tests")
    return pdf


def _write_page(pdf: FPDF, text: str) -> None:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError("test PDF text must be Latin-1 (core fonts only)") from exc
    pdf.add_page()
    # multi_cell wraps long lines; paragraphs ("\n\n") stay as blank lines.
    pdf.multi_cell(w=0, h=5, text=text)


def _build(pages: list[str], *, encrypt: tuple[str, str] | None = None) -> bytes:
    pdf = _new_document()
    if encrypt is not None:
        owner, user = encrypt
        pdf.set_encryption(
            owner_password=owner,
            user_password=user,
            encryption_method=EncryptionMethod.AES_128,
        )
    for text in pages:
        _write_page(pdf, text)
    return bytes(pdf.output())


def make_pdf(pages: list[str]) -> bytes:
    """A text PDF with one page per string, in order (page N holds `pages[N - 1]`)."""
    if not pages:
        raise ValueError("a PDF needs at least one page")
    return _build(pages)


def make_encrypted_pdf(
    pages: list[str], *, user_password: str = "secret", owner_password: str = "owner"
) -> bytes:
    """An AES-128 encrypted PDF.

    With a non-empty `user_password` nobody can open it without the password; with
    `user_password=""` it is owner-only protected (opens without a password, must still extract).
    """
    if not pages:
        raise ValueError("a PDF needs at least one page")
    return _build(pages, encrypt=(owner_password, user_password))


def _grey_png(width: int = 64, height: int = 64) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), (128, 128, 128))
    for x in range(width):
        image.putpixel((x, x % height), (0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_textless_pdf(pages: int = 2, *, kind: str = "image") -> bytes:
    """A PDF with no text layer, like a scan: `kind` is "image", "drawing" or "blank" pages."""
    if kind not in {"image", "drawing", "blank"}:
        raise ValueError(f"unknown kind {kind!r}")
    pdf = _new_document()
    png = _grey_png() if kind == "image" else b""
    for _ in range(max(1, pages)):
        pdf.add_page()
        if kind == "image":
            pdf.image(io.BytesIO(png), x=10, y=10, w=180)
        elif kind == "drawing":
            pdf.rect(20, 20, 100, 60, style="DF")
            pdf.line(10, 100, 200, 280)
    return bytes(pdf.output())


def make_truncated_pdf(pages: list[str] | None = None, *, keep: float = 0.5) -> bytes:
    """A valid PDF cut short (lost its cross-reference table, trailer and catalog)."""
    data = make_pdf(pages or [page_text(1), page_text(2)])
    return data[: max(8, int(len(data) * keep))]


def make_corrupt_pdf() -> bytes:
    """Bytes that start like a PDF and then are garbage."""
    return b"%PDF-1.7\n" + bytes((i * 37 + 11) % 256 for i in range(2048)) + b"\n%%EOF\n"
