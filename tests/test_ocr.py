"""OCR: page layout, turned pages, scanned and mixed PDFs, the time budget, the Gemini parser
against the Vertex AI stand-in, and scans through the real pipeline.

Page images are drawn in the test with Pillow's own scalable font (no system fonts needed) and
kept small: a recognition costs a fraction of a second of CPU each, the models a few seconds to
load once. Most tests use a recording fake engine; the real one reads about a dozen small images
in the whole file.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from common.ingestion.chunking import chunk_text
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions, OcrEngine
from common.ingestion.extractors.pdf import NO_TEXT
from common.ingestion.locations import with_locations
from common.ingestion.ocr import get_ocr_engine
from common.ingestion.ocr.gemini import MAX_IMAGE_BYTES, GeminiOcr, encode_page
from common.ingestion.ocr.layout import Box, page_text
from common.ingestion.ocr.local import LocalOcr, _upright_turn
from common.ingestion.ocr.typography import latin_typography
from common.localstack.vertex_images import MAX_INLINE_IMAGE_BYTES
from common.localstack.vertex_standin import ModelStandin
from common.platform.config import ParserProvider, Settings
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus
from tests import pdfs
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.test_ingestion import chunks_of, finalize, upload, wait_for_document

MANUAL = ["Replace the seal of pump XK-4471B", "every 500 hours of service.", "", "Torque: 40 Nm."]
MANUAL_TEXT = "Replace the seal of pump XK-4471B\nevery 500 hours of service.\n\nTorque: 40 Nm."
_FONT_SIZE = 30


def text_image(lines: list[str], width: int = 720) -> Image.Image:
    """Black text on white, one line per string ("" leaves a paragraph gap)."""
    font = ImageFont.load_default(size=_FONT_SIZE)
    step = int(_FONT_SIZE * 1.5)
    image = Image.new("L", (width, 2 * step + step * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((30, step + number * step), line, fill=0, font=font)
    return image


def encoded(image: Image.Image, kind: str = "PNG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **params)
    return buffer.getvalue()


def scanned_pdf(pages: Sequence[Image.Image | str], dpi: int = 150) -> bytes:
    """A PDF of text pages (str) and image-only pages the size of their image at `dpi`."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for page in pages:
        if isinstance(page, str):
            pdf.add_page(format="A4")
            pdf.multi_cell(w=0, h=5, text=page)
            continue
        size = (page.width * 25.4 / dpi, page.height * 25.4 / dpi)
        pdf.add_page(format=size)
        pdf.image(io.BytesIO(encoded(page)), x=0, y=0, w=size[0], h=size[1])
    return bytes(pdf.output())


@dataclass
class FakeOcr:
    """An engine that records what it is given and answers from a script."""

    answer: Callable[[Image.Image], str] = lambda image: f"text of a {image.width}px page"
    name: str = "fake"
    concurrency: int = 1
    seen: list[Image.Image] = field(default_factory=list)

    def recognize(self, image: object) -> str:
        assert isinstance(image, Image.Image)
        self.seen.append(image)
        return self.answer(image)


@pytest.fixture(scope="module")
def engine() -> LocalOcr:
    """The real local engine, its models loaded once for the module."""
    return LocalOcr()


def extract(
    data: bytes, engine: OcrEngine | None, mime: str = "application/pdf", **limits: Any
) -> ExtractedText:
    options = ExtractOptions(ocr=engine, **limits)
    return extract_text(data, mime_type=mime, filename="scan", options=options)


class Words:
    """A tokenizer for chunking in tests: one token a word."""

    def count_tokens(self, text: str) -> int:
        return len(text.split())


# --- layout (no OCR) --------------------------------------------------------------------------


def box(x0: float, y0: float, x1: float, y1: float, text: str) -> Box:
    return Box(x0, y0, x1, y1, text)


