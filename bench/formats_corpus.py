"""The per-format corpus of bench/formats.py, made with each format's own library.

Documents of realistic shape: reports of a few pages with headings and a table, decks of a dozen
slides with notes, a table and a grouped shape, workbooks of three sheets of a few hundred rows
with number formats (currency, dates, big integers), record files of a few hundred records, and
images of printed pages (a PNG scan, a slightly rotated JPEG photo, a three-page TIFF fax, a WebP;
bench/formats_scan.py). `big_xlsx` is the bench's largest spreadsheet (50,000 rows, the
`max_sheet_rows` cap). Everything is deterministic (seeded), so a `--data` folder can keep it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.formats_scan import printed_image, text_pdf
from bench.ingest import WORDS, prose

REGIONS = ("North", "South", "East", "West", "Central")
PRODUCTS = ("walnut desk", "oak shelf", "steel bolt", "brass hinge", "teapot", "umbrella")


@dataclass(frozen=True)
class Format:
    name: str  # the table's row label
    extension: str
    mime: str  # the content type an uploader declares
    make: Callable[[random.Random, bool], bytes]  # (rng, small) -> one document
    count: int  # documents at full size (--small: SMALL_COUNT)
    ocr: bool = False


SMALL_COUNT = 2


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(3)).capitalize()


def _paragraphs(rng: random.Random, words: int) -> list[str]:
    return prose(rng, words).split("\n\n")


def _records(rng: random.Random, count: int, start: int = 1) -> list[list[Any]]:
    """Order rows: id, date, region, product, quantity, price, account (a big integer)."""
    base = dt.date(2024, 1, 1)
    return [
        [
            start + n,
            base + dt.timedelta(days=rng.randrange(700)),
            rng.choice(REGIONS),
            rng.choice(PRODUCTS),
            rng.randint(1, 500),
            round(rng.uniform(2, 2500), 2),
            rng.randrange(10**13, 10**14),
        ]
        for n in range(count)
    ]


HEADER = ["Order", "Date", "Region", "Product", "Quantity", "Price", "Account"]


# --- page formats -------------------------------------------------------------------------------
def _pdf(rng: random.Random, small: bool) -> bytes:
    return text_pdf([prose(rng, 120 if small else 450) for _ in range(2 if small else 5)])


def _docx(rng: random.Random, small: bool) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(_title(rng), level=1)
    for _ in range(2 if small else 6):
        document.add_heading(_title(rng), level=2)
        for paragraph in _paragraphs(rng, 80 if small else 300):
            document.add_paragraph(paragraph)
    rows = _records(rng, 5 if small else 25)
    table = document.add_table(rows=1, cols=len(HEADER))
    for cell, name in zip(table.rows[0].cells, HEADER, strict=True):
        cell.text = name
    for row in rows:
        for cell, value in zip(table.add_row().cells, row, strict=True):
            cell.text = str(value)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx(rng: random.Random, small: bool) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for number in range(3 if small else 12):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = _title(rng)
        slide.placeholders[1].text = "\n".join(prose(rng, 12) for _ in range(4))
        slide.notes_slide.notes_text_frame.text = prose(rng, 60)
        if number % 4 == 2:
            rows = _records(rng, 5)
            shape = slide.shapes.add_table(6, 4, Inches(1), Inches(4.5), Inches(8), Inches(2))
            for c, name in enumerate(HEADER[:4]):
                shape.table.cell(0, c).text = name
            for r, row in enumerate(rows, start=1):
                for c, value in enumerate(row[:4]):
                    shape.table.cell(r, c).text = str(value)
        if number % 4 == 3:
            group = slide.shapes.add_group_shape()
            for offset in range(2):
                box = group.shapes.add_textbox(
                    Inches(1 + 4 * offset), Inches(6), Inches(3.5), Inches(1)
                )
                box.text_frame.text = prose(rng, 10)
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


# --- spreadsheets and records -------------------------------------------------------------------
# Date, Price and Account (1-based columns of HEADER): shown as a reader sees them.
_NUMBER_FORMATS = {2: "yyyy-mm-dd", 6: '"$"#,##0.00', 7: "0"}


def _xlsx(rng: random.Random, small: bool) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for sheet_number in range(2 if small else 3):
        sheet = book.create_sheet(f"{rng.choice(REGIONS)} {sheet_number + 1}")
        sheet.append(HEADER)
        for row in _records(rng, 20 if small else 300):
            sheet.append(row)
        for column, number_format in _NUMBER_FORMATS.items():
            for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
                cell.number_format = number_format
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def big_xlsx(rows: int, seed: int = 50) -> bytes:
    """One sheet of `rows` rows (header included), streamed with openpyxl's write-only mode."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    rng = random.Random(seed)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Orders")
    sheet.append(HEADER)
    for record in _records(rng, rows - 1):
        cells = []
        for column, value in enumerate(record, start=1):
            cell = WriteOnlyCell(sheet, value=value)
            if column in _NUMBER_FORMATS:
                cell.number_format = _NUMBER_FORMATS[column]
            cells.append(cell)
        sheet.append(cells)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _delimited(delimiter: str) -> Callable[[random.Random, bool], bytes]:
    def make(rng: random.Random, small: bool) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(
            [r[0], r[1].isoformat(), *r[2:5], f"{r[5]:.2f}", r[6]]
            for r in _records(rng, 30 if small else 500)
        )
        return buffer.getvalue().encode()

    return make


