"""A question in, a grounded answer (or the retrieved chunks) out: flow 3 of the design.

Used by the query function (over HTTP) and by `ai-infra ask` (in-process, api_key_id None).
Steps: embed the question; then in ONE transaction (one pooled connection, one snapshot) check
that the caller's team owns the project (404) and that its chunks come from the configured
embedding model (409), and run the hybrid search; with a reranker configured, the search fetches
`AI_INFRA_RERANK_CANDIDATES` fused results and the reranker keeps the best top_k of them (after
the transaction); fit the context budget, generate with numbered sources, keep the citations the
answer actually makes.

The reranker never fails a query: past `AI_INFRA_RERANK_TIMEOUT_SECONDS`, on a 429/5xx or any
other failure the fused order is served (its first top_k), logged as `rerank fell back` (a
warning with the reason, counted by a log-based metric in the cloud), never as an error. That is
the fused order of the candidate search: each arm then proposes more candidates, and relative
fusion normalises over them, so it may differ slightly from a top_k search's order.

The question is embedded before the ownership check so that the check and the search share a
transaction: an authenticated caller naming someone else's project costs one embedding call,
never a hint. The database is never held across a model call, so a slow model never holds a
pooled connection. The `query_logs` row and its `query_citations`
are one INSERT statement (a CTE); the HTTP layer runs it after the response has been sent
(`defer`), so logging adds no round trip to the response path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.platform.attributes import CachedRegistry
from common.platform.config import Settings, get_settings
from common.platform.db import transaction
from common.platform.spaces import load_space
from common.query.auth import Principal
from common.query.filters import compile_filter
from common.query.query_log import QueryLogRecord, write_query_log
from common.query.retrieval import (
    RetrievedChunk,
    active_space,
    check_searchable,
    fit_to_budget,
    search,
)
from common.query.schemas import Citation, QueryRequest, QueryResult, Usage, snippet

if TYPE_CHECKING:
    from common.inference.generation import GenerationRequest
    from common.inference.reranking import DeadlineReranker

__all__ = [
    "NOTHING_FOUND_ANSWER",
    "Principal",
    "QueryRequest",
    "QueryResult",
    "Timings",
    "run_query",
    "stream_query",
]

logger = logging.getLogger(__name__)

NOTHING_FOUND_ANSWER = (
    "I could not find anything relevant to this question in the project's documents."
)

Defer = Callable[[Callable[[], None]], None]


@dataclass
class Timings:
    """Milliseconds per phase (reported as `Server-Timing`, used by bench/query.py)."""

    started: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + (now - since) * 1000
        return now

    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)


@dataclass(frozen=True)
class _Retrieved:
    top_k: int
    chunks: list[RetrievedChunk]
    rerank_scores: dict[uuid.UUID, float] = field(default_factory=dict)
    rerank_status: str | None = None  # None: no reranker configured


def _retrieve(
    principal: Principal,
    project_id: uuid.UUID,
    request: QueryRequest,
    settings: Settings,
    timings: Timings,
) -> _Retrieved:
    from common.inference.embeddings import embedder_for_space
    from common.inference.reranking import get_reranker

    top_k = request.top_k or settings.default_top_k
    mark = time.perf_counter()
    with transaction() as session:
        # The question is embedded by the model of the project's active space.
        space = active_space(session, principal.team_id, project_id, settings)
    mark = timings.add("sql", mark)
    embedder = embedder_for_space(space, settings)
    reranker = get_reranker(settings)
    fetch = max(top_k, settings.rerank_candidates) if reranker is not None else top_k
    vector = embedder.embed_query(request.question)
    mark = timings.add("embed", mark)
    with transaction() as session:
        current = check_searchable(
            session,
            team_id=principal.team_id,
            project_id=project_id,
            model=settings.resolved_embedding_model,
            document_ids=request.document_ids,
        )
        if load_space(session, current, settings) != space:
            # A switch flipped the project since: ask in the space that is active now.
            space = load_space(session, current, settings)
            vector = embedder_for_space(space, settings).embed_query(request.question)
        document_filter = (
            compile_filter(request.filter, CachedRegistry(session, project_id))
            if request.filter is not None
            else None
        )
        chunks = search(
            session,
            project_id=project_id,
            query_vector=vector,
            question=request.question,
            top_k=fetch,
            ef_search=settings.hnsw_ef_search,
            exact_max_chunks=settings.exact_search_max_chunks,
            min_score=request.min_score,
            document_ids=request.document_ids,
            document_filter=document_filter,
            space=space,
        )
    timings.add("sql", mark)
    if reranker is None:
        return _Retrieved(top_k=top_k, chunks=chunks)
    return _rerank(reranker, request.question, chunks, top_k, timings)


def _rerank(
    reranker: DeadlineReranker,
    question: str,
    chunks: list[RetrievedChunk],
    top_k: int,
    timings: Timings,
) -> _Retrieved:
    """The reranker's best top_k of the fused candidates, else the fused order's first top_k."""
    from common.inference.reranking import RerankRecord

    mark = time.perf_counter()
    by_id = {str(chunk.chunk_id): chunk for chunk in chunks}
    records = [RerankRecord(str(c.chunk_id), c.title, c.content) for c in chunks]
    outcome = reranker.rerank(question, records, top_n=top_k)
    timings.add("rerank", mark)
    if outcome.ranked is None:
        logger.warning(
            "rerank fell back to the fused order",
            extra={
                "rerank_status": outcome.status,
                "rerank_model": reranker.model_name,
                "rerank_ms": round(outcome.elapsed_ms, 2),
                "candidates": len(records),
                "detail": outcome.detail,
            },
        )
        return _Retrieved(top_k, chunks[:top_k], rerank_status=outcome.status)
    scores: dict[uuid.UUID, float] = {}
    order: list[RetrievedChunk] = []
    for ranked in outcome.ranked:
        chunk = by_id.get(ranked.id)
        if chunk is not None and chunk.chunk_id not in scores:
            scores[chunk.chunk_id] = ranked.score
            order.append(chunk)
    # A ranking shorter than top_k (fewer records came back) is topped up in fused order.
    order += [chunk for chunk in chunks if chunk.chunk_id not in scores]
    reranked = [dataclasses.replace(c, rank=n) for n, c in enumerate(order[:top_k], start=1)]
    return _Retrieved(top_k, reranked, rerank_scores=scores, rerank_status=outcome.status)


def _citation(
    chunk: RetrievedChunk,
    source: int,
    *,
    with_content: bool,
    rerank_scores: dict[uuid.UUID, float],
) -> Citation:
    return Citation(
        source=source,
        rank=chunk.rank,
        score=chunk.score,
        rrf_score=chunk.rrf_score,
        rerank_score=rerank_scores.get(chunk.chunk_id),
        chunk_id=chunk.chunk_id,
        document_id=chunk.document_id,
        title=chunk.title,
        gcs_uri=chunk.gcs_uri,
        page_start=chunk.page_start,
        page_end=chunk.page_end,
        location=chunk.location,
        snippet=snippet(chunk.content),
        content=chunk.content if with_content else None,
        attributes=chunk.attributes,
    )


def _generation_request(
    request: QueryRequest, sources: list[RetrievedChunk], settings: Settings
) -> GenerationRequest:
    from common.inference.generation import GenerationRequest, Source

    return GenerationRequest(
        question=request.question,
        sources=[
            Source(
                number=number,
                chunk_id=chunk.chunk_id,
                document_id=chunk.document_id,
                title=chunk.title,
                content=chunk.content,
                page_start=chunk.page_start,
                page_end=chunk.page_end,
                score=chunk.score,
                location=chunk.location,
            )
            for number, chunk in enumerate(sources, start=1)
        ],
        system_prompt=request.system_prompt or settings.system_prompt,
        temperature=(
            request.temperature if request.temperature is not None else settings.default_temperature
        ),
        max_output_tokens=request.max_output_tokens or settings.max_output_tokens,
    )


@dataclass
class _Outcome:
    """Everything a finished query produced, before it becomes a response and a log row."""

    principal: Principal
    project_id: uuid.UUID
    request: QueryRequest
    request_id: str
    top_k: int
    answer: str | None
    citations: list[Citation]
    model: str | None
    used_rag: bool = False
    rerank_scores: dict[uuid.UUID, float] = field(default_factory=dict)
    rerank_status: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def result(self, timings: Timings) -> tuple[QueryResult, QueryLogRecord]:
        latency_ms = timings.elapsed_ms()
        used_rag = self.used_rag
        result = QueryResult(
            request_id=self.request_id,
            answer=self.answer,
            citations=self.citations,
            model=self.model,
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens),
            latency_ms=latency_ms,
            used_rag=used_rag,
        )
        record = QueryLogRecord(
            team_id=self.principal.team_id,
            project_id=self.project_id,
            api_key_id=self.principal.api_key_id,
            request_id=self.request_id,
            question_hash=hashlib.sha256(self.request.question.encode()).hexdigest(),
            used_rag=used_rag,
            top_k=self.top_k,
            model=self.model,
            latency_ms=latency_ms,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            citations=[(c.chunk_id, c.rank, c.score) for c in self.citations],
        )
        logger.info(
            "query answered",
            extra={
                "request_id": self.request_id,  # streamed answers finish outside the request
                "project_id": str(self.project_id),
                "question_sha256": record.question_hash,
                "mode": self.request.mode,
                "top_k": self.top_k,
                "citations": len(self.citations),
                "used_rag": used_rag,
                "model": self.model,
                "rerank": self.rerank_status,
                "latency_ms": latency_ms,
                "phases_ms": {k: round(v, 2) for k, v in timings.phases.items()},
            },
        )
        return result, record


def _prepare(
    principal: Principal,
    project_id: uuid.UUID,
    request: QueryRequest,
    *,
    request_id: str,
    settings: Settings,
    timings: Timings,
) -> tuple[_Outcome, list[RetrievedChunk]]:
    """Retrieve; returns the outcome so far and the sources to generate from (maybe none)."""
    retrieved = _retrieve(principal, project_id, request, settings, timings)
    outcome = _Outcome(principal, project_id, request, request_id, retrieved.top_k, None, [], None)
    outcome.used_rag = bool(retrieved.chunks)
    outcome.rerank_scores = retrieved.rerank_scores
    outcome.rerank_status = retrieved.rerank_status
    if request.mode == "retrieve":
        outcome.citations = [
            _citation(chunk, chunk.rank, with_content=True, rerank_scores=retrieved.rerank_scores)
            for chunk in retrieved.chunks
        ]
        return outcome, []
    sources = fit_to_budget(retrieved.chunks, settings.context_token_budget)
    outcome.used_rag = bool(sources)
    if not sources:
        outcome.answer = NOTHING_FOUND_ANSWER
    return outcome, sources


def _cite(outcome: _Outcome, sources: list[RetrievedChunk], cited: list[int]) -> None:
    outcome.citations = [
        _citation(
            sources[number - 1], number, with_content=False, rerank_scores=outcome.rerank_scores
        )
        for number in cited
        if 1 <= number <= len(sources)
    ]


def _finish(record: QueryLogRecord, defer: Defer | None) -> None:
    if defer is None:
        write_query_log(record)
    else:
        defer(lambda: write_query_log(record))


def run_query(
    principal: Principal,
    project_id: uuid.UUID,
    request: QueryRequest,
    request_id: str,
    *,
    settings: Settings | None = None,
    timings: Timings | None = None,
    defer: Defer | None = None,
) -> QueryResult:
    """Answer (or retrieve for) one question; `defer` postpones the log write (HTTP layer)."""
    settings = settings or get_settings()
    timings = timings or Timings()
    outcome, sources = _prepare(
        principal, project_id, request, request_id=request_id, settings=settings, timings=timings
    )
    if sources:
        from common.inference.generation import get_generator

        mark = time.perf_counter()
        generated = get_generator(settings).generate(
            _generation_request(request, sources, settings)
        )
        timings.add("generate", mark)
        outcome.answer = generated.text
        outcome.model = generated.model
        outcome.prompt_tokens = generated.prompt_tokens
        outcome.completion_tokens = generated.completion_tokens
        _cite(outcome, sources, generated.cited)
    result, record = outcome.result(timings)
    _finish(record, defer)
    return result


def stream_query(
    principal: Principal,
    project_id: uuid.UUID,
    request: QueryRequest,
    request_id: str,
    *,
    settings: Settings | None = None,
    timings: Timings | None = None,
) -> Iterator[str | QueryResult]:
    """Text deltas of the answer, then ONE final QueryResult; the log row is written after it.

    Nothing runs until the first `next()`: the caller primes the iterator so that errors before
    the first delta (auth, validation, retrieval, a refused model call) still become a status.
    """
    settings = settings or get_settings()
    timings = timings or Timings()
    outcome, sources = _prepare(
        principal, project_id, request, request_id=request_id, settings=settings, timings=timings
    )
    if not sources:
        if outcome.answer:
            yield outcome.answer
    else:
        from common.inference.generation import GenerationResult, get_generator

        mark = time.perf_counter()
        for item in get_generator(settings).stream(_generation_request(request, sources, settings)):
            if isinstance(item, GenerationResult):
                outcome.answer = item.text
                outcome.model = item.model
                outcome.prompt_tokens = item.prompt_tokens
                outcome.completion_tokens = item.completion_tokens
                _cite(outcome, sources, item.cited)
            elif item:
                yield item
        timings.add("generate", mark)
    result, record = outcome.result(timings)
    yield result
    # Resumed by the server after it sent the final event: the log costs the client nothing.
    write_query_log(record)
