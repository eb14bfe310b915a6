"""The scanned corpus of bench/formats.py and its character error rate (CER).

A scan is made the way an office scanner makes one: each page of a real text PDF (the Debian
documentation of bench/quality.py) is rendered to a greyscale image at `dpi` and stored as JPEG
in an image-only PDF (Pillow), same page size, no text layer. The page numbers stay those of the
original, so bench/quality's page labels hold for both versions.

CER of a page: the Levenshtein distance between the OCR text and the original's text layer, both
read by the service's own extraction (`extract_text`, so both are normalised the same way) and
then with every run of whitespace collapsed to one space (line breaks are layout, not
characters) and every run of dot leaders (tables of contents, indexes: `Fonts . . . . 9`, two or
more dots, spaced or not) to one space as well: leaders are layout too, and a recogniser that
keeps a few of a row of forty dots is not wrong about the text. Divided by the length of the
text layer. Reported micro-averaged: the sum of the distances over the sum of the lengths, over
all pages; beside it the raw figure (leaders counted as characters) and the one with reading
order ignored (each side's words sorted first): what is left are misread characters, so the gap
between the two is text read in another order (columns, margin notes, tables).
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.ingest import prose

_SPACE = re.compile(r"\s+")
_LEADERS = re.compile(r"(?:\s*\.){2,}")


def text_pdf(pages: list[str]) -> bytes:
    """A text PDF with one page per string (fpdf2 core font, so Latin-1 text)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(w=0, h=5, text=text)
    return bytes(pdf.output())


# --- images of printed pages --------------------------------------------------------------------
def page_images(data: bytes, dpi: int, *, limit: int | None = None) -> list[Any]:
    """The pages of a PDF rendered as greyscale PIL images, as a scanner would produce them."""
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    try:
        count = len(document) if limit is None else min(limit, len(document))
        images = []
        for index in range(count):
            page = document[index]
            images.append(page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L"))
            page.close()
        return images
    finally:
        document.close()


def _printed(rng: random.Random, pages: int, *, small: bool) -> list[Any]:
    """Printed pages of prose at 200 dpi; --small: a short paragraph, cut to its text (cheap to
    read, for CI)."""
    images = page_images(text_pdf([prose(rng, 40 if small else 250) for _ in range(pages)]), 200)
    if small:
        from PIL import ImageOps

        margin = 40
        images = [
            image.crop(_grown(ImageOps.invert(image).getbbox(), margin, image.size))
            for image in images
        ]
    return images


def _grown(box: Any, margin: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    left, top, right, bottom = box or (0, 0, *size)
    width, height = size
    return (
        max(0, left - margin),
        max(0, top - margin),
        min(width, right + margin),
        min(height, bottom + margin),
    )


def printed_image(fmt: str, *, pages: int = 1, rotate: float = 0.0) -> Callable[..., bytes]:
    def make(rng: random.Random, small: bool) -> bytes:
        images = _printed(rng, min(pages, 2) if small else pages, small=small)
        if rotate:
            images = [im.rotate(rotate, expand=True, fillcolor=255) for im in images]
        buffer = io.BytesIO()
        options: dict[str, Any] = {"quality": 80} if fmt in ("JPEG", "WEBP") else {}
        if fmt == "TIFF":
            options = {"compression": "tiff_lzw", "save_all": True, "append_images": images[1:]}
        images[0].save(buffer, format=fmt, **options)
        return buffer.getvalue()

    return make


def scan_pdf(data: bytes, *, dpi: int = 200, quality: int = 75) -> bytes:
    """An image-only copy of a text PDF: every page a greyscale JPEG at `dpi`."""
    images = page_images(data, dpi)
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="PDF",
        save_all=True,
        append_images=images[1:],
        resolution=float(dpi),
        quality=quality,
    )
    return buffer.getvalue()


def first_pages(data: bytes, count: int) -> bytes:
    """The PDF cut to its first `count` pages (text layer kept): the --small corpus."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(data))
    writer = PdfWriter()
    for page in reader.pages[:count]:
        writer.add_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def page_texts(data: bytes, filename: str, options: Any) -> list[str]:
    """The text of every page as the pipeline extracts it ("" for a page without text)."""
    from common.ingestion.extract import extract_text

    extracted = extract_text(data, mime_type="application/pdf", filename=filename, options=options)
    return [extracted.text[page.char_start : page.char_end] for page in extracted.pages]


def comparable(text: str, *, leaders: bool = False) -> str:
    """Whitespace-insensitive form of a page's text for the CER; dot leaders kept or folded."""
    if not leaders:
        text = _LEADERS.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), one numpy row at a time: the
    insertion term's chain along a row is a running minimum of (cost - column)."""
    if not a or not b:
        return max(len(a), len(b))
    if len(a) < len(b):
        a, b = b, a
    target = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    columns = np.arange(len(b) + 1)
    source = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    previous = columns.copy()
    for index, char in enumerate(source, start=1):
        current = np.empty_like(previous)
        current[0] = index
        current[1:] = np.minimum(previous[1:] + 1, previous[:-1] + (target != char))
        previous = np.minimum.accumulate(current - columns) + columns
    return int(previous[-1])


@dataclass(frozen=True)
class PageError:
    document: str
    page: int
    distance: int
    length: int  # characters of the text layer
    unordered_distance: int  # between the sorted words of both sides
    raw_distance: int  # with dot leaders counted as characters
    raw_length: int

    @property
    def cer(self) -> float:
        return self.distance / self.length if self.length else float(self.distance > 0)


def sorted_words(text: str) -> str:
    return " ".join(sorted(text.split()))


def page_errors(document: str, original: list[str], recognised: list[str]) -> list[PageError]:
    """One CER entry per page of a document (pages missing from either side count as empty)."""
    count = max(len(original), len(recognised))
    original = original + [""] * (count - len(original))
    recognised = recognised + [""] * (count - len(recognised))
    errors = []
    for number, (text_layer, ocr) in enumerate(zip(original, recognised, strict=True), start=1):
        truth, read = comparable(text_layer), comparable(ocr)
        unordered = levenshtein(sorted_words(truth), sorted_words(read))
        raw_truth = comparable(text_layer, leaders=True)
        raw = levenshtein(raw_truth, comparable(ocr, leaders=True))
        distance = levenshtein(truth, read)
        errors.append(
            PageError(document, number, distance, len(truth), unordered, raw, len(raw_truth))
        )
    return errors


def micro_cer(errors: list[PageError], *, ordered: bool = True, raw: bool = False) -> float:
    if raw:
        length = sum(error.raw_length for error in errors)
        distance = sum(error.raw_distance for error in errors)
    else:
        length = sum(error.length for error in errors)
        distance = sum(e.distance if ordered else e.unordered_distance for e in errors)
    return distance / length if length else float("nan")
