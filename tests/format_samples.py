"""One small real file of every format, each made with the format's own library and holding one
fact no other sample has, so a question about the fact must find that file and no other.

Used by the end-to-end test of every upload path (tests/test_formats_pipeline.py) and by
bench/formats.py's small corpus. Images render their text with Pillow's built-in TrueType font,
so no system font is needed.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class Sample:
    filename: str
    content_type: str
    data: bytes
    question: str
    answer: str  # words the chunk that answers the question contains
    location: str | None  # the citation's location for that chunk


def text_image(lines: list[str], *, width: int = 1400, size: int = 40) -> Image.Image:
    """A white page with black text lines, as a scan or a photo of a printed page would be."""
    font = ImageFont.load_default(size=size)
    image = Image.new("L", (width, 120 + len(lines) * size * 2), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((60, 60 + number * size * 2), line, font=font, fill=0)
    return image


def _png(lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    text_image(lines).save(buffer, format="PNG")
    return buffer.getvalue()


def _tiff(pages: list[list[str]]) -> bytes:
    images = [text_image(lines) for lines in pages]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="TIFF", save_all=True, append_images=images[1:], compression="tiff_lzw"
    )
    return buffer.getvalue()


def _scanned_pdf(pages: list[list[str]]) -> bytes:
    images = [text_image(lines).convert("RGB") for lines in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return buffer.getvalue()


def _pdf(pages: list[str]) -> bytes:
    from tests.pdfs import make_pdf

    return make_pdf(pages)


def _docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx(slides: list[tuple[str, str, str]]) -> bytes:
    """(title, body, speaker notes) per slide."""
    from pptx import Presentation

    deck = Presentation()
    for title, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        slide.notes_slide.notes_text_frame.text = notes
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _xlsx(sheets: dict[str, list[list[object]]], formats: dict[str, str]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        for cell_name, number_format in formats.items():
            sheet[cell_name].number_format = number_format
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _odf(kind: str, build: Callable[[object], None]) -> bytes:
    from odf import opendocument

    document = getattr(opendocument, f"Open{kind}")()
    build(document)
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def _odt(paragraphs: list[str]) -> bytes:
    from odf.text import H, P

    def build(document: object) -> None:
        document.text.addElement(H(outlinelevel=1, text="Field notes"))  # type: ignore[attr-defined]
        for paragraph in paragraphs:
            document.text.addElement(P(text=paragraph))  # type: ignore[attr-defined]

    return _odf("DocumentText", build)


def _ods(name: str, rows: list[list[str]]) -> bytes:
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    def build(document: object) -> None:
        table = Table(name=name)
        for row in rows:
            table_row = TableRow()
            for value in row:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=value))
                table_row.addElement(cell)
            table.addElement(table_row)
        document.spreadsheet.addElement(table)  # type: ignore[attr-defined]

    return _odf("DocumentSpreadsheet", build)


def _odp(slides: list[tuple[str, str]]) -> bytes:
    from odf.draw import Frame, Page, TextBox
    from odf.namespaces import PRESENTATIONNS
    from odf.style import MasterPage, PageLayout
    from odf.text import P

    def build(document: object) -> None:
        layout = PageLayout(name="layout")
        document.automaticstyles.addElement(layout)  # type: ignore[attr-defined]
        master = MasterPage(name="master", pagelayoutname=layout)
        document.masterstyles.addElement(master)  # type: ignore[attr-defined]
        for title, body in slides:
            page = Page(masterpagename=master)
            for klass, text, y in (("title", title, "1cm"), ("outline", body, "5cm")):
                frame = Frame(width="20cm", height="3cm", x="1cm", y=y)
                frame.setAttrNS(PRESENTATIONNS, "class", klass)
                box = TextBox()
                box.addElement(P(text=text))
                frame.addElement(box)
                page.addElement(frame)
            document.presentation.addElement(page)  # type: ignore[attr-defined]

    return _odf("DocumentPresentation", build)


def _epub(chapters: list[tuple[str, str]]) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("ai-infra-sample")
    book.set_title("Sample book")
    book.set_language("en")
    items = []
    for number, (title, body) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=title, file_name=f"chapter{number}.xhtml", lang="en")
        item.content = f"<html><body><h1>{title}</h1><p>{body}</p></body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    return buffer.getvalue()


def _rtf(paragraphs: list[str]) -> bytes:
    body = "".join(f"\\pard {paragraph}\\par\n" for paragraph in paragraphs)
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Arial;}}\n" + body + "}").encode()


def _delimited(rows: list[list[str]], delimiter: str) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


FILLER = "This paragraph describes routine matters of the office in ordinary words."


def samples() -> list[Sample]:
    """Every format once; each answer is a fact of its own (see the module docstring)."""
    filler = [f"{FILLER} Item {n}." for n in range(3)]
    return [
        Sample(
            "report.pdf",
            "application/pdf",
            _pdf(["Facilities report", "The boiler in hall B runs at 87 degrees on weekdays."]),
            "What temperature does the boiler in hall B run at?",
            "87 degrees",
            "pages 1-2",  # both short pages fit one chunk
        ),
        Sample(
            "memo.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            _docx([*filler, "The copper valve in the cellar is replaced every 18 months."]),
            "How often is the copper valve in the cellar replaced?",
            "18 months",
            None,
        ),
        Sample(
            "deck.pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            _pptx(
                [
                    ("Quarterly review", "Revenue grew in every region.", "Thank the team."),
                    (
                        "Fleet",
                        "The fleet has nine vans.",
                        "The violet van needs new tyres before March.",
                    ),
                ]
            ),
            "Which van needs new tyres before March?",
            "violet van",
            "slide 2",
        ),
        Sample(
            "prices.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            _xlsx(
                {
                    "Notes": [["Owner", "Topic"], ["Ada", "pricing"]],
                    "Prices": [
                        ["Product", "Price"],
                        ["Walnut desk", 1599.99],
                        ["Oak shelf", 249.5],
                    ],
                },
                {"B2": '"$"#,##0.00', "B3": '"$"#,##0.00'},
            ),
            "What does the walnut desk cost?",
            "$1,599.99",
            "sheet Prices, rows 2-3",
        ),
        Sample(
            "minutes.odt",
            "application/vnd.oasis.opendocument.text",
            _odt([*filler, "The lighthouse keeper logs the fog horn tests on Fridays."]),
            "When does the lighthouse keeper log the fog horn tests?",
            "Fridays",
            None,
        ),
        Sample(
            "plan.odp",
            "application/vnd.oasis.opendocument.presentation",
            _odp([("Kickoff", "Welcome."), ("Garden", "The greenhouse holds 300 tomato plants.")]),
            "How many tomato plants does the greenhouse hold?",
            "300 tomato plants",
            "slide 2",
        ),
        Sample(
            "stock.ods",
            "application/vnd.oasis.opendocument.spreadsheet",
            _ods("Stock", [["Part", "Bin"], ["Brass hinge", "Bin 44"], ["Steel bolt", "Bin 7"]]),
            "Which bin holds the brass hinge?",
            "Bin 44",
            "sheet Stock, rows 2-3",
        ),
        Sample(
            "guide.epub",
            "application/epub+zip",
            _epub(
                [
                    ("Arrival", " ".join(filler)),
                    ("Departure", "The night ferry to the island leaves at 23:40."),
                ]
            ),
            "When does the night ferry to the island leave?",
            "23:40",
            "chapter 2",  # the navigation page is not a chapter
        ),
        Sample(
            "letter.rtf",
            "application/rtf",
            _rtf(["Dear grower,", "The orchard ships 4000 crates of cider apples each autumn."]),
            "How many crates of cider apples does the orchard ship?",
            "4000 crates",
            None,
        ),
        Sample(
            "staff.csv",
            "text/csv",
            _delimited(
                [["Name", "Desk"], ["Ines Moreau", "desk 12"], ["Tomas Berg", "desk 31"]], ","
            ),
            "Which desk does Tomas Berg sit at?",
            "desk 31",
            "rows 2-3",
        ),
        Sample(
            "rooms.tsv",
            "text/tab-separated-values",
            _delimited([["Room", "Seats"], ["Kelvin hall", "120 seats"]], "\t"),
            "How many seats does Kelvin hall have?",
            "120 seats",
            "row 2",
        ),
        Sample(
            "orders.json",
            "application/json",
            json.dumps(
                [
                    {"order": "A-100", "item": {"name": "teapot", "colour": "green"}},
                    {"order": "A-101", "item": {"name": "umbrella", "colour": "amber"}},
                ]
            ).encode(),
            "What colour is the umbrella ordered?",
            "amber",
            "records 1-2",  # two small records share a chunk, neither cut
        ),
        Sample(
            "events.jsonl",
            "application/x-ndjson",
            b'{"event": "login", "user": "kim"}\n'
            b'{"event": "badge swipe", "door": "loading dock east"}\n',
            "Which door was the badge swipe at?",
            "loading dock east",
            "records 1-2",
        ),
        Sample(
            "whiteboard.png",
            "image/png",
            _png(["Sprint goal: ship the parcel tracker", "Demo on Thursday at noon"]),
            "What is the sprint goal?",
            "parcel tracker",
            "image (OCR)",
        ),
        Sample(
            "fax.tif",
            "image/tiff",
            _tiff(
                [
                    ["Fax cover page", "From the port authority"],
                    ["Berth 9 is closed for dredging", "until the end of May"],
                ]
            ),
            "Which berth is closed for dredging?",
            "Berth 9",
            "pages 1-2 (OCR)",  # short pages share a chunk
        ),
        Sample(
            "contract-scan.pdf",
            "application/pdf",
            _scanned_pdf(
                [
                    ["Service contract", "between Northwind and Contoso"],
                    ["The notice period is ninety days", "for either party"],
                ]
            ),
            "What is the notice period of the service contract?",
            "ninety days",
            "pages 1-2 (OCR)",  # short pages share a chunk
        ),
    ]


def zip_of(files: dict[str, bytes]) -> bytes:
    """A plain zip archive (not a format the service reads)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
