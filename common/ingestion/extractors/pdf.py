"""PDF pages to text with pypdf, mapping every way a PDF can be bad to a readable permanent error.

Encrypted files are opened with the empty user password first: owner-only protection (printing or
copying restrictions) still lets anyone read the text, so such files ingest normally.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zlib
from typing import TYPE_CHECKING, Any

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RawPage
from common.ingestion.extractors.headings import clean_heading, strip_marks
from common.platform.errors import PermanentIngestionError

if TYPE_CHECKING:
    from pypdf import PdfReader

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


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """Every page's text layer, the outline as headings (numbered lines when there is none)."""
    pages, outline = extract_pdf(data, max_pages=options.max_pages)
    return RawDocument(
        [RawPage(strip_marks(text)) for text in pages],
        paged=True,
        form="NFKC",
        empty_message=NO_TEXT,
        outline=outline,
        numbered_headings=True,
    )


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
