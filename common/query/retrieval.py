"""Hybrid retrieval over one project's chunks: cosine neighbours + full text, fused.

Two round trips: the first sets this transaction's HNSW knobs and reads the project's size and
the question's terms with their idf (with a filter: the matching documents' chunks, and their
ids kept in the transaction for the second); the second runs both arms and the fusion in ONE
statement:

* vector arm: `ORDER BY embedding <=> q LIMIT n` filtered by project (and documents). A project
  of up to `exact_max_chunks` chunks is ranked exactly (an ORDER BY the index cannot serve: the
  project_id index and a top-N sort, recall 1.0); a bigger one uses the HNSW index with
  `hnsw.iterative_scan = relaxed_order`, so a selective filter keeps scanning the graph instead
  of returning fewer than n rows, and `hnsw.max_scan_tuples` sized to the project's share of
  the table. A narrowed search (filter, document ids) of a project with an IVFFlat index of
  its own ranks through that instead (`project_indexes`: a few lists in one pass, where the
  graph walks ~candidates / share tuples). The arm is materialised and re-sorted by exact
  distance.
* keyword arm: chunks with ANY of the question's terms, ranked by BM25 (k1 = 1.2, no length
  normalisation: chunks are token-budgeted) with each term's idf taken from the column's
  ANALYZE statistics (`pg_stats.most_common_elems`, no scan of the table; each process keeps a
  copy until the next ANALYZE); terms absent from them are rarer than any listed one. Chunks
  matching every term with websearch semantics (part numbers, `"quoted phrases"`, `or`,
  `-term`) or the question's quoted phrases rank first.
  A partial match counts only when its terms carry `min_coverage` of the question's idf mass,
  so one shared common word is no evidence; the terms arrive as bound values, so Postgres
  plans the full-text match knowing how many rows it selects, and a tsquery of the
  combinations that can reach the bar drops the others before BM25 is computed. In a big
  project the rarest terms are matched first and a common one joins only while the expected
  matches stay under MAX_KEYWORD_MATCHES, which bounds the ranking work. Chunks with equal
  keyword evidence share a rank (random ids never order them; the vector arm decides).
* fusion (`Fusion`: each arm's scores normalised, the dense one against a cosine floor, plus a
  reciprocal-rank term, weighted; or weighted reciprocal ranks) of the two lists, then each
  candidate gains a share of its better adjacent candidate's score (the chunks before and after
  it in its document: a window over the candidates, no extra rows read); `min_score` filters on
  the cosine similarity (1 - cosine distance), computed exactly for every fused candidate.

Chunks are only written in the transaction that makes their document `ready` (and replaced
atomically), and a failed document loses its chunks, so a re-uploaded document keeps answering
from its last good version while the new one is processed; the `<> 'failed'` filter is a cheap
defensive join (the title and URI come from the same join anyway).
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from common.platform.attributes import document_attributes
from common.platform.config import Settings
from common.platform.errors import ApiError
from common.platform.index_names import ivf_index_name
from common.platform.models import TS_CONFIG
from common.platform.spaces import EmbeddingSpace, load_space
from common.query.filters import CompiledFilter


@dataclass(frozen=True)
class Fusion:
    """How the two arms are fused: bench/quality.py tunes it.

    Each arm proposes `candidates_per_result` x top_k candidates (at least `min_candidates`);
    a chunk scores sum(weight x (normalised score + rank_weight x (rrf_k + 1) / (rrf_k + rank)))
    over the arms that found it (`relative`), or sum(weight / (rrf_k + rank)) (weighted
    reciprocal rank fusion). The keyword arm keeps a partial match only when its terms carry
    `min_coverage` of the question's idf mass. Then each candidate gains `neighbour_weight` x
    the better fused score of the chunks just before and after it in its document, when they
    are candidates too.
    """

    # Tuned with `bench/quality.py --tune` on the tune split only (coverage >= 0.2 kept as a
    # precision guard: tests/test_retrieval.py's paraphrase among thousands of distractors).
    # rrf_k: the reciprocal-rank constant of rank fusion and of relative fusion's rank term.
    rrf_k: float = 10.0
    dense_weight: float = 1.0
    keyword_weight: float = 0.7
    dense_candidates_per_result: int = 8
    keyword_candidates_per_result: int = 8
    min_candidates: int = 20
    min_coverage: float = 0.2
    # Relative score fusion instead of ranks: each arm's scores normalised, then weighted and
    # added, so a clear dense winner without keyword support is not outranked by chunks both
    # arms found mediocre. The keyword arm's BM25 is min-max normalised over its candidates.
    relative: bool = True
    # The dense arm's cosine similarity is measured against this floor, relative to its best
    # candidate: (cos - floor) / (best - floor), 0 at or below the floor. Min-max over the
    # candidates (None) gave the weakest candidate 0 and the best 1 however close they all
    # were, and a question the corpus does not answer still had a "perfect" dense match. (MiniLM:
    # 90% of bench/quality.py's chunks are under 0.23 to a question, the best one 0.44-0.68.)
    dense_floor: float | None = 0.3
    # Adjacent chunks of one document usually continue the same passage (and share 32 tokens of
    # overlap): a candidate next to a strong one is more likely on topic than its own scores say.
    neighbour_weight: float = 0.5
    # Relative fusion's rank term: an arm's first candidates keep part of their weight (rank 1
    # gets rank_weight x the arm's weight) however flat its scores are. Normalised scores alone
    # let a clear keyword winner (the one chunk holding the question's rare words) sink below
    # chunks that are merely close to the question by meaning, and the other way round.
    rank_weight: float = 0.3


DEFAULT_FUSION = Fusion()
# Keyword arm: BM25 over any of the question's terms, idf from the column's ANALYZE statistics.
BM25_K1 = 1.2
IDF_SMOOTHING = 0.001
UNKNOWN_FREQUENCY = 0.01  # no statistics yet (a fresh table): every term weighs the same
# The rarest terms are matched first; a common one joins only while the chunks the rarer ones
# are expected to match (table-wide frequency x the project's chunks) stay under this bound, so
# the arm ranks a bounded set of chunks in big projects. The rarest term always counts.
MAX_KEYWORD_MATCHES = 1000
EXACT_BONUS = 100.0  # chunks with every term (websearch semantics) or the quoted phrases first
MAX_TERMS = 16
# Projects up to this many chunks rank their vectors exactly (recall 1.0, cost grows with the
# project: ~20 ms p95 at 13,000 chunks in a million-chunk table); bigger ones use an HNSW graph
# (bench/query.py --skew zipf measures both). The setting's default: callers pass the setting.
EXACT_SEARCH_MAX_CHUNKS: int = Settings.model_fields["exact_search_max_chunks"].default
# A narrowed search ranks through the project's IVFFlat index while its chunks are at most this
# share of the project's, beyond which the HNSW walk is as fast and exact (1M bench, whole
# search: 20% filter 31.4 -> 23.7 ms p50 with IVF and 25% 25.6 -> 21.2, but 50% 27.4 -> 26.6 at
# recall@10 0.982 against 1.000).
IVF_MAX_SHARE = 0.4
# The keyword arm reads at most this many GIN postings (table-wide, the rarest term whatever its
# count) per query, and tests a project's own rows instead when that is cheaper: one row tested
# (its tsvector is TOASTed) costs about as much as KEYWORD_SCAN_COST_RATIO postings read
# (bench/query.py --skew zipf). A big project's own GIN index (common/ingestion/project_indexes)
# holds only its postings, so reading it costs less than this table-wide count says: the choice
# errs toward the row scan, and the terms kept are the same with or without that index.
MAX_INDEX_POSTINGS = 20_000
KEYWORD_SCAN_COST_RATIO = 6.0
# hnsw.max_scan_tuples per query: candidates x SCAN_TUPLES_MARGIN / (the project's share of the
# table), within [pgvector's default, the cap], so a filtered scan neither stops short for a
# mid-sized project nor wanders a whole big table.
MIN_SCAN_TUPLES = 20_000
MAX_SCAN_TUPLES_CAP = 200_000
SCAN_TUPLES_MARGIN = 3


@dataclass(frozen=True)
class RetrievedChunk:
    """One fused result, ranked 1..n (rank 1 = best)."""

    rank: int
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    title: str
    gcs_uri: str | None
    page_start: int | None
    page_end: int | None
    location: str | None
    content: str
    token_count: int
    score: float  # cosine similarity in [-1, 1] (1 = same direction)
    rrf_score: float
    # The document's attributes, its own and the automatic ones (see common.platform.attributes).
    attributes: dict[str, object] = field(default_factory=dict)


class EmbeddingModelMismatchError(ApiError):
    """The project's chunks were embedded by another model than the configured one.

    409 Conflict: the request is valid but the project's index is in a state this deployment
    cannot search (vectors of two models are not comparable); re-embed the documents
    (`ai-infra documents reprocess`) or configure the model they were built with.
    """

    def __init__(self, configured: str, found: Sequence[str]) -> None:
        super().__init__(
            409,
            "embedding_model_mismatch",
            f"this project's documents were embedded with {', '.join(sorted(found))} but the "
            f"service embeds questions with {configured}; reprocess the documents or "
            "configure the same embedding model",
        )
        self.configured = configured
        self.found = tuple(found)


_MISMATCHED = """
    SELECT DISTINCT embedding_model FROM documents
    WHERE project_id = :project_id AND status <> 'failed'
      AND embedding_model IS NOT NULL AND embedding_model <> :model
      AND (CAST(:document_ids AS uuid[]) IS NULL OR id = ANY(CAST(:document_ids AS uuid[])))
    LIMIT 5