def test_boxes_become_lines_top_to_bottom_and_words_left_to_right() -> None:
    boxes = [
        box(300, 12, 500, 38, "world"),
        box(10, 60, 200, 90, "second"),
        box(10, 10, 280, 40, "hello"),
        box(220, 62, 400, 88, "line"),
    ]
    assert page_text(boxes) == "hello world\nsecond line"


def test_a_gap_wider_than_a_line_starts_a_paragraph() -> None:
    boxes = [box(10, 10, 300, 40, "one"), box(10, 50, 300, 80, "two"), box(10, 130, 300, 160, "3")]
    assert page_text(boxes) == "one\ntwo\n\n3"


def test_two_columns_are_read_one_after_the_other_between_full_width_lines() -> None:
    title = [box(10, 0, 990, 30, "Title across both columns")]
    left = [box(10, 50 + 35 * n, 480, 80 + 35 * n, f"left {n}") for n in range(6)]
    right = [box(520, 50 + 35 * n, 990, 80 + 35 * n, f"right {n}") for n in range(6)]
    footer = [box(10, 300, 990, 330, "Footer across")]
    text = page_text(footer + right + left + title)
    assert text == "\n\n".join(
        [
            "Title across both columns",
            "\n".join(f"left {n}" for n in range(6)),
            "\n".join(f"right {n}" for n in range(6)),
            "Footer across",
        ]
    )


def test_columns_of_lines_cut_into_several_boxes_are_still_columns() -> None:
    # A two-column code listing: the engine cuts each line at its wide space after `%%%`, so
    # most boxes are short; the lines they make fill their column.
    boxes = []
    for n in range(8):
        for x, side in ((10, "left"), (520, "right")):
            boxes += [box(x, 40 * n, x + 40, 40 * n + 30, "%%%")]
            if n % 3:
                boxes += [box(x + 80, 40 * n, x + 440, 40 * n + 30, f"{side} {n}")]
    lines = [line for line in page_text(boxes).splitlines() if line]
    assert lines == [
        f"%%% {side} {n}" if n % 3 else "%%%" for side in ("left", "right") for n in range(8)
    ]


def test_each_band_between_wide_lines_has_its_own_columns() -> None:
    # A change history in two columns, a full-width heading, then an index in three columns.
    boxes = [box(10, 0, 990, 30, "Change History")]
    for n in range(6):
        y = 40 + 35 * n
        boxes += [box(10, y, 470, y + 30, f"history left {n}")]
        boxes += [box(530, y, 990, y + 30, f"history right {n}")]
    boxes += [box(10, 260, 990, 290, "Index: numbers in italic refer to the page of the entry")]
    for n in range(6):
        y = 300 + 35 * n
        for x, column in ((10, "a"), (345, "b"), (680, "c")):
            boxes += [box(x, y, x + 300, y + 30, f"index {column}{n}")]
    lines = [line for line in page_text(boxes).splitlines() if line]
    assert lines == [
        "Change History",
        *(f"history left {n}" for n in range(6)),
        *(f"history right {n}" for n in range(6)),
        "Index: numbers in italic refer to the page of the entry",
        *(f"index {column}{n}" for column in "abc" for n in range(6)),
    ]


def test_a_long_listing_of_mostly_short_lines_is_still_two_columns() -> None:
    # Two columns of a code listing: most lines are a lone `%` or `}`, a quarter are long.
    boxes = []
    for n in range(24):
        y = 30 * n
        width = 440 if n % 4 == 0 else 30
        boxes += [
            box(10, y, 10 + width, y + 24, f"L{n}"),
            box(520, y, 520 + width, y + 24, f"R{n}"),
        ]
    lines = [line for line in page_text(boxes).splitlines() if line]
    assert lines == [f"L{n}" for n in range(24)] + [f"R{n}" for n in range(24)]


