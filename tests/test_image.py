"""Images: every format decoded upright and in a mode OCR reads, pages of a TIFF, and every way an
image can be bad (bombs, truncation, garbage) ending in a readable permanent error.

A recording fake engine stands in for OCR except where the real one must read the result (a
phone photo turned by EXIF, a faxed multi-page TIFF): see tests/test_ocr.py for the engine.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from common.ingestion.chunking import chunk_text
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions, OcrEngine, PageUnit
from common.ingestion.extractors.image import OCR_OFF
from common.ingestion.locations import with_locations
from common.ingestion.ocr.local import LocalOcr
from common.platform.errors import PermanentIngestionError
from tests.mangling import assert_fails_only_cleanly, mangle
from tests.test_ocr import MANUAL, MANUAL_TEXT, FakeOcr, Words, encoded, engine, text_image

__all__ = ["engine"]  # the module-scoped real engine fixture


def extract(
    data: bytes,
    ocr: OcrEngine | None,
    *,
    mime: str | None = None,
    filename: str = "upload.img",
    **limits: Any,
) -> ExtractedText:
    options = ExtractOptions(ocr=ocr, **limits)
    return extract_text(data, mime_type=mime, filename=filename, options=options)


def fails_with(data: bytes, message: str, ocr: OcrEngine | None = None, **limits: Any) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, ocr or FakeOcr(), **limits)
    assert message in str(caught.value), str(caught.value)
    assert "b'" not in str(caught.value)
    return str(caught.value)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels and holds almost none (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def locations(document: ExtractedText) -> list[str | None]:
    chunks = chunk_text(document, max_tokens=4, overlap_tokens=0, tokenizer=Words())
    return [chunk.location for chunk in with_locations(chunks, document)]


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("PNG", {}),
        ("JPEG", {"quality": 90}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("GIF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ],
)
def test_every_image_format_is_decoded_for_ocr_as_one_image(
    kind: str, params: dict[str, object]
) -> None:
    picture = text_image(["format test"])
    fake = FakeOcr(answer=lambda image: "the words")
    document = extract(encoded(picture, kind, **params), fake, filename=f"scan.{kind.lower()}")
    [seen] = fake.seen
    assert seen.size == picture.size and seen.mode in ("L", "RGB")
    assert seen.getpixel((0, 0)) in (255, (255, 255, 255))
    assert document.text == "the words"
    assert document.unit is PageUnit.IMAGE and document.pages[0].ocr
    assert locations(document) == ["image (OCR)"]


def test_images_are_recognised_by_content_whatever_their_name() -> None:
    fake = FakeOcr()
    extract(encoded(text_image(["x"]), "WEBP"), fake, mime="application/octet-stream")
    extract(encoded(text_image(["x"]), "PNG"), fake, filename="report.pdf")
    assert len(fake.seen) == 2


def test_transparent_and_sixteen_bit_images_come_out_dark_on_white() -> None:
    ink = text_image(["ink"])
    rgba = Image.new("RGBA", ink.size, (0, 0, 0, 0))  # transparent black everywhere...
    rgba.putalpha(ink.point(lambda value: 255 - value))  # ...opaque only where the ink is
    deep = Image.fromarray((np.asarray(ink, dtype=np.uint16) * 16).astype(np.uint16))
    assert deep.mode.startswith("I;16")
    for data in (encoded(rgba), encoded(deep, "TIFF")):
        fake = FakeOcr()
        extract(data, fake)
        pixels = np.asarray(fake.seen[0].convert("L"))
        assert pixels[0, 0] == 255 and pixels.min() < 64


def test_animated_gif_is_read_by_its_first_frame_with_a_notice() -> None:
    frames = [text_image([f"frame {n}"]) for n in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    fake = FakeOcr()
    document = extract(buffer.getvalue(), fake)
    assert len(fake.seen) == 1
    assert document.notices == ["the GIF is animated: only its first frame was read"]


def test_tiff_pages_are_pages_capped_by_the_page_limit() -> None:
    pages = [text_image([f"page {n}"], width=300 + 10 * n) for n in range(3)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    fake = FakeOcr(answer=lambda image: f"page of width {image.width}")
    document = extract(buffer.getvalue(), fake, max_pages=2)
    assert [image.width for image in fake.seen] == [300, 310]
    assert document.unit is PageUnit.PAGE and document.paged
    assert document.text == "page of width 300\n\npage of width 310"
    assert document.notices == ["the image has 3 pages; only the first 2 were read (the limit)"]
    assert locations(document) == ["page 1 (OCR)", "page 2 (OCR)"]


def test_jpeg_photo_is_turned_upright_by_its_exif_orientation(engine: LocalOcr) -> None:
    upright = text_image(MANUAL).convert("RGB")
    stored = upright.rotate(90, expand=True)  # the camera stored it sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...and says: turn it a quarter clockwise to show it
    data = encoded(stored, "JPEG", quality=95, exif=exif.tobytes())
    counting = FakeOcr(answer=engine.recognize)
    assert extract(data, counting).text == MANUAL_TEXT
    assert counting.seen[0].size == upright.size


def test_faxed_multi_page_tiff_is_read_page_by_page(engine: LocalOcr) -> None:
    pages = [text_image(["Invoice 4471", "Total due: 120 EUR"]), text_image(["Page two of fax"])]
    bilevel = [page.convert("1") for page in pages]
    buffer = io.BytesIO()
    bilevel[0].save(
        buffer, format="TIFF", save_all=True, append_images=bilevel[1:], compression="group4"
    )
    document = extract(buffer.getvalue(), engine, filename="fax.tif")
    assert document.text == "Invoice 4471\nTotal due: 120 EUR\n\nPage two of fax"
    assert [(page.number, page.ocr) for page in document.pages] == [(1, True), (2, True)]


# --- bad images -------------------------------------------------------------------------------


def test_images_need_ocr_and_say_how_to_turn_it_on() -> None:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(encoded(text_image(["x"])), None)
    assert str(caught.value) == OCR_OFF
    assert "AI_INFRA_PARSER=none" in OCR_OFF


def test_an_image_without_text_fails_saying_ocr_found_nothing() -> None:
    fails_with(
        encoded(Image.new("L", (200, 100), 255)),
        "no text found in the image (OCR recognised nothing)",
        FakeOcr(answer=lambda image: ""),
    )


def test_decompression_bomb_fails_before_any_pixel_is_decoded() -> None:
    message = fails_with(png_header(100_000, 100_000), "10,000,000,000 pixels")
    assert "the limit is 60,000,000 pixels per image (AI_INFRA_MAX_IMAGE_PIXELS)" in message
    message = fails_with(
        png_header(3000, 2000), "6,000,000 pixels (3,000 x 2,000)", max_image_pixels=1_000_000
    )
    assert "the limit is 1,000,000 pixels" in message


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_truncated_image_is_rejected_as_corrupt(keep: float) -> None:
    data = encoded(Image.effect_noise((300, 300), 60))
    fails_with(data[: int(len(data) * keep)], "the image is corrupt or truncated")


def test_bytes_that_only_start_like_an_image_are_rejected() -> None:
    fails_with(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "the image is corrupt")
    fails_with(b"GIF89a" + b"\xff" * 40, "the image is corrupt")


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the damaged TIFF tags
def test_mangled_images_fail_only_with_permanent_errors() -> None:
    """Fuzz: byte flips and cuts either read or raise PermanentIngestionError, never leak."""
    pages = [text_image(["fuzz"], width=200), text_image(["more"], width=220)]
    tiff = io.BytesIO()
    pages[0].save(tiff, format="TIFF", save_all=True, append_images=pages[1:])
    originals = [encoded(pages[0]), encoded(pages[0].convert("RGB"), "JPEG"), tiff.getvalue()]
    assert_fails_only_cleanly(
        lambda n, rng: mangle(originals[n % len(originals)], rng, flips=20, keep=8),
        lambda _, data: extract(data, FakeOcr(), max_image_pixels=4_000_000),
        seed=1604,
        attempts=240,
    )
