"""PDF pages to text with pypdf, mapping every way a PDF can be bad to a readable permanent error.

Encrypted files are opened with the empty user password first: owner-only protection (printing or
copying restrictions) still lets anyone read the text, so such files ingest normally.

A page whose text layer is empty or only whitespace (a scan, a photo, a fax) is rendered with
pdfium at `ExtractOptions.ocr_dpi` (less when that would exceed `max_image_pixels`) and read by
the OCR engine; pages with text keep it and cost nothing more: a text PDF never loads pdfium or
the OCR models. A page pdfium cannot render is left out with a notice, unless no page is left.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import struct
import threading
import zlib
from typing import TYPE_CHECKING, Any

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RawPage
from common.ingestion.extractors.headings import clean_heading, strip_marks
from common.ingestion.ocr.pages import recognize_pages
from common.platform.errors import PermanentIngestionError

if TYPE_CHECKING:
    from pypdf import PdfReader
    from pypdfium2 import PdfDocument

logger = logging.getLogger(__name__)

# pypdf messages sometimes quote raw bytes of the file, which may be document text: cut them.
_BYTES_LITERAL = re.compile(r"""\s*(?<!\w)b['"].*""", re.DOTALL)

# pypdf raises its own errors for most malformed input, but on hostile or damaged files it also
# leaks builtin errors from its parsers (bad numbers, missing keys, truncated structs, deep
# recursion in cyclic object graphs). All of these mean "this file is broken": a retry cannot fix
# them, so they become a permanent error. MemoryError and programming errors are not caught.
_PARSER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes UnicodeDecodeError
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    RecursionError,
    OverflowError,
    ZeroDivisionError,
    struct.error,
    zlib.error,
)


NO_TEXT = "no extractable text (scanned or image-only PDF?); OCR is not supported"
# PDFium is not thread-safe: every call into it, from any thread, holds this lock.
_PDFIUM_LOCK = threading.Lock()


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """Every page's text layer, the outline as headings (numbered lines when there is none);
    pages without a text layer are OCR'd when an engine is given."""
    texts, outline = extract_pdf(data, max_pages=options.max_pages)
    pages = [RawPage(strip_marks(text)) for text in texts]
    blank = [index for index, text in enumerate(texts) if not text.strip()]
    notices: list[str] = []
    empty_message = NO_TEXT
    if blank and options.ocr is not None:
        notices = _recognize_blank_pages(data, pages, blank, options)
        empty_message = (
            "no extractable text: the PDF has no text layer and OCR recognised nothing on its "
            f"{len(pages)} page{'s' if len(pages) > 1 else ''}"
        )
    return RawDocument(
        pages,
        paged=True,
        form="NFKC",
        empty_message=empty_message,
        notices=notices,
        outline=outline,
        numbered_headings=True,
    )


def _recognize_blank_pages(
    data: bytes, pages: list[RawPage], blank: list[int], options: ExtractOptions
) -> list[str]:
    """OCR each page without a text layer in place; the notices (pages that would not render)."""
    assert options.ocr is not None
    failed: list[int] = []
    with _Renderer(data, options) as renderer:
        loaders = (functools.partial(renderer.render, index, failed) for index in blank)
        texts = recognize_pages(loaders, len(blank), options.ocr, options)
        for index, text in zip(blank, texts, strict=True):
            if text and text.strip():
                pages[index] = RawPage(strip_marks(text), ocr=True)
    if not failed:
        return []
    if len(failed) == len(pages):
        raise PermanentIngestionError(
            "the PDF has no text layer and its pages could not be rendered for OCR"
        )
    numbers = ", ".join(str(number) for number in failed)
    return [f"page{'s' if len(failed) > 1 else ''} {numbers} could not be rendered for OCR"]


