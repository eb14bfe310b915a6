"""How the search runs for a project of its size: exact or HNSW vectors, GIN or a row scan.

The choices are made per query from the project's size (bench/query.py --skew zipf measures
them at a million chunks); here each way is forced on the shared corpus and must give the same
answers, and the keyword arm's candidate tsquery must never lose a chunk that can rank.
"""

from __future__ import annotations

import itertools
import random

import pytest
from sqlalchemy import text

from common.inference.embeddings import get_embedder
from common.platform.config import get_settings
from common.platform.db import transaction
from common.query import retrieval
from common.query.retrieval import RetrievedChunk, candidate_query, explain_search, search
from tests.fixtures.query import Corpus

QUESTIONS = {
    "sourdough": "How is the bread starter in the kitchen looked after?",
    "parking": "Is there free parking for guests at the Portugal branch?",
    "hinge_pin": "What is part XK-4471B?",
}


def _run(
    corpus: Corpus, question: str, *, exact_max_chunks: int, arms: str = "hybrid"
) -> list[RetrievedChunk]:
    with transaction() as session:
        return search(
            session,
            project_id=corpus.tenant.project_id,
            query_vector=get_embedder().embed_query(question),
            question=question,
            top_k=5,
            ef_search=get_settings().hnsw_ef_search,
            exact_max_chunks=exact_max_chunks,
            arms=arms,
        )


def _plan(corpus: Corpus, question: str, *, exact_max_chunks: int) -> str:
    with transaction() as session:
        return explain_search(
            session,
            project_id=corpus.tenant.project_id,
            query_vector=get_embedder().embed_query(question),
            question=question,
            top_k=5,
            ef_search=get_settings().hnsw_ef_search,
            exact_max_chunks=exact_max_chunks,
        )


@pytest.mark.parametrize("fact", sorted(QUESTIONS))
def test_exact_and_hnsw_vector_arms_find_the_same_fact(corpus: Corpus, fact: str) -> None:
    question = QUESTIONS[fact]
    for limit in (10**9, 0):  # every project exact / every project through HNSW
        results = _run(corpus, question, exact_max_chunks=limit)
        assert results[0].chunk_id == corpus.planted[fact], limit


def test_projects_up_to_the_limit_rank_vectors_exactly(corpus: Corpus) -> None:
    question = QUESTIONS["sourdough"]
    assert len(corpus.chunk_ids) < retrieval.EXACT_SEARCH_MAX_CHUNKS
    assert "embedding_hnsw" not in _plan(corpus, question, exact_max_chunks=10**9)
    # A planner may still prefer a sort for a small table; with the scan budget sized for it,
    # the index is at least allowed: the statement orders by the indexable distance.
    hnsw_plan = _plan(corpus, question, exact_max_chunks=0)
    with transaction() as session:
        session.execute(text("SET LOCAL enable_sort = off"))
        forced = explain_search(
            session,
            project_id=corpus.tenant.project_id,
            query_vector=get_embedder().embed_query(question),
            question=question,
            top_k=5,
            ef_search=get_settings().hnsw_ef_search,
            exact_max_chunks=0,
        )
    assert "embedding_hnsw" in forced or "embedding_hnsw" in hnsw_plan


@pytest.mark.parametrize(
    "question",
    [
        *QUESTIONS.values(),
        "Which guests get free parking, and where do they park at the Portugal branch?",
        'when is the "back door" of the rover inspected',
    ],
)
def test_keyword_arm_gives_the_same_ranking_through_gin_or_a_scan_of_the_project(
    corpus: Corpus, question: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrieval, "MAX_INDEX_POSTINGS", 10**12)  # the same terms both ways
    rankings = []
    for ratio in (10.0**12, 0.0):  # GIN always / the project's rows always
        monkeypatch.setattr(retrieval, "KEYWORD_SCAN_COST_RATIO", ratio)
        found = _run(corpus, question, exact_max_chunks=10**9, arms="keyword")
        rankings.append([(chunk.chunk_id, round(chunk.rrf_score, 9)) for chunk in found])
        if ratio == 0:  # GIN is then out of reach (with it allowed, Postgres still chooses)
            plan = _plan(corpus, question, exact_max_chunks=10**9)
            assert "ix_document_chunks_content_tsv" not in plan
    assert rankings[0] == rankings[1]
    assert rankings[0]


def _matches(document: list[str], query: str) -> bool:
    with transaction() as session:
        return bool(
            session.execute(
                text("SELECT CAST(:document AS tsvector) @@ CAST(:query AS tsquery)"),
                {"document": " ".join(document), "query": query},
            ).scalar_one()
        )


def test_candidate_query_keeps_every_chunk_whose_terms_reach_the_bar(database_url: str) -> None:
    """Every subset of the terms: reaching the idf bar implies matching the candidate tsquery,
    and a chunk holding one weak term only is left out (the work the tsquery saves)."""
    rng = random.Random(5)
    lexemes = ["alpha", "bravo", "charli", "delta", "echo", "foxtrot", "golf"]
    for _ in range(4):
        idfs = [rng.uniform(0.2, 6.0) for _ in lexemes]
        bar = 0.2 * sum(idfs)
        query = candidate_query("a plain question", lexemes, idfs, bar)
        for size in range(1, len(lexemes) + 1):
            for subset in itertools.combinations(range(len(lexemes)), size):
                mass = sum(idfs[i] for i in subset)
                matched = _matches([lexemes[i] for i in subset], query)
                if mass >= bar:
                    assert matched, (subset, idfs)
                if size == 1 and mass < bar:
                    assert not matched, (subset, idfs)


@pytest.mark.parametrize("question", ['the "exact phrase" here', "valves or pumps", "seal -leak"])
def test_candidate_query_is_any_term_when_the_question_has_search_operators(
    question: str,
) -> None:
    """`or`, `-term` and quotes make a whole-question match that may hold one weak term."""
    query = candidate_query(question, ["seal", "valve"], [0.1, 0.1], 10.0)
    assert query == "'seal' | 'valve'"