def test_a_table_of_a_narrow_and_a_wide_column_is_read_row_by_row() -> None:
    # Its cells fill their columns, but text columns are never a third and two thirds.
    rows = []
    for n in range(8):
        rows += [box(10, 40 * n, 290, 40 * n + 30, f"option{n}")]
        rows += [box(330, 40 * n, 790, 40 * n + 30, f"what option {n} does")]
    assert page_text(rows).splitlines() == [f"option{n} what option {n} does" for n in range(8)]


def test_a_table_of_short_cells_is_read_row_by_row() -> None:
    rows = []
    for n in range(6):
        rows += [box(10, 40 * n, 90, 40 * n + 30, f"key{n}")]
        rows += [box(600, 40 * n, 700, 40 * n + 30, f"value{n}")]
    assert page_text(rows).splitlines() == [f"key{n} value{n}" for n in range(6)]


def test_classifier_votes_say_how_to_turn_the_page_upright() -> None:
    wide = [[0, 0], [100, 0], [100, 20], [0, 20]]
    tall = [[0, 0], [20, 0], [20, 100], [0, 100]]
    assert _upright_turn([wide] * 4, [("0", 0.9)] * 3 + [("180", 0.9)]) == 0
    assert _upright_turn([wide] * 4, [("180", 0.95)] * 4) == 180
    assert _upright_turn([tall] * 3, [("0", 0.9)] * 3) == 90
    assert _upright_turn([tall] * 3, [("180", 0.9)] * 3) == 270
    assert _upright_turn([wide, wide], [("0", 0.9), ("180", 0.9)]) == 0  # no clear majority


# --- the local engine -------------------------------------------------------------------------


def test_image_text_is_recognised_in_reading_order_with_paragraphs(engine: LocalOcr) -> None:
    assert engine.recognize(text_image(MANUAL)) == MANUAL_TEXT


@pytest.mark.parametrize("degrees", [90, 180])
def test_pages_scanned_sideways_or_upside_down_are_read_upright(
    engine: LocalOcr, degrees: int
) -> None:
    turned = text_image(MANUAL).rotate(degrees, expand=True)
    assert engine.recognize(turned) == MANUAL_TEXT


def test_a_page_without_text_reads_as_nothing(engine: LocalOcr) -> None:
    blank = Image.new("L", (600, 400), 255)
    ImageDraw.Draw(blank).rectangle((100, 100, 300, 250), outline=0, width=3)
    assert engine.recognize(blank) == ""
    assert engine.recognize(Image.new("RGB", (4, 4))) == ""


def test_the_parser_setting_picks_the_engine_once_per_process() -> None:
    local = Settings(parser=ParserProvider.LOCAL)
    assert get_ocr_engine(local) is get_ocr_engine(local)
    assert isinstance(get_ocr_engine(local), LocalOcr)
    assert isinstance(get_ocr_engine(Settings(parser=ParserProvider.GEMINI)), GeminiOcr)
    assert get_ocr_engine(Settings(parser=ParserProvider.NONE)) is None


# --- scanned and mixed PDFs -------------------------------------------------------------------


def test_scanned_pdf_pages_are_rendered_and_recognised(engine: LocalOcr) -> None:
    document = extract(scanned_pdf([text_image(MANUAL)]), engine)
    assert document.text == MANUAL_TEXT
    assert [(page.number, page.ocr) for page in document.pages] == [(1, True)]


def test_mixed_pdf_reads_only_its_textless_page_and_cites_it_as_ocr(engine: LocalOcr) -> None:
    counting = FakeOcr(answer=engine.recognize)
    text_pages = [pdfs.page_text(1), pdfs.page_text(2)]
    data = scanned_pdf([*text_pages, text_image(MANUAL)])
    document = extract(data, counting)
    assert len(counting.seen) == 1
    assert [(page.number, page.ocr) for page in document.pages] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert document.text.endswith(MANUAL_TEXT)
    chunks = chunk_text(document, max_tokens=40, overlap_tokens=0, tokenizer=Words())
    located = with_locations(chunks, document)
    scanned = [chunk for chunk in located if "XK-4471B" in chunk.content]
    assert scanned and scanned[-1].location in ("page 3 (OCR)", "pages 2-3 (OCR)")
    assert located[0].location == "page 1"


