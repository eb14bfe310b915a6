"""Images (PNG, JPEG, TIFF, WebP, GIF, BMP) to text by OCR: one page per TIFF frame.

Pillow reads only the header on open, so the pixel count is checked before any pixel is decoded:
a decompression bomb (a few KB claiming gigapixels) fails without costing memory. Frames are
decoded one at a time, when the OCR engine is ready for them. A multi-page TIFF (a fax, a
scanned contract) is a document of pages; an animated GIF or WebP is read by its first frame
(the rest repeat it or animate it, they are not pages). Photos are turned upright by their EXIF
orientation; transparency is laid on white, where dark text stays readable.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from common.ingestion.extractors.base import ExtractOptions, PageUnit, RawDocument, RawPage
from common.ingestion.extractors.headings import strip_marks
from common.ingestion.ocr.pages import recognize_pages
from common.platform.errors import PermanentIngestionError

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

OCR_OFF = (
    "images need OCR, which is turned off (AI_INFRA_PARSER=none); "
    "set AI_INFRA_PARSER=local or gemini and reprocess"
)
# Formats whose frames are pages; in the others extra frames animate the first (GIF, WebP) or
# are previews and stereo views of it (a phone's JPEG, opened as MPO).
_PAGED_FORMATS = frozenset({"TIFF"})
# What Pillow raises on a damaged file (beyond its own OSError "truncated" / "cannot identify").
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,  # TIFF: "Missing dimensions"
    struct.error,
    zlib.error,
)
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """Each page's text as the OCR engine reads it."""
    from PIL import Image

    if options.ocr is None:
        raise PermanentIngestionError(OCR_OFF)
    if options.max_image_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        # Pillow refuses twice its own limit on open; ours is checked right after. Raising its
        # limit (process-wide, only ever up) keeps a bigger configured limit meaningful.
        Image.MAX_IMAGE_PIXELS = options.max_image_pixels
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        found = _BOMB_PIXELS.search(str(exc))
        raise _too_many_pixels(int(found.group(1)) if found else None, options) from exc
    except _DECODE_ERRORS as exc:
        raise _corrupt(exc) from exc
    _check_pixels(image, options)
    frames = _frame_count(image) if image.format in _PAGED_FORMATS else 1
    paged = frames > 1
    count = min(frames, options.max_pages)
    notices = _frame_notices(image, frames, count)
    failed: list[int] = []
    texts = recognize_pages(_loaders(image, count, options, failed), count, options.ocr, options)
    pages = [RawPage(strip_marks(text or ""), ocr=True) for text in texts]
    if failed and len(failed) == count:
        raise PermanentIngestionError("the image is corrupt or truncated: no page could be decoded")
    if failed:
        plural = "s" if len(failed) > 1 else ""
        notices.append(f"page{plural} {_numbers(failed)} of the image could not be decoded")
    return RawDocument(
        pages,
        unit=PageUnit.PAGE if paged else PageUnit.IMAGE,
        paged=True,
        empty_message=(
            f"no text found in the image's {count} pages (OCR recognised nothing)"
            if paged
            else "no text found in the image (OCR recognised nothing)"
        ),
        notices=notices,
    )


def _loaders(
    image: Image, count: int, options: ExtractOptions, failed: list[int]
) -> Iterator[Callable[[], object | None]]:
    def load(index: int) -> Image | None:
        try:
            image.seek(index)
            _check_pixels(image, options)
            return _upright_rgb(image)
        except _DECODE_ERRORS as exc:
            if count == 1:
                raise _corrupt(exc) from exc
            logger.info("undecodable image frame %d: %s", index + 1, type(exc).__name__)
            failed.append(index + 1)
            return None

    for index in range(count):
        yield functools.partial(load, index)


def _upright_rgb(frame: Image) -> Image:
    """The frame decoded, turned by its EXIF orientation, in a mode OCR reads (L or RGB)."""
    import numpy as np
    from PIL import Image, ImageOps

    frame.load()
    upright = ImageOps.exif_transpose(frame)
    if upright.mode in ("L", "RGB"):
        return upright
    if upright.mode in ("I", "F") or upright.mode.startswith("I;16"):
        values = np.asarray(upright, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0 + 255
        return Image.fromarray(scaled.astype(np.uint8), mode="L")
    if upright.mode == "1":
        return upright.convert("L")
    if "A" in upright.mode or "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return upright.convert("RGB")


def _frame_count(image: Image) -> int:
    """Pages of a TIFF (walking its directories decodes no pixels)."""
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except _DECODE_ERRORS:
        return 1  # a damaged tail still has its first page


def _frame_notices(image: Image, frames: int, count: int) -> list[str]:
    if frames > count:
        return [f"the image has {frames} pages; only the first {count} were read (the limit)"]
    if image.format == "MPO":
        return []  # a phone's JPEG: its other frames are previews or a stereo view, not content
    try:
        animated = frames == 1 and bool(getattr(image, "is_animated", False))
    except _DECODE_ERRORS:
        animated = False
    if animated:
        return [f"the {image.format or 'image'} is animated: only its first frame was read"]
    return []


def _check_pixels(image: Image, options: ExtractOptions) -> None:
    width, height = image.size
    if width * height > options.max_image_pixels:
        raise _too_many_pixels(width * height, options, (width, height))


def _too_many_pixels(
    pixels: int | None, options: ExtractOptions, size: tuple[int, int] | None = None
) -> PermanentIngestionError:
    shape = f" ({size[0]:,} x {size[1]:,})" if size else ""
    found = f"{pixels:,} pixels{shape}" if pixels is not None else "too many pixels"
    return PermanentIngestionError(
        f"the image has {found}; the limit is {options.max_image_pixels:,} pixels per image "
        "(AI_INFRA_MAX_IMAGE_PIXELS), which guards against decompression bombs"
    )


def _corrupt(exc: BaseException) -> PermanentIngestionError:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return PermanentIngestionError(
            "the image is corrupt or in an image format this service cannot read"
        )
    detail = str(exc).strip()
    if not detail or len(detail) > 160 or "b'" in detail or "\\x" in detail:
        detail = type(exc).__name__
    return PermanentIngestionError(f"the image is corrupt or truncated: {detail}")


def _numbers(pages: list[int]) -> str:
    return ", ".join(str(page) for page in pages)