"""
_MISMATCHED_MODELS = text(_MISMATCHED)
# Ownership, the project's active space and the model check in one statement (one snapshot: a
# model switch flips the space and the documents' model together), run per request.
_SEARCHABLE = text(
    """
    WITH owned AS (
        SELECT p.active_space_id, coalesce(s.model, :model) AS model
        FROM projects p LEFT JOIN embedding_spaces s ON s.id = p.active_space_id
        WHERE p.id = :project_id AND p.team_id = :team_id
    )
    SELECT EXISTS (SELECT 1 FROM owned) AS owned,
           (SELECT active_space_id FROM owned) AS active_space_id,
           ARRAY(
               SELECT DISTINCT d.embedding_model FROM documents d, owned o
               WHERE d.project_id = :project_id AND d.status <> 'failed'
                 AND d.embedding_model IS NOT NULL AND d.embedding_model <> o.model
                 AND (CAST(:document_ids AS uuid[]) IS NULL
                      OR d.id = ANY(CAST(:document_ids AS uuid[])))
               LIMIT 5
           ) AS mismatched
    """
)


def _ids(document_ids: Sequence[uuid.UUID] | None) -> list[uuid.UUID] | None:
    return list(document_ids) if document_ids is not None else None


def matching_documents(
    session: Session,
    project_id: uuid.UUID,
    document_filter: CompiledFilter,
    document_ids: Sequence[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """The searchable documents a filter keeps (and `document_ids` names, when given): what a
    filtered listing shows. A search does not call it: it evaluates the filter itself (see
    `_hybrid_sql`), in its first round trip to size the plan by the matching chunks.
    """
    statement = text(
        "SELECT d.id FROM documents d WHERE d.project_id = :project_id AND d.status <> 'failed' "
        "AND (CAST(:document_ids AS uuid[]) IS NULL OR d.id = ANY(CAST(:document_ids AS uuid[]))) "
        f"AND {document_filter.sql}"
    )
    params = {"project_id": project_id, "document_ids": _ids(document_ids)}
    return list(session.scalars(statement, {**params, **document_filter.params}))


def check_embedding_model(
    session: Session,
    project_id: uuid.UUID,
    model: str,
    document_ids: Sequence[uuid.UUID] | None = None,
) -> None:
    """Raise EmbeddingModelMismatchError when any searchable document used another model."""
    params = {"project_id": project_id, "model": model, "document_ids": _ids(document_ids)}
    rows = session.execute(_MISMATCHED_MODELS, params).all()
    if rows:
        raise EmbeddingModelMismatchError(model, [row[0] for row in rows])


def check_searchable(
    session: Session,
    *,
    team_id: uuid.UUID,
    project_id: uuid.UUID,
    model: str,
    document_ids: Sequence[uuid.UUID] | None = None,
) -> uuid.UUID | None:
    """404 unless the team owns the project; 409 if its chunks came from another model than
    its active space's (`model`: the configured one, the inline space's). Returns the active
    space's id (None: inline)."""
    row = session.execute(
        _SEARCHABLE,
        {
            "team_id": team_id,
            "project_id": project_id,
            "model": model,
            "document_ids": _ids(document_ids),
        },
    ).one()
    if not row.owned:
        raise ApiError(404, "not_found", "project not found")
    if row.mismatched:
        raise EmbeddingModelMismatchError(model, list(row.mismatched))
    active: uuid.UUID | None = row.active_space_id
    return active