def test_text_pdf_never_loads_pdfium_or_the_ocr_models() -> None:
    """Run apart: this process may have imported both already."""
    script = (
        "import sys\n"
        "from common.ingestion.extract import extract_text\n"
        "from common.ingestion.extractors.base import ExtractOptions\n"
        "from common.ingestion.ocr.local import LocalOcr\n"
        "from tests.pdfs import make_pdf, page_text\n"
        "data = make_pdf([page_text(n) for n in range(1, 31)])\n"
        "options = ExtractOptions(ocr=LocalOcr())\n"
        "text = extract_text(data, mime_type=None, filename='a.pdf', options=options)\n"
        "assert not any(page.ocr for page in text.pages)\n"
        "print(sorted(m for m in ('pypdfium2', 'rapidocr', 'onnxruntime') if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert run.stdout.strip() == "[]"


def test_image_only_pdf_without_ocr_keeps_the_old_message() -> None:
    with pytest.raises(PermanentIngestionError, match="OCR is not supported"):
        extract(pdfs.make_textless_pdf(2), None)
    assert NO_TEXT.endswith("OCR is not supported")


def test_scanned_pdf_where_ocr_finds_nothing_says_so() -> None:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(pdfs.make_textless_pdf(2), FakeOcr(answer=lambda image: ""))
    assert str(caught.value) == (
        "no extractable text: the PDF has no text layer and OCR recognised nothing on its 2 pages"
    )


def test_huge_pages_are_rendered_smaller_instead_of_failing() -> None:
    fake = FakeOcr()
    poster = Image.new("L", (1500, 1000), 255)
    document = extract(scanned_pdf([poster], dpi=10), fake, max_image_pixels=2_000_000)
    [page] = fake.seen
    assert page.width * page.height <= 2_000_000
    assert page.width > 1000  # 150 x 100 inches at 200 dpi would be 600 M pixels
    assert document.pages[0].ocr


def test_owner_protected_scanned_pdf_is_rendered_with_the_empty_password() -> None:
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="")
    pdf.add_page(format=(120, 40))
    pdf.image(io.BytesIO(encoded(text_image(["sealed"]))), x=0, y=0, w=120, h=40)
    fake = FakeOcr(answer=lambda image: "sealed page")
    assert extract(bytes(pdf.output()), fake).text == "sealed page"


def test_a_page_pdfium_cannot_render_is_a_notice_when_others_have_text() -> None:
    from common.ingestion.extractors import pdf as pdf_module

    data = scanned_pdf([pdfs.page_text(1), Image.new("L", (300, 100), 255)])
    original = pdf_module._Renderer._scale
    try:
        pdf_module._Renderer._scale = lambda self, width, height: -1.0  # type: ignore[method-assign]
        document = extract(data, FakeOcr())
    finally:
        pdf_module._Renderer._scale = original  # type: ignore[method-assign]
    assert document.notices == ["page 2 could not be rendered for OCR"]
    assert document.text.startswith("Page 1 sentence 0")


# --- time budget and checkpoints ----------------------------------------------------------------


def test_ocr_that_cannot_finish_in_the_job_budget_fails_early_naming_the_setting() -> None:
    def slow(image: Image.Image) -> str:
        time.sleep(0.05)  # a page's recognition time, not a wait for a condition
        return "page"

    fake = FakeOcr(answer=slow)
    data = pdfs.make_textless_pdf(40)
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, fake, deadline=time.monotonic() + 0.5, ocr_dpi=72)
    message = str(caught.value)
    assert message.startswith("OCR of 40 pages exceeds the job's time budget")
    assert "AI_INFRA_JOB_TIMEOUT_SECONDS" in message
    assert len(fake.seen) < 10  # predicted from the first pages, not run into the timeout


