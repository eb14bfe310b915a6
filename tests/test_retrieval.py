"""Hybrid retrieval against the real database and the real local embedding model."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import text

from common.inference.embeddings import get_embedder
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.models import DocumentStatus
from common.query import retrieval
from common.query.retrieval import (
    DEFAULT_FUSION,
    EmbeddingModelMismatchError,
    RetrievedChunk,
    check_embedding_model,
    fit_to_budget,
    search,
)
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import Corpus, insert_document


def _search(
    project_id: uuid.UUID,
    question: str,
    *,
    top_k: int = 5,
    min_score: float | None = None,
    document_ids: list[uuid.UUID] | None = None,
    vector: np.ndarray | None = None,
) -> list[RetrievedChunk]:
    if vector is None:
        vector = get_embedder().embed_query(question)
    with transaction() as session:
        return search(
            session,
            project_id=project_id,
            query_vector=vector,
            question=question,
            top_k=top_k,
            ef_search=get_settings().hnsw_ef_search,
            min_score=min_score,
            document_ids=document_ids,
        )


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("How is the bread starter in the kitchen looked after?", "sourdough"),
        ("Is there free parking for guests at the Portugal branch?", "parking"),
        ("Which component holds the back door of the rover in place?", "hinge_pin"),
    ],
)
def test_paraphrased_question_finds_the_planted_fact_among_thousands(
    corpus: Corpus, question: str, fact: str
) -> None:
    """By meaning: the questions share (almost) no words with the facts they should find."""
    results = _search(corpus.tenant.project_id, question)
    assert results[0].chunk_id == corpus.planted[fact]
    assert len(corpus.chunk_ids) > 3000


@pytest.mark.parametrize(
    "question", ["What is part XK-4471B?", "XK-4471B", "tell me everything about XK-4471B"]
)
def test_rare_part_number_finds_the_planted_fact_among_near_misses(
    corpus: Corpus, question: str
) -> None:
    """By keyword: distractors carry XK-4471A, XK-4417B, ... which must not outrank it."""
    results = _search(corpus.tenant.project_id, question)
    assert results[0].chunk_id == corpus.planted["hinge_pin"]
    assert "XK-4471B" in results[0].content


def test_results_are_ranked_with_cosine_and_fusion_scores(corpus: Corpus) -> None:
    results = _search(corpus.tenant.project_id, "Where can visitors park at the office?", top_k=8)
    assert [r.rank for r in results] == list(range(1, 9))
    assert [r.rrf_score for r in results] == sorted((r.rrf_score for r in results), reverse=True)
    assert results[0].chunk_id == corpus.planted["parking"]
    assert all(-1.0 <= r.score <= 1.0 for r in results)
    assert results[0].title == "Notes on parking"
    assert results[0].gcs_uri and results[0].gcs_uri.startswith("gs://")
    assert results[0].token_count > 0


def test_search_never_returns_another_projects_chunks(corpus: Corpus) -> None:
    """The other team's project holds the very same facts; none may cross over either way."""
    for question in ("What is part XK-4471B?", "sourdough starter rye flour"):
        mine = _search(corpus.tenant.project_id, question, top_k=20)
        theirs = _search(corpus.other.project_id, question, top_k=20)
        assert {r.chunk_id for r in mine} <= corpus.chunk_ids
        assert {r.chunk_id for r in theirs} <= corpus.other_chunk_ids
        assert theirs, "the other project has matching chunks of its own"


def test_document_filter_keeps_full_top_k_inside_a_big_project(corpus: Corpus) -> None:
    """A selective filter must not starve the HNSW scan (iterative scan keeps going)."""
    handbook = _search(corpus.tenant.project_id, "hydraulic pump inspection", top_k=1)
    document_id = handbook[0].document_id
    results = _search(
        corpus.tenant.project_id,
        "Where can visitors park at the office?",
        top_k=10,
        document_ids=[document_id],
    )
    assert len(results) == 10
    assert {r.document_id for r in results} == {document_id}


def test_document_filter_with_several_documents(corpus: Corpus) -> None:
    wanted = [corpus.planted_documents["parking"], corpus.planted_documents["hinge_pin"]]
    results = _search(corpus.tenant.project_id, "sourdough starter", top_k=10, document_ids=wanted)
    assert {r.document_id for r in results} == set(wanted)