def active_space(
    session: Session, team_id: uuid.UUID, project_id: uuid.UUID, settings: Settings
) -> EmbeddingSpace:
    """The embedding space the project's queries use; 404 unless the team owns the project."""
    space_id = session.execute(
        text("SELECT active_space_id FROM projects WHERE id = :project_id AND team_id = :team_id"),
        {"project_id": project_id, "team_id": team_id},
    ).first()
    if space_id is None:
        raise ApiError(404, "not_found", "project not found")
    return load_space(session, space_id[0], settings)


ARMS = ("hybrid", "dense", "keyword")


# What identifies the keyword column's statistics: the server (its start), database, schema and
# table, and when the table was last analyzed, by hand or by autovacuum (a new ANALYZE changes it).
STATISTICS_KEY = (
    "concat_ws('/', current_database(), current_schema(), pg_postmaster_start_time(), "
    "CAST(to_regclass('document_chunks') AS oid), "
    "pg_stat_get_last_analyze_time(to_regclass('document_chunks')), "
    "pg_stat_get_last_autoanalyze_time(to_regclass('document_chunks')))"
)
# A process keeps its copy of the statistics at most this long even when the key stands still:
# ANALYZE reports its time a moment before its transaction commits, so a question in between
# can read the new key with the old statistics.
STATISTICS_MAX_AGE_SECONDS = 300.0


# Round trip 1: this transaction's HNSW knobs, the project's size, and the question's terms. The
# keyword statement then carries its terms as bound values, so Postgres plans it knowing how many
# rows they match (a tsquery computed inside the statement is a guess of 0.5% of the table, which
# sent small projects through a table-wide GIN scan). The scan budget grows as the project's
# share of the table shrinks: relaxed iterative HNSW scans visit about candidates / share tuples
# before `candidates` of them pass the project filter. A narrowed search names the project's
# IVFFlat index: its lists when it is there and valid (the search then probes sqrt(lists) of
# them first, pgvector's advice; recall@10 0.995 at 366 lists), and one scan of the project's
# documents sums both its chunks and the narrowed ones (FILTER). The terms' frequencies come from
# the process's copy of the column's statistics (`_term_statistics`), checked against the key
# read here: reading `pg_stats` in every question cost ~1.4 ms of a ~12 ms search.
_PREPARE_SQL = f"""
    WITH project AS (
        SELECT coalesce(sum(d.chunk_count) FILTER (WHERE {{kept}}), 0) AS chunks,
               (SELECT greatest(reltuples, 0) FROM pg_class
                WHERE oid = CAST(:vector_table AS regclass)) AS table_rows,
               (SELECT CAST(o.option_value AS int)
                FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
                CROSS JOIN LATERAL pg_options_to_table(x.reloptions) o
                WHERE i.indexrelid = to_regclass(CAST(:ivf_index AS text)) AND i.indisvalid
                  AND o.option_name = 'lists') AS ivf_lists,
               CASE WHEN CAST(:ivf_index AS text) IS NOT NULL THEN
                   coalesce(sum(d.chunk_count), 0)
               END AS project_chunks
               {{matching_ids}}
        FROM documents d
        WHERE d.project_id = :project_id AND d.status <> 'failed' AND {{narrowed}}
    ), knobs AS (
        SELECT set_config('hnsw.ef_search', :ef_search, true) AS ef_search,
               set_config('hnsw.iterative_scan', 'relaxed_order', true) AS iterative,
               set_config('hnsw.max_scan_tuples', CAST(CAST(least({MAX_SCAN_TUPLES_CAP},
                   greatest({MIN_SCAN_TUPLES}, ceil(CAST(:dense_candidates AS float8)
                   * {SCAN_TUPLES_MARGIN} * p.table_rows / greatest(p.chunks, 1))))
                   AS bigint) AS text), true) AS scan_tuples,
               set_config('ivfflat.probes', CAST(CAST(ceil(sqrt(greatest(p.ivf_lists, 1)))
                   AS int) AS text), true) AS probes,
               set_config('ivfflat.iterative_scan', 'relaxed_order', true) AS ivf_iterative
        FROM project p
    )
    SELECT p.chunks, p.table_rows, p.ivf_lists, p.project_chunks, k.scan_tuples,
           {STATISTICS_KEY} AS statistics_key,
           tsvector_to_array(to_tsvector('{TS_CONFIG}', :question)) AS lexemes
    FROM project p
    CROSS JOIN knobs k
"""