def test_checkpoint_runs_between_ocr_pages_and_can_stop_them() -> None:
    calls: list[int] = []

    class StopError(Exception):
        pass

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise StopError

    fake = FakeOcr()
    with pytest.raises(StopError):
        extract(pdfs.make_textless_pdf(5), fake, checkpoint=checkpoint, ocr_dpi=72)
    assert len(fake.seen) == 2


def test_a_remote_engine_reads_pages_concurrently_in_order() -> None:
    fake = FakeOcr(answer=lambda image: str(image.width), concurrency=3)
    pages = [Image.new("L", (width, 100), 255) for width in (200, 300, 400, 500, 600)]
    document = extract(scanned_pdf(pages, dpi=72), fake)
    widths = [int(text) for text in document.text.split("\n\n")]
    assert len(widths) == 5 and widths == sorted(widths)


# --- Gemini through the Vertex AI stand-in ------------------------------------------------------


def gemini(standin: ModelStandin, waits: list[float] | None = None) -> GeminiOcr:
    settings = standin.settings(parser="gemini", model_retry_base_seconds=1.0)
    return GeminiOcr(settings, sleep=(waits if waits is not None else []).append)


def test_gemini_transcribes_a_page_and_rate_limits_are_retried(
    vertex_standin: ModelStandin,
) -> None:
    waits: list[float] = []
    vertex_standin.fail_next(1, 429, retry_after=2)
    text = gemini(vertex_standin, waits).recognize(text_image(MANUAL))
    assert text == MANUAL_TEXT  # the stand-in reads the image with the local engine
    assert waits == [2.0]
    [refused, answered] = vertex_standin.requests_to("generateContent")
    assert refused.failed_with == 429 and answered.failed_with is None
    [image, prompt] = answered.body["contents"][0]["parts"]
    assert "image/png" in image["inlineData"].values()
    assert "Transcribe" in prompt["text"]
    assert list(answered.body["generationConfig"]["thinkingConfig"].values()) == [0]


def test_gemini_refusal_fails_the_document_with_the_api_reason(
    vertex_standin: ModelStandin,
) -> None:
    vertex_standin.fail_next(1, 403, message="Permission denied on resource project")
    with pytest.raises(PermanentIngestionError) as caught:
        gemini(vertex_standin).recognize(text_image(["x"]))
    assert "the OCR model refused a page image" in str(caught.value)
    assert "HTTP 403" in str(caught.value) and "Permission denied" in str(caught.value)


def test_gemini_pages_are_cut_to_the_inline_limit(vertex_standin: ModelStandin) -> None:
    noise = Image.merge("RGB", [Image.effect_noise((1600, 1600), 120 - n) for n in range(3)])
    data, mime_type = encode_page(noise)
    assert len(data) <= MAX_IMAGE_BYTES < MAX_INLINE_IMAGE_BYTES
    assert mime_type == "image/jpeg"
    vertex_standin.transcribe = lambda image: "noise"
    assert gemini(vertex_standin).recognize(noise) == "noise"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([(b"\x89PNG" + bytes(MAX_INLINE_IMAGE_BYTES), "image/png")], "exceeds max allowed file"),
        ([(b"II*\x00", "image/tiff")], "Unsupported MIME type: image/tiff"),
        (
            [(bytes(MAX_INLINE_IMAGE_BYTES - 16), "image/png")] * 3,
            "Request payload size exceeds the limit: 20971520 bytes.",
        ),
    ],
)
def test_standin_refuses_image_requests_beyond_the_api_limits(
    vertex_standin: ModelStandin, parts: list[tuple[bytes, str]], message: str
) -> None:
    from google.genai import errors, types

    from common.inference.embedders.vertex import vertex_client

    client = vertex_client(vertex_standin.settings())
    contents: list[types.Part] = [
        types.Part.from_bytes(data=data, mime_type=mime) for data, mime in parts
    ]
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents=contents)  # type: ignore[arg-type]
    assert caught.value.code == 400 and message in str(caught.value.message)