class _Renderer:
    """Page images for OCR, one at a time, through pdfium (imported only for such pages)."""

    def __init__(self, data: bytes, options: ExtractOptions) -> None:
        self._data = data
        self._dpi = options.ocr_dpi
        self._max_pixels = options.max_image_pixels
        self._document: PdfDocument | None = None

    def __enter__(self) -> _Renderer:
        import pypdfium2 as pdfium

        with _PDFIUM_LOCK:
            try:
                # The empty password opens owner-only protection, as pypdf did.
                self._document = pdfium.PdfDocument(self._data, password="")
            except pdfium.PdfiumError as exc:
                logger.info("pdfium cannot open the PDF: %s", type(exc).__name__)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with _PDFIUM_LOCK:
            if self._document is not None:
                self._document.close()

    def render(self, index: int, failed: list[int]) -> object | None:
        """Page `index` (0-based) as a greyscale PIL image, or None (recorded in `failed`)."""
        import pypdfium2 as pdfium

        with _PDFIUM_LOCK:
            try:
                if self._document is None:
                    raise pdfium.PdfiumError("document not open")
                page = self._document[index]
                try:
                    width, height = page.get_size()
                    bitmap = page.render(scale=self._scale(width, height), grayscale=True)
                    # Shares the bitmap's native buffer, which lives as long as the image.
                    image: object = bitmap.to_pil()
                finally:
                    page.close()
            except (pdfium.PdfiumError, ValueError) as exc:
                logger.info("PDF page %d not rendered: %s", index + 1, type(exc).__name__)
                failed.append(index + 1)
                return None
        return image

    def _scale(self, width: float, height: float) -> float:
        """`ocr_dpi`, lowered so that the page stays within `max_image_pixels`."""
        scale = self._dpi / 72
        if width > 0 and height > 0 and width * height * scale * scale > self._max_pixels:
            scale = 0.99 * math.sqrt(self._max_pixels / (width * height))  # pdfium rounds
        return scale


def extract_pdf_pages(data: bytes, *, max_pages: int) -> list[str]:
    """The raw text of every page, in page order (page N is element N - 1)."""
    return extract_pdf(data, max_pages=max_pages)[0]


def extract_pdf(data: bytes, *, max_pages: int) -> tuple[list[str], list[tuple[int, str, int]]]:
    """The raw text of every page and the document outline (bookmarks) as (level, title, page
    number), in reading order; a PDF without a readable outline has none."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    broken: tuple[type[BaseException], ...] = (PyPdfError, *_PARSER_ERRORS)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            _decrypt_with_empty_password(reader)
        count = len(reader.pages)
    except FileNotDecryptedError as exc:
        raise _encrypted() from exc
    except DependencyError as exc:
        raise PermanentIngestionError(
            f"the PDF uses encryption this service cannot open: {exc}"
        ) from exc
    except NotImplementedError as exc:
        raise _unsupported_feature(exc) from exc
    except broken as exc:
        raise _corrupt(exc) from exc
    if count > max_pages:
        raise PermanentIngestionError(
            f"the PDF has {count} pages; the limit is {max_pages} pages per document"
        )
    pages: list[str] = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            pages.append(page.extract_text())
        except NotImplementedError as exc:
            raise _unsupported_feature(exc, page=number) from exc
        except broken as exc:
            raise _corrupt(exc, page=number) from exc
    return pages, _outline(reader, broken)


def _outline(
    reader: PdfReader, broken: tuple[type[BaseException], ...]
) -> list[tuple[int, str, int]]:
    """Bookmarks are optional metadata: a damaged outline costs the headings, not the file."""
    entries: list[tuple[int, str, int]] = []

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            page = reader.get_destination_page_number(item)
            title = clean_heading(str(item.title or ""))
            if page is not None and page >= 0 and title:
                entries.append((level, title, page + 1))

    failures: tuple[type[BaseException], ...] = (*broken, NotImplementedError)
    try:
        walk(reader.outline, 1)
    except failures as exc:
        logger.info("unreadable PDF outline: %s", type(exc).__name__)
        return []
    return entries


def _decrypt_with_empty_password(reader: PdfReader) -> None:
    from pypdf import PasswordType

    if reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise _encrypted()


def _encrypted() -> PermanentIngestionError:
    return PermanentIngestionError(
        "the PDF is encrypted with a password; upload an unencrypted copy"
    )


def _unsupported_feature(
    exc: NotImplementedError, *, page: int | None = None
) -> PermanentIngestionError:
    """pypdf raises NotImplementedError for stream filters and features it cannot decode."""
    where = f" (page {page})" if page is not None else ""
    detail = _detail(exc) or "unsupported feature"
    return PermanentIngestionError(f"the PDF uses a feature that cannot be read{where}: {detail}")


def _corrupt(exc: BaseException, *, page: int | None = None) -> PermanentIngestionError:
    where = f" (page {page})" if page is not None else ""
    logger.info("unreadable PDF%s: %s", where, type(exc).__name__)
    detail = _detail(exc) or type(exc).__name__
    return PermanentIngestionError(f"the PDF is corrupt or truncated{where}: {detail}")


def _detail(exc: BaseException) -> str:
    """The parser's own words, without quoted file bytes, at most 160 characters."""
    detail = _BYTES_LITERAL.sub("", str(exc)).strip().rstrip(":@ ")
    return detail if len(detail) <= 160 else detail[:159] + "\u2026"