# A filter's matching documents, kept by round trip 1 for the search (transaction-local): the
# ids stay in the server (thousands of them cost more through the driver than the search) and
# the filter is evaluated once.
MATCHING_SETTING = "ai_infra.matching_documents"
_MATCHING_IDS = (
    f", set_config('{MATCHING_SETTING}', CAST(coalesce(array_agg(d.id) FILTER (WHERE "
    "{kept}), '{}') AS text), true) AS matching"
)
_NARROWED = (
    "(CAST(:document_ids AS uuid[]) IS NULL OR d.id = ANY(CAST(:document_ids AS uuid[]))) "
    "AND {document_filter}"
)


@functools.lru_cache(maxsize=256)
def _prepare_statement(document_filter: str | None, whole_project: bool = False) -> TextClause:
    """Round trip 1 for this filter (None: none), built once per process and filter shape;
    `whole_project`: the project's own total too (an IVFFlat choice), in the same scan."""
    narrowed = _NARROWED.replace("{document_filter}", document_filter or "true")
    where, kept = ("true", narrowed) if whole_project else (narrowed, "true")
    matching = _MATCHING_IDS if document_filter is not None else ""
    sql = (
        _PREPARE_SQL.replace("{matching_ids}", matching)
        .replace("{kept}", kept)
        .replace("{narrowed}", where)
    )
    return text(" ".join(sql.split()))


_STATISTICS_SQL = text(
    "SELECT CAST(CAST(most_common_elems AS text) AS text[]) AS elems, "
    "most_common_elem_freqs AS freqs FROM pg_stats WHERE schemaname = current_schema() "
    "AND tablename = 'document_chunks' AND attname = 'content_tsv'"
)


@dataclass(frozen=True)
class _TermStatistics:
    """The keyword column's most common lexemes and the share of chunks holding each."""

    frequencies: dict[str, float]
    unlisted: float  # a lexeme absent from them is rarer than any listed one
    loaded_at: float  # time.monotonic()

    def frequency(self, lexeme: str) -> float:
        return self.frequencies.get(lexeme, self.unlisted)


_STATISTICS: dict[str, _TermStatistics] = {}
_STATISTICS_LOCK = threading.Lock()


def _term_statistics(session: Session, key: str) -> _TermStatistics:
    """The process's copy of the statistics under `key`, read from `pg_stats` when the key is
    new or the copy is older than STATISTICS_MAX_AGE_SECONDS."""
    now = time.monotonic()
    cached = _STATISTICS.get(key)
    if cached is not None and now - cached.loaded_at < STATISTICS_MAX_AGE_SECONDS:
        return cached
    row = session.execute(_STATISTICS_SQL).first()
    if row is None or row.elems is None or row.freqs is None or len(row.freqs) < 3:
        statistics = _TermStatistics({}, UNKNOWN_FREQUENCY, now)  # never analyzed yet
    else:
        # most_common_elem_freqs (real[]) ends with the minimum, maximum and null frequency;
        # each kept as the exact float4 value, as Postgres widens it.
        freqs = [float(np.float32(freq)) for freq in row.freqs]
        statistics = _TermStatistics(dict(zip(row.elems, freqs, strict=False)), freqs[-3] / 2, now)
    with _STATISTICS_LOCK:
        if len(_STATISTICS) >= 64:  # servers, databases or schemas come and go (tests)
            _STATISTICS.clear()
        _STATISTICS[key] = statistics
    return statistics


class _Term(NamedTuple):
    lexeme: str
    idf: float
    freq: float  # share of all chunks holding it (ANALYZE statistics)


@dataclass(frozen=True)
class _Terms:
    """The keyword arm's inputs, decided in round trip 1."""

    lexemes: list[str]  # matched and ranked (within the MAX_KEYWORD_MATCHES budget)
    idfs: list[float]
    question_idf: float  # over every term of the question, kept or not
    candidates: str  # tsquery: every chunk that can rank (see `candidate_query`)
    use_index: bool  # read the candidates through GIN (else test the project's rows)