def test_min_score_drops_chunks_below_the_cosine_similarity(corpus: Corpus) -> None:
    unfiltered = _search(corpus.tenant.project_id, "What is part XK-4471B?", top_k=20)
    threshold = sorted(r.score for r in unfiltered)[len(unfiltered) // 2]
    filtered = _search(
        corpus.tenant.project_id, "What is part XK-4471B?", top_k=20, min_score=threshold
    )
    assert filtered
    assert all(r.score >= threshold for r in filtered)
    assert len(filtered) < len(unfiltered)
    assert _search(corpus.tenant.project_id, "What is part XK-4471B?", min_score=0.99) == []


@pytest.fixture
def small_project(database_url: str) -> Tenant:
    return make_tenant("retrieval")


def test_only_ready_documents_are_searched(small_project: Tenant) -> None:
    ready, _ = insert_document(small_project, "ready", ["The boiler room key hangs by the door."])
    insert_document(
        small_project,
        "failed",
        ["The boiler room key is in the red cabinet."],
        status=DocumentStatus.FAILED,
    )
    results = _search(small_project.project_id, "where is the boiler room key")
    assert [r.document_id for r in results] == [ready]


def test_keyword_arm_alone_can_surface_a_chunk(small_project: Tenant) -> None:
    """With an orthogonal query vector only full text can rank the chunk; it still comes back."""
    _, ids = insert_document(small_project, "codes", ["Valve ZQ-9912 leaks under pressure."])
    dim = get_embedder().dimension
    vector = np.zeros(dim, dtype=np.float32)
    vector[0] = 1.0
    results = _search(small_project.project_id, "ZQ-9912", vector=vector)
    assert results and results[0].chunk_id == ids[0]
    fusion = DEFAULT_FUSION  # the chunk leads both arms
    dense = fusion.dense_weight
    if (
        fusion.relative
        and fusion.dense_floor is not None
        and results[0].score <= fusion.dense_floor
    ):
        dense = 0.0  # an orthogonal vector is no closer than the cosine floor: no dense evidence
    both = dense + fusion.keyword_weight
    if fusion.relative:  # and the rank term of rank 1 in both arms
        both += fusion.rank_weight * (fusion.dense_weight + fusion.keyword_weight)
    else:
        both /= fusion.rrf_k + 1
    assert results[0].rrf_score == pytest.approx(both)


def _keyword_only(project_id: uuid.UUID, question: str) -> list[RetrievedChunk]:
    with transaction() as session:
        return search(
            session,
            project_id=project_id,
            query_vector=get_embedder().embed_query(question),
            question=question,
            top_k=5,
            ef_search=get_settings().hnsw_ef_search,
            arms="keyword",
        )


def test_keyword_arm_ranks_partial_matches_by_their_rare_terms(small_project: Tenant) -> None:
    """A chatty question shares only some words with the answer: the arm still finds it."""
    _, ids = insert_document(
        small_project,
        "layout",
        [
            "The fancyhdr package sets running headers and footers in the preamble.",
            "Headers of a table are set in bold in the preamble of the report.",
            "The preamble loads every package before the document begins.",
        ],
    )
    results = _keyword_only(
        small_project.project_id,
        "Which two commands would switch my document over to fancyhdr headers and footers?",
    )
    assert results and results[0].chunk_id == ids[0]


def test_keyword_arm_puts_the_quoted_phrase_first(small_project: Tenant) -> None:
    _, ids = insert_document(
        small_project,
        "phrases",
        [
            "The seal of the valve is checked by the pressure team every spring.",
            "Check the pressure valve seal before the boiler is started.",
        ],
    )
    results = _keyword_only(small_project.project_id, 'when is the "pressure valve" inspected')
    assert results[0].chunk_id == ids[1]


def _kept_idf(project_id: uuid.UUID, word: str) -> float:
    """The idf the keyword arm gives `word` (through the process's copy of the statistics)."""
    with transaction() as session:
        _, _, terms = retrieval._prepare(
            session,
            project_id=project_id,
            question=word,
            ef_search=get_settings().hnsw_ef_search,
            dense_candidates=20,
            min_coverage=DEFAULT_FUSION.min_coverage,
            document_ids=None,
        )
    assert len(terms.idfs) == 1
    return terms.idfs[0]


def _idf_in_pg_stats(word: str) -> float:
    """The same idf read from pg_stats in the statement itself, as every question once did."""
    with transaction() as session:
        idf = session.scalar(
            text(
                "SELECT ln(1 + (1 - f) / (f + :smoothing)) FROM ("
                " SELECT coalesce(s.freqs[array_position(s.elems, w.lexeme)],"
                "  s.freqs[cardinality(s.freqs) - 2] / 2, :unknown) AS f"
                " FROM (SELECT (tsvector_to_array(to_tsvector('english', :word)))[1] AS lexeme) w"
                " LEFT JOIN (SELECT CAST(CAST(most_common_elems AS text) AS text[]) AS elems,"
                "  most_common_elem_freqs AS freqs FROM pg_stats"
                "  WHERE schemaname = current_schema() AND tablename = 'document_chunks'"
                "  AND attname = 'content_tsv') s ON true) x"
            ),
            {
                "word": word,
                "smoothing": retrieval.IDF_SMOOTHING,
                "unknown": retrieval.UNKNOWN_FREQUENCY,
            },
        )
    return float(idf)


def _analyze() -> None:
    with transaction() as session:
        session.execute(text("ANALYZE document_chunks"))


def test_the_keyword_arm_takes_new_statistics_after_each_analyze(small_project: Tenant) -> None:
    """The process keeps the column's statistics between questions; an ANALYZE (by hand here,
    by autovacuum in service) must reach the next question, with the idf pg_stats gives."""
    rng = np.random.default_rng(5)
    dim = get_embedder().dimension

    def vectors(count: int) -> np.ndarray:
        rows = rng.standard_normal((count, dim)).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    texts = [f"The wombat ledger holds entry {n}." for n in range(40)]
    insert_document(small_project, "ledger", texts, vectors(40))
    _analyze()
    before = _kept_idf(small_project.project_id, "wombat")
    assert before == pytest.approx(_idf_in_pg_stats("wombat"), rel=1e-12)
    assert _kept_idf(small_project.project_id, "wombat") == before  # the kept copy
    texts = [f"A wombat burrow, number {n}, runs under the fence." for n in range(600)]
    insert_document(small_project, "burrows", texts, vectors(600))
    _analyze()
    after = _kept_idf(small_project.project_id, "wombat")
    assert after == pytest.approx(_idf_in_pg_stats("wombat"), rel=1e-12)
    assert after < before  # a far more common word now


def test_empty_project_returns_nothing(small_project: Tenant) -> None:
    assert _search(small_project.project_id, "anything at all?") == []


def test_chunks_of_another_embedding_model_are_refused(small_project: Tenant) -> None:
    insert_document(small_project, "old", ["Legacy vectors."], embedding_model="text-embedding-005")
    with transaction() as session, pytest.raises(EmbeddingModelMismatchError) as raised:
        check_embedding_model(session, small_project.project_id, get_embedder().model_name)
    assert raised.value.status == 409
    assert "text-embedding-005" in raised.value.message


def test_model_check_passes_for_the_configured_model(small_project: Tenant) -> None:
    document_id, _ = insert_document(small_project, "new", ["Fresh vectors."])
    with transaction() as session:
        check_embedding_model(session, small_project.project_id, get_embedder().model_name)
        check_embedding_model(
            session, small_project.project_id, get_embedder().model_name, [document_id]
        )


def _chunk(rank: int, tokens: int) -> RetrievedChunk:
    return RetrievedChunk(
        rank=rank,
        chunk_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        title="t",
        gcs_uri=None,
        page_start=None,
        page_end=None,
        location=None,
        content="x",
        token_count=tokens,
        score=0.5,
        rrf_score=0.01,
    )


def test_budget_keeps_chunks_by_rank_and_skips_those_that_do_not_fit() -> None:
    chunks = [_chunk(1, 300), _chunk(2, 500), _chunk(3, 150), _chunk(4, 100)]
    kept = fit_to_budget(chunks, 600)
    assert [c.rank for c in kept] == [1, 3, 4]
    assert fit_to_budget(chunks, 100) == [chunks[3]]
    assert fit_to_budget(chunks, 10) == []
