"""The query API's request and response bodies (pydantic: validation and the OpenAPI schemas)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from common.query.filters import FILTER_REF

MAX_QUESTION_CHARS = 4000
MAX_SYSTEM_PROMPT_CHARS = 8000
MAX_DOCUMENT_FILTER = 100
MAX_TOP_K = 50
MAX_OUTPUT_TOKENS = 8192
SNIPPET_CHARS = 400

# Postgres text cannot hold NUL, and a lone surrogate has no UTF-8 encoding: such a string
# would fail deep inside the database driver or a model client, so it is refused at the edge.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "must not contain NUL (U+0000) or unpaired surrogates (U+D800-U+DFFF)"


def is_storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def _storable(value: str) -> str:
    if not is_storable(value):
        raise ValueError(UNSTORABLE_MESSAGE)
    return value


# The schema says it too (JSON Schema cannot name a lone surrogate: valid UTF-8 JSON has none).
StorableText = Annotated[
    str, AfterValidator(_storable), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})
]
"""A string every layer can carry: the type of each text field and parameter the API accepts."""


def _whole_number(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema (and so the OpenAPI document) defines it: 42.0 is one, 42.5 is not.
# Place it after the Field constraints, which then still appear in the JSON schema.
WHOLE_NUMBER = BeforeValidator(_whole_number)


class QueryRequest(BaseModel):
    """The body of `POST /v1/projects/{project_id}/query`; unknown fields are refused."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        # The one cross-field rule, stated in the schema too (see _stream_needs_answer).
        json_schema_extra={
            "not": {
                "required": ["stream", "mode"],
                "properties": {"stream": {"const": True}, "mode": {"const": "retrieve"}},
            }
        },
    )

    # The schema states what `_not_blank` checks: some non-whitespace, no NUL.
    question: Annotated[
        str,
        AfterValidator(_storable),
        Field(
            min_length=1,
            max_length=MAX_QUESTION_CHARS,
            json_schema_extra={"pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"},
        ),
    ]
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K), WHOLE_NUMBER] | None = None
    min_score: Annotated[float | None, Field(ge=0, le=1)] = None
    mode: Literal["answer", "retrieve"] = "answer"
    system_prompt: Annotated[
        StorableText | None, Field(min_length=1, max_length=MAX_SYSTEM_PROMPT_CHARS)
    ] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    max_output_tokens: Annotated[int, Field(ge=1, le=MAX_OUTPUT_TOKENS), WHOLE_NUMBER] | None = None
    document_ids: Annotated[
        list[uuid.UUID] | None, Field(min_length=1, max_length=MAX_DOCUMENT_FILTER)
    ] = None
    filter: Annotated[dict[str, Any], WithJsonSchema(FILTER_REF)] | None = Field(
        default=None,
        description="Only documents whose attributes match (see README 'Attributes and "
        "filters'); combined with document_ids when both are given.",
    )
    stream: bool = False

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain more than whitespace")
        return value

    @model_validator(mode="after")
    def _stream_needs_answer(self) -> Self:
        if self.stream and self.mode != "answer":
            raise ValueError("stream: only available with mode=answer")
        return self


class Citation(BaseModel):
    """One source: in answer mode a chunk the answer cites as [source], else a retrieved chunk."""

    source: int = Field(
        description="The [n] marker of this chunk in the answer (= rank when retrieving)."
    )
    rank: int = Field(
        description="Position in the retrieval ranking, 1 = best: the fused ranking, reordered "
        "by the reranker when one is configured and answered in time."
    )
    score: float = Field(description="Cosine similarity of the chunk to the question.")
    rrf_score: float = Field(description="Reciprocal-rank-fusion score (vector + full text).")
    rerank_score: float | None = Field(
        default=None,
        description="The reranker's relevance score (0..1); null when no reranker ranked it.",
    )
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    title: str
    gcs_uri: str | None
    page_start: int | None = Field(
        description="First page of the chunk: a PDF page, slide, sheet or image frame number."
    )
    page_end: int | None
    location: str | None = Field(
        default=None,
        description='Where the chunk is, as a reader finds it: "page 3", "slides 7-8", '
        '"sheet Budget, rows 2-41", "records 12-20", with " (OCR)" when the text was '
        "recognised from an image; null for formats without pages or rows.",
    )
    snippet: str = Field(
        description=f"The start of the chunk's text (at most {SNIPPET_CHARS} chars)."
    )
    content: str | None = Field(
        default=None, description="The chunk's full text (retrieve mode only)."
    )
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description="The document's attributes: its own and the automatic ones (path, folder, "
        "file_type, source_type, created_at, updated_at).",
    )


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class QueryResult(BaseModel):
    """The response of a query (and the `done` event of a streamed one)."""

    request_id: str
    answer: str | None = Field(description="null in retrieve mode")
    citations: list[Citation]
    model: str | None = Field(description="The generator that answered; null if none was called.")
    usage: Usage
    latency_ms: int
    used_rag: bool = Field(description="Whether retrieved chunks were used (false: none found).")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def snippet(content: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of a chunk, cut at a word boundary when one is near."""
    if len(content) <= limit:
        return content
    cut = content[:limit]
    space = cut.rfind(" ")
    if space > limit * 3 // 4:
        cut = cut[:space]
    return cut.rstrip() + "…"