def test_gemini_parser_reads_a_scanned_pdf_end_to_end(vertex_standin: ModelStandin) -> None:
    vertex_standin.transcribe = lambda image: f"page of {len(image)} bytes"
    pages = [Image.new("L", (300, 100), 255)] * 5
    document = extract(scanned_pdf(pages), gemini(vertex_standin))
    assert len(document.pages) == 5 and all(page.ocr for page in document.pages)
    assert len(vertex_standin.requests_to("generateContent")) == 5


# --- the real pipeline --------------------------------------------------------------------------


def test_image_and_scanned_pdf_become_ready_with_their_text_cited_as_ocr(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    photo = upload(
        ingestion_stack, tenant, "scans/pump.png", encoded(text_image(MANUAL)), "image/png"
    )
    scan = upload(
        ingestion_stack,
        tenant,
        "scans/contract.pdf",
        scanned_pdf([pdfs.page_text(1), text_image(["Clause 7: the lessee pays", "on the 3rd."])]),
        "application/pdf",
    )
    for blob in (photo, scan):
        finalize(ingestion_stack, blob)
    image_document = wait_for_document(ingestion_stack, tenant, photo, {DocumentStatus.READY})
    pdf_document = wait_for_document(ingestion_stack, tenant, scan, {DocumentStatus.READY})
    [image_chunk] = chunks_of(image_document.id)
    assert "XK-4471B" in image_chunk.content
    assert image_chunk.location == "image (OCR)"
    pdf_chunks = chunks_of(pdf_document.id)
    clause = [chunk for chunk in pdf_chunks if "lessee" in chunk.content]
    assert clause and clause[-1].location in ("page 2 (OCR)", "pages 1-2 (OCR)")


def test_cjk_punctuation_in_a_latin_line_is_written_in_its_latin_form() -> None:
    assert latin_typography("skip=〈amount〉 and （a）：ﬁne") == "skip=⟨amount⟩ and (a):fine"
    assert latin_typography("价格〈含税〉（元）") == "价格〈含税〉（元）"  # Chinese keeps its own


def test_straight_quotes_read_from_typeset_text_are_set_curly_by_their_neighbours() -> None:
    assert latin_typography("a 'line' isn't \"rule\"") == "a ‘line’ isn’t “rule”"
    assert (
        latin_typography("'Quoted' (\"inner\") teams' rules") == "‘Quoted’ (“inner”) teams’ rules"
    )
    # Chinese text keeps the quotes as read.
    assert latin_typography('他说"好"') == '他说"好"'


def test_an_angle_pair_read_half_as_parentheses_is_an_angle_pair() -> None:
    assert latin_typography(r"\toprule[(wd⟩] \midrule[⟨wd>] \cmidrule((trim〉)") == (
        r"\toprule[⟨wd⟩] \midrule[⟨wd⟩] \cmidrule(⟨trim⟩)"
    )
    # Parentheses and comparisons with no angle bracket in them stay as read.
    assert latin_typography("f(x) where a < b and c > d") == "f(x) where a < b and c > d"


def test_a_zero_read_in_a_run_of_capitals_is_the_letter_o() -> None:
    assert latin_typography(r"\ES0@HookIBG and \ifES0@dvips") == r"\ESO@HookIBG and \ifESO@dvips"
    # Numbers stay numbers: a zero ending a name, before a digit, or not after two capitals.
    assert latin_typography("ISO 9001, AB01 v1.0 A0 paper 10pt X10.5 UART0 GPIO0.") == (
        "ISO 9001, AB01 v1.0 A0 paper 10pt X10.5 UART0 GPIO0."
    )