_OPERATORS = re.compile(r'"|(^|\s)-\w|\bor\b', re.IGNORECASE)


def _quoted(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def candidate_query(question: str, lexemes: list[str], idfs: list[float], bar: float) -> str:
    """A tsquery over the kept terms that every chunk able to rank matches.

    A chunk ranks when its kept terms carry `bar` idf mass (then it holds a term worth `bar`
    alone, or at least two terms) or when it matches the whole question; without websearch
    operators the latter holds every kept term. So `strong | (w1 & (w2 | w3 ...)) | ...` loses
    none of them while GIN and the recheck drop the chunks sharing one weak word with the
    question before BM25 is computed for them (the arm's main cost on long questions). With
    `or`, `-term` or quotes the whole-question match is not a conjunction: any kept term then.
    """
    quoted = [_quoted(lexeme) for lexeme in lexemes]
    if len(quoted) <= 1 or _OPERATORS.search(question):
        return " | ".join(quoted)
    strong = [q for q, idf in zip(quoted, idfs, strict=True) if idf >= bar]
    weak = [q for q, idf in zip(quoted, idfs, strict=True) if idf < bar]
    pairs = [
        f"({first} & ({' | '.join(weak[number + 1 :])}))" for number, first in enumerate(weak[:-1])
    ]
    return " | ".join(strong + pairs)


def _prepare(
    session: Session,
    *,
    project_id: uuid.UUID,
    question: str,
    ef_search: int,
    dense_candidates: int,
    min_coverage: float,
    document_ids: Sequence[uuid.UUID] | None,
    vector_table: str = "document_chunks",
    document_filter: CompiledFilter | None = None,
    ivf_index: str | None = None,
) -> tuple[int, bool, _Terms]:
    """The chunks to rank, whether `ivf_index` can serve them, and the keyword arm's terms."""
    row = session.execute(
        _prepare_statement(
            document_filter.sql if document_filter is not None else None, ivf_index is not None
        ),
        {
            **(document_filter.params if document_filter is not None else {}),
            "vector_table": vector_table,
            "ivf_index": ivf_index,
            "project_id": project_id,
            "document_ids": _ids(document_ids),
            "ef_search": str(int(ef_search)),
            "dense_candidates": dense_candidates,
            "question": question,
        },
    ).one()
    chunks, table_rows = int(row.chunks), float(row.table_rows)
    ivf = row.ivf_lists is not None and chunks <= IVF_MAX_SHARE * float(row.project_chunks or 0)
    statistics = _term_statistics(session, str(row.statistics_key))
    frequencies = ((lexeme, statistics.frequency(lexeme)) for lexeme in row.lexemes[:MAX_TERMS])
    terms = sorted(
        (
            _Term(lexeme, math.log(1 + (1 - freq) / (freq + IDF_SMOOTHING)), freq)
            for lexeme, freq in frequencies
        ),
        key=lambda term: (term.freq, term.lexeme),  # the rarest first
    )
    question_idf = sum(term.idf for term in terms)
    # A common term joins while the rarer ones' expected matches in the project stay under the
    # budget (the rarest always counts).
    kept: list[_Term] = []
    rarer = 0.0
    for term in terms:
        if rarer * chunks >= MAX_KEYWORD_MATCHES:
            break
        kept.append(term)
        rarer += term.freq
    # Read through GIN, each term costs its postings in EVERY project: a common one joins only
    # while the postings so far stay under MAX_INDEX_POSTINGS. Testing the project's own rows
    # costs per row instead (no cap); the cheaper way serves the query.
    indexed: list[_Term] = []
    read = 0.0
    for term in kept:
        read += term.freq
        if indexed and read * table_rows > MAX_INDEX_POSTINGS:
            break
        indexed.append(term)
    postings = sum(term.freq for term in indexed) * table_rows
    use_index = postings < chunks * KEYWORD_SCAN_COST_RATIO
    chosen = indexed if use_index else kept
    lexemes = [term.lexeme for term in chosen]
    idfs = [term.idf for term in chosen]
    return (
        chunks,
        ivf,
        _Terms(
            lexemes=lexemes,
            idfs=idfs,
            question_idf=question_idf,
            candidates=candidate_query(question, lexemes, idfs, min_coverage * question_idf),
            use_index=use_index,
        ),
    )


# The keyword arm's BM25 reads only the question's lexemes of a chunk: setweight marks them
# (weight A, a binary search each) and ts_filter keeps them, so a matching chunk is not unnested
# whole. (No SQL comments in the statement: its whitespace is collapsed to one line.)
def _hybrid_sql(
    *,
    with_documents: bool,
    with_min_score: bool,
    arms: str = "hybrid",
    exact: bool = False,
    keyword_index: bool = True,
    space: EmbeddingSpace | None = None,
    filtered: bool = False,
    ivf_dimensions: int | None = None,
) -> str:
    """The search statement; `arms` keeps one arm alone (dense, keyword) for bench/quality.py.

    `exact` orders the vector arm by an expression the HNSW index cannot serve, so Postgres
    ranks the project's chunks exactly (project_id index, then a top-N sort). Without
    `keyword_index` the keyword arm tests the project's own rows instead of reading the GIN
    index, whose posting lists span every project (an OFFSET 0 subquery keeps the match out of
    the index conditions).

    `filtered`: round trip 1 kept a filter's matching documents in MATCHING_SETTING. Rows read
    in index order (the graph, GIN) test them through a hashed subplan (`IS TRUE` keeps the
    planner from turning it into a join, which would lose the index order); rows read by
    document (exact ranking, the keyword arm's own rows) come from the matching documents
    through the (document_id, chunk_index) index, never from the whole project's.

    `ivf_dimensions`: a narrowed walk orders the inline vectors by their halfvec at that
    dimension, the key of the project's IVFFlat index (`project_indexes`), which ranks a
    filter's matching chunks in one pass of a few lists instead of a long HNSW walk; the
    arm keeps the exact distance.
    """
    matching = (
        ""
        if not filtered
        else "matching AS MATERIALIZED (SELECT unnest(CAST(current_setting("
        f"'{MATCHING_SETTING}') AS uuid[])) AS id), "
    )

    def document_scope(alias: str) -> str:
        if filtered:
            return f"AND ({alias}document_id IN (SELECT id FROM matching)) IS TRUE"
        return (
            f"AND {alias}document_id = ANY(CAST(:document_ids AS uuid[]))" if with_documents else ""
        )

    def by_document(columns: str, rows: str) -> str:
        """`rows` (chunks `c`, maybe joined) of the matching documents only, read by document."""
        return (
            "(SELECT m.* FROM matching f CROSS JOIN LATERAL ("
            f"SELECT {columns} FROM {rows} WHERE c.document_id = f.id OFFSET 0) m)"
        )

    doc = document_scope("c.")
    # The vectors: inline in the chunks, or in a space's own table (a model switch's).
    if space is None or space.table is None:
        vectors, source, owner, scored = "c.embedding", "document_chunks c", "c", ""
    else:
        vectors = "v.embedding"
        source = f"{space.table} v JOIN document_chunks c ON c.id = v.chunk_id"
        owner = "v"
        scored = f"JOIN {space.table} v ON v.chunk_id = c.id"
    cast = f"CAST(:q AS {space.vector_type if space else 'vector'})"
    distance = f"{vectors} <=> {cast}"
    vector_rows = f"{source} WHERE {owner}.project_id = :project_id {doc}"
    ranked = distance
    if filtered and exact:
        columns = f"c.id, c.document_id, c.chunk_index, {distance} AS distance"
        vector_rows, ranked = by_document(columns, source) + " c", "c.distance"
    score_filter = f"AND 1 - ({distance}) >= :min_score"
    dense = "true" if arms in ("hybrid", "dense") else "false"
    keyword = "true" if arms in ("hybrid", "keyword") else "false"
    keyword_doc = doc
    if keyword_index:
        keyword_rows = "document_chunks"
    elif filtered:
        keyword_rows = by_document(
            "c.id, c.project_id, c.document_id, c.chunk_index, c.content_tsv", "document_chunks c"
        )
        keyword_doc = ""
    else:
        keyword_rows = (
            "(SELECT id, project_id, document_id, chunk_index, content_tsv FROM document_chunks "
            f"WHERE project_id = :project_id {document_scope('')} OFFSET 0)"
        )
    order = f"({ranked}) + 0" if exact else ranked
    if ivf_dimensions is not None:
        halfvec = f"halfvec({ivf_dimensions})"
        order = f"CAST({vectors} AS {halfvec}) <=> CAST(:q AS {halfvec})"
    return f"""
    WITH {matching} vector_arm AS MATERIALIZED (
        SELECT c.id, c.document_id, c.chunk_index, {ranked} AS distance
        FROM {vector_rows}
        ORDER BY {order}
        LIMIT :dense_candidates
    ), vector_ranked AS (
        SELECT id, document_id, chunk_index, row_number() OVER (ORDER BY distance) AS rank,
               CASE WHEN CAST(:dense_floor AS float8) IS NULL THEN
                   (max(distance) OVER () - distance)
                   / nullif(max(distance) OVER () - min(distance) OVER (), 0)
               ELSE
                   greatest(1 - distance - CAST(:dense_floor AS float8), 0)
                   / greatest(1 - min(distance) OVER () - CAST(:dense_floor AS float8), 1e-9)
               END AS norm
        FROM vector_arm
    ), terms AS (
        SELECT lexeme, idf
        FROM unnest(CAST(:term_lexemes AS text[]), CAST(:term_idfs AS float8[])) AS t(lexeme, idf)
    ), keyword_arm AS MATERIALIZED (
        SELECT c.id, c.document_id, c.chunk_index,
               m.bm25 + CASE WHEN m.exact THEN {EXACT_BONUS} ELSE 0 END AS relevance
        FROM {keyword_rows} c
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(t.idf * cardinality(u.positions) * {BM25_K1 + 1}
                                / (cardinality(u.positions) + {BM25_K1})), 0) AS bm25,
                   coalesce(sum(t.idf), 0) AS matched_idf,
                   c.content_tsv @@ websearch_to_tsquery('{TS_CONFIG}', :question)
                   OR (CAST(:phrases AS text) <> ''
                       AND c.content_tsv @@ websearch_to_tsquery('{TS_CONFIG}', :phrases))
                   AS exact
            FROM unnest(ts_filter(setweight(c.content_tsv, 'A',
                                            CAST(:term_lexemes AS text[])), '{{a}}')) AS u
            JOIN terms t ON t.lexeme = u.lexeme
        ) m
        WHERE c.project_id = :project_id {keyword_doc}
          AND c.content_tsv @@ CAST(:candidates AS tsquery)
          AND (m.exact OR m.matched_idf >= CAST(:min_coverage AS float8) * :question_idf)
        ORDER BY relevance DESC
        LIMIT :keyword_candidates
    ), keyword_ranked AS (
        SELECT id, document_id, chunk_index, rank() OVER (ORDER BY relevance DESC) AS rank,
               (relevance - min(relevance) OVER ())
               / nullif(max(relevance) OVER () - min(relevance) OVER (), 0) AS norm
        FROM keyword_arm
    ), fused AS (
        SELECT coalesce(v.id, k.id) AS id, coalesce(v.document_id, k.document_id) AS document_id,
               coalesce(v.chunk_index, k.chunk_index) AS chunk_index,
               CASE WHEN CAST(:relative AS boolean) THEN
                   CAST(:dense_weight AS float8)
                   * CASE WHEN v.id IS NULL THEN 0 ELSE coalesce(v.norm, 1) END
                   + CAST(:keyword_weight AS float8)
                   * CASE WHEN k.id IS NULL THEN 0 ELSE coalesce(k.norm, 1) END
                   + CAST(:rank_weight AS float8) * (CAST(:rrf_k AS float8) + 1) * (
                       coalesce(
                           CAST(:dense_weight AS float8) / (CAST(:rrf_k AS float8) + v.rank), 0
                       )
                       + coalesce(
                           CAST(:keyword_weight AS float8) / (CAST(:rrf_k AS float8) + k.rank), 0
                       )
                   )
               ELSE
                   coalesce(CAST(:dense_weight AS float8) / (CAST(:rrf_k AS float8) + v.rank), 0)
                   + coalesce(
                       CAST(:keyword_weight AS float8) / (CAST(:rrf_k AS float8) + k.rank), 0
                   )
               END AS rrf
        FROM (SELECT * FROM vector_ranked WHERE {dense}) v
        FULL OUTER JOIN (SELECT * FROM keyword_ranked WHERE {keyword}) k ON v.id = k.id
    ), smoothed AS (
        SELECT id, rrf + CAST(:neighbour_weight AS float8) * greatest(
                   CASE WHEN lag(chunk_index) OVER w = chunk_index - 1 THEN lag(rrf) OVER w END,
                   CASE WHEN lead(chunk_index) OVER w = chunk_index + 1 THEN lead(rrf) OVER w END,
                   0) AS rrf
        FROM fused
        WINDOW w AS (PARTITION BY document_id ORDER BY chunk_index)
    )
    SELECT c.id, c.document_id, d.title, d.gcs_uri, c.page_start, c.page_end, c.location,
           c.content, d.attributes, d.path, d.mime_type, CAST(d.source_type AS text) AS source,
           d.created_at, d.updated_at,
           c.token_count, 1 - ({distance}) AS score, f.rrf
    FROM smoothed f
    JOIN document_chunks c ON c.id = f.id
    {scored}
    JOIN documents d ON d.id = c.document_id
    WHERE d.status <> 'failed' {score_filter if with_min_score else ""}
    ORDER BY f.rrf DESC, score DESC, c.id
    LIMIT :top_k
    """


@functools.lru_cache(maxsize=256)
def _statement(
    docs: bool,
    score: bool,
    arms: str,
    *,
    exact: bool,
    index: bool,
    space: EmbeddingSpace | None,
    filtered: bool = False,
    ivf_dimensions: int | None = None,
) -> TextClause:
    """The search statement for these choices, built once per process."""
    # Whitespace collapsed: the driver scans the statement text on every execution.
    sql = _hybrid_sql(
        with_documents=docs,
        with_min_score=score,
        arms=arms,
        exact=exact,
        keyword_index=index,
        space=space if space is not None and space.table is not None else None,
        filtered=filtered,
        ivf_dimensions=ivf_dimensions,
    )
    return text(" ".join(sql.split()))


_QUOTED = re.compile(r'"([^"]+)"')


def quoted_phrases(question: str) -> str:
    """The question's quoted phrases as a websearch query (every phrase required), or ''."""
    phrases = [" ".join(match.split()) for match in _QUOTED.findall(question)]
    return " ".join(f'"{phrase}"' for phrase in phrases if phrase)


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form; float32 printed with enough digits to round-trip."""
    values = np.asarray(vector, dtype=np.float32)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError("a query vector must be one finite row")
    return "[" + ",".join(f"{value:.8g}" for value in values.tolist()) + "]"


def _prepared(
    session: Session,
    *,
    project_id: uuid.UUID,
    query_vector: np.ndarray,
    question: str,
    top_k: int,
    ef_search: int,
    exact_max_chunks: int = EXACT_SEARCH_MAX_CHUNKS,
    min_score: float | None,
    document_ids: Sequence[uuid.UUID] | None,
    arms: str,
    fusion: Fusion,
    document_filter: CompiledFilter | None = None,
    space: EmbeddingSpace | None = None,
) -> tuple[TextClause, dict[str, object]]:
    """Configure this transaction's search and return the statement with its parameters;
    `space`: where the project's vectors are (None or the inline space: with the chunks)."""
    dense_candidates = max(top_k * fusion.dense_candidates_per_result, fusion.min_candidates)
    inline = space is None or space.table is None
    narrowed = document_filter is not None or document_ids is not None
    chunks, ivf, terms = _prepare(
        session,
        project_id=project_id,
        question=question,
        ef_search=ef_search,
        dense_candidates=dense_candidates,
        min_coverage=fusion.min_coverage,
        document_ids=document_ids,
        vector_table=space.table if space is not None and space.table else "document_chunks",
        document_filter=document_filter,
        ivf_index=ivf_index_name(project_id) if narrowed and inline else None,
    )
    exact = chunks <= exact_max_chunks
    keyword_index = terms.use_index
    statement = _statement(
        document_ids is not None,
        min_score is not None,
        arms,
        exact=exact,
        index=keyword_index,
        space=space,
        filtered=document_filter is not None,
        ivf_dimensions=len(query_vector) if ivf and not exact else None,
    )
    params: dict[str, object] = {
        "q": vector_literal(query_vector),
        "question": question,
        "phrases": quoted_phrases(question),
        "project_id": project_id,
        "dense_candidates": dense_candidates,
        "keyword_candidates": max(
            top_k * fusion.keyword_candidates_per_result, fusion.min_candidates
        ),
        "term_lexemes": terms.lexemes,
        "term_idfs": terms.idfs,
        "question_idf": terms.question_idf,
        "candidates": terms.candidates,
        "rrf_k": fusion.rrf_k,
        "dense_weight": fusion.dense_weight,
        "keyword_weight": fusion.keyword_weight,
        "min_coverage": fusion.min_coverage,
        "relative": fusion.relative,
        "dense_floor": fusion.dense_floor,
        "rank_weight": fusion.rank_weight,
        # A single arm (bench/quality.py) is ranked by its own scores alone.
        "neighbour_weight": fusion.neighbour_weight if arms == "hybrid" else 0.0,
        "top_k": top_k,
    }
    if document_ids is not None:
        params["document_ids"] = list(document_ids)
    if min_score is not None:
        params["min_score"] = float(min_score)
    return statement, params


def search(
    session: Session,
    *,
    project_id: uuid.UUID,
    query_vector: np.ndarray,
    question: str,
    top_k: int,
    ef_search: int,
    exact_max_chunks: int = EXACT_SEARCH_MAX_CHUNKS,
    min_score: float | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    document_filter: CompiledFilter | None = None,
    space: EmbeddingSpace | None = None,
    arms: str = "hybrid",
    fusion: Fusion = DEFAULT_FUSION,
) -> list[RetrievedChunk]:
    """The project's top_k chunks for this question, best first (see the module docstring).

    `arms` = "dense" or "keyword" ranks by that arm alone (bench/quality.py measures each).
    """
    statement, params = _prepared(
        session,
        project_id=project_id,
        query_vector=query_vector,
        question=question,
        top_k=top_k,
        ef_search=ef_search,
        exact_max_chunks=exact_max_chunks,
        min_score=min_score,
        document_ids=document_ids,
        document_filter=document_filter,
        space=space,
        arms=arms,
        fusion=fusion,
    )
    rows = session.execute(statement, params).all()
    return [
        RetrievedChunk(
            rank=rank,
            chunk_id=row.id,
            document_id=row.document_id,
            title=row.title,
            gcs_uri=row.gcs_uri,
            page_start=row.page_start,
            page_end=row.page_end,
            location=row.location,
            content=row.content,
            token_count=int(row.token_count),
            score=float(row.score),
            rrf_score=float(row.rrf),
            attributes=document_attributes(
                row.attributes,
                path=row.path,
                mime_type=row.mime_type,
                source_type=row.source,
                created_at=row.created_at,
                updated_at=row.updated_at,
            ),
        )
        for rank, row in enumerate(rows, start=1)
    ]


def explain_search(
    session: Session,
    *,
    project_id: uuid.UUID,
    query_vector: np.ndarray,
    question: str,
    top_k: int,
    ef_search: int,
    exact_max_chunks: int = EXACT_SEARCH_MAX_CHUNKS,
    document_ids: Sequence[uuid.UUID] | None = None,
    document_filter: CompiledFilter | None = None,
    space: EmbeddingSpace | None = None,
) -> str:
    """Postgres's plan for the statement `search` would run now (bench/query.py prints it)."""
    statement, params = _prepared(
        session,
        project_id=project_id,
        query_vector=query_vector,
        question=question,
        top_k=top_k,
        ef_search=ef_search,
        exact_max_chunks=exact_max_chunks,
        min_score=None,
        document_ids=document_ids,
        document_filter=document_filter,
        space=space,
        arms="hybrid",
        fusion=DEFAULT_FUSION,
    )
    explained = text("EXPLAIN " + str(statement))
    return "\n".join(str(row[0]) for row in session.execute(explained, params))


def fit_to_budget(chunks: Sequence[RetrievedChunk], budget_tokens: int) -> list[RetrievedChunk]:
    """Keep chunks by rank while they fit the generator's context budget.

    Greedy by rank: a chunk too large for what is left is skipped and a smaller, lower-ranked
    one may still fit, so the budget is used without ever reordering by anything but rank.
    """
    kept: list[RetrievedChunk] = []
    used = 0
    for chunk in chunks:
        if used + chunk.token_count <= budget_tokens:
            kept.append(chunk)
            used += chunk.token_count
    return kept