def _record_dicts(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [
        {
            "order": r[0],
            "date": r[1].isoformat(),
            "customer": {"region": r[2], "account": r[6]},
            "items": [{"product": r[3], "quantity": r[4], "price": r[5]}],
            "note": prose(rng, 15),
        }
        for r in _records(rng, count)
    ]


def _json(rng: random.Random, small: bool) -> bytes:
    return json.dumps(_record_dicts(rng, 20 if small else 300), indent=1).encode()


def _jsonl(rng: random.Random, small: bool) -> bytes:
    lines = (json.dumps(record) for record in _record_dicts(rng, 20 if small else 300))
    return ("\n".join(lines) + "\n").encode()


# --- OpenDocument, EPUB, RTF ---------------------------------------------------------------------
def _odf_bytes(document: Any) -> bytes:
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def _odt(rng: random.Random, small: bool) -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    for _ in range(2 if small else 6):
        document.text.addElement(H(outlinelevel=1, text=_title(rng)))
        for paragraph in _paragraphs(rng, 80 if small else 300):
            document.text.addElement(P(text=paragraph))
    return _odf_bytes(document)


def _odp(rng: random.Random, small: bool) -> bytes:
    from odf.draw import Frame, Page, TextBox
    from odf.namespaces import PRESENTATIONNS
    from odf.opendocument import OpenDocumentPresentation
    from odf.style import MasterPage, PageLayout
    from odf.text import P

    document = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    document.masterstyles.addElement(master)
    for _ in range(3 if small else 12):
        page = Page(masterpagename=master)
        for klass, texts, y in (
            ("title", [_title(rng)], "1cm"),
            ("outline", [prose(rng, 12) for _ in range(4)], "5cm"),
        ):
            frame = Frame(width="20cm", height="3cm", x="1cm", y=y)
            frame.setAttrNS(PRESENTATIONNS, "class", klass)
            box = TextBox()
            for text in texts:
                box.addElement(P(text=text))
            frame.addElement(box)
            page.addElement(frame)
        document.presentation.addElement(page)
    return _odf_bytes(document)


def _ods(rng: random.Random, small: bool) -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    document = OpenDocumentSpreadsheet()
    for sheet_number in range(2 if small else 3):
        table = Table(name=f"{rng.choice(REGIONS)} {sheet_number + 1}")
        rows: list[list[Any]] = [HEADER, *_records(rng, 20 if small else 300)]
        for row in rows:
            table_row = TableRow()
            for value in row:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    cell = TableCell(valuetype="float", value=str(value))
                else:
                    cell = TableCell(valuetype="string")
                cell.addElement(P(text=str(value)))
                table_row.addElement(cell)
            table.addElement(table_row)
        document.spreadsheet.addElement(table)
    return _odf_bytes(document)


def _epub(rng: random.Random, small: bool) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier(f"bench-{rng.randrange(10**9)}")
    book.set_title(_title(rng))
    book.set_language("en")
    chapters = []
    for number in range(1, (3 if small else 8) + 1):
        title = _title(rng)
        body = "".join(f"<p>{p}</p>" for p in _paragraphs(rng, 80 if small else 300))
        chapter = epub.EpubHtml(title=title, file_name=f"chapter{number}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>{title}</h1>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    return buffer.getvalue()


def _rtf(rng: random.Random, small: bool) -> bytes:
    parts = ["{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Arial;}}\n"]
    for _ in range(2 if small else 6):
        parts.append(f"\\pard\\b\\fs32 {_title(rng)}\\b0\\fs22\\par\n")
        parts += [f"\\pard {p}\\par\n" for p in _paragraphs(rng, 80 if small else 300)]
    parts.append("}")
    return "".join(parts).encode()


# --- text formats -------------------------------------------------------------------------------
def _txt(rng: random.Random, small: bool) -> bytes:
    return prose(rng, 200 if small else 1500).encode()


def _md(rng: random.Random, small: bool) -> bytes:
    sections = [
        f"## {_title(rng)}\n\n{prose(rng, 80 if small else 300)}" for _ in range(2 if small else 5)
    ]
    return (f"# {_title(rng)}\n\n" + "\n\n".join(sections)).encode()


def _html(rng: random.Random, small: bool) -> bytes:
    sections = "".join(
        f"<h2>{_title(rng)}</h2>"
        + "".join(f"<p>{p}</p>" for p in _paragraphs(rng, 80 if small else 300))
        for _ in range(2 if small else 5)
    )
    return f"<html><body><h1>{_title(rng)}</h1>{sections}</body></html>".encode()


_OOXML = "application/vnd.openxmlformats-officedocument"
_ODF = "application/vnd.oasis.opendocument"
FORMATS: tuple[Format, ...] = (
    Format("txt", ".txt", "text/plain", _txt, 20),
    Format("md", ".md", "text/markdown", _md, 20),
    Format("html", ".html", "text/html", _html, 20),
    Format("pdf", ".pdf", "application/pdf", _pdf, 20),
    Format("docx", ".docx", f"{_OOXML}.wordprocessingml.document", _docx, 20),
    Format("pptx", ".pptx", f"{_OOXML}.presentationml.presentation", _pptx, 20),
    Format("xlsx", ".xlsx", f"{_OOXML}.spreadsheetml.sheet", _xlsx, 20),
    Format("csv", ".csv", "text/csv", _delimited(","), 20),
    Format("tsv", ".tsv", "text/tab-separated-values", _delimited("\t"), 20),
    Format("json", ".json", "application/json", _json, 20),
    Format("jsonl", ".jsonl", "application/x-ndjson", _jsonl, 20),
    Format("odt", ".odt", f"{_ODF}.text", _odt, 20),
    Format("odp", ".odp", f"{_ODF}.presentation", _odp, 20),
    Format("ods", ".ods", f"{_ODF}.spreadsheet", _ods, 20),
    Format("epub", ".epub", "application/epub+zip", _epub, 20),
    Format("rtf", ".rtf", "application/rtf", _rtf, 20),
    # Images are OCR'd, seconds a page: fewer of them.
    Format("png", ".png", "image/png", printed_image("PNG"), 6, ocr=True),
    Format("jpg", ".jpg", "image/jpeg", printed_image("JPEG", rotate=1.5), 6, ocr=True),
    Format("tiff", ".tif", "image/tiff", printed_image("TIFF", pages=3), 3, ocr=True),
    Format("webp", ".webp", "image/webp", printed_image("WEBP"), 3, ocr=True),
)


def documents(fmt: Format, *, small: bool, seed: int = 16) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, content type) of the format's documents (--small: one image each)."""
    rng = random.Random(f"{seed}-{fmt.name}")
    count = (1 if fmt.ocr else SMALL_COUNT) if small else fmt.count
    return [
        (f"{fmt.name}-{n:02d}{fmt.extension}", fmt.make(rng, small), fmt.mime) for n in range(count)
    ]
