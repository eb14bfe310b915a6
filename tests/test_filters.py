"""The filter language on real Postgres: every operator's semantics, errors that point at the
offending part, and filtered search returning the true top-k of the matching chunks whichever
plan (exact or graph) serves it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from common.inference.embeddings import get_embedder
from common.platform.attributes import AttributeValue, CachedRegistry, known_types
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.errors import ApiError
from common.query import documents, retrieval
from common.query.filters import compile_filter, parse_filter_text
from common.query.retrieval import RetrievedChunk, matching_documents, search
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import insert_document

DOCUMENTS: dict[str, dict[str, AttributeValue]] = {
    "lease-2025": {
        "department": "legal",
        "year": 2025,
        "signed": True,
        "tags": ["lease", "urgent"],
        "effective": "2025-03-01",
    },
    "lease-2024": {
        "department": "legal",
        "year": 2024,
        "signed": False,
        "tags": ["lease"],
        "effective": "2024-06-15T12:00:00+02:00",
    },
    "payroll": {"department": "hr", "year": 2025, "tags": ["payroll"]},
    "handbook": {"department": "hr", "owner": "Kim Larsen"},
    "plain": {},
}


@pytest.fixture(scope="module")
def filtered(database_url: str) -> Tenant:
    tenant = make_tenant("filters")
    for name, attributes in DOCUMENTS.items():
        folder = "contracts/" if "lease" in name else ""
        insert_document(
            tenant,
            name,
            [f"The {name} document says the harbour crane lifts {len(name)} tonnes."],
            gcs_uri=f"gs://b/{tenant.project_id}/{folder}{name}.txt",
            attributes=attributes,
        )
    return tenant


def _titles(tenant: Tenant, raw: object) -> set[str]:
    with transaction() as session:
        compiled = compile_filter(raw, known_types(session, tenant.project_id))
        page = documents.list_documents(
            session, tenant.team_id, tenant.project_id, document_filter=compiled
        )
    return {document.title for document in page.documents}


def _leaf(operator: str, key: str, value: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key}
    if operator != "exists":
        body["value"] = value
    return {operator: body}


CASES: list[tuple[object, set[str]]] = [
    (_leaf("equals", "department", "legal"), {"lease-2025", "lease-2024"}),
    (_leaf("notEquals", "department", "legal"), {"payroll", "handbook", "plain"}),
    (_leaf("in", "department", ["hr", "sales"]), {"payroll", "handbook"}),
    (_leaf("notIn", "department", ["hr"]), {"lease-2025", "lease-2024", "plain"}),
    (_leaf("equals", "year", 2025), {"lease-2025", "payroll"}),
    (_leaf("greaterThan", "year", 2024), {"lease-2025", "payroll"}),
    (_leaf("greaterThanOrEquals", "year", 2024), {"lease-2025", "lease-2024", "payroll"}),
    (_leaf("lessThan", "year", 2025), {"lease-2024"}),
    (_leaf("lessThanOrEquals", "year", 2025), {"lease-2025", "lease-2024", "payroll"}),
    (_leaf("equals", "signed", False), {"lease-2024"}),
    (_leaf("listContains", "tags", "lease"), {"lease-2025", "lease-2024"}),
    (_leaf("stringContains", "tags", "roll"), {"payroll"}),
    (_leaf("startsWith", "owner", "Kim"), {"handbook"}),
    (_leaf("stringContains", "owner", "Lars"), {"handbook"}),
    (_leaf("exists", "owner"), {"handbook"}),
    # Dates compare as instants: 2024-06-15T12:00+02:00 is 10:00 UTC.
    (_leaf("greaterThan", "effective", "2024-06-15T10:30:00Z"), {"lease-2025"}),
    (_leaf("lessThan", "effective", "2025-01-01"), {"lease-2024"}),
    (_leaf("equals", "effective", "2025-03-01T00:00:00Z"), {"lease-2025"}),
    (_leaf("startsWith", "path", "contracts/"), {"lease-2025", "lease-2024"}),
    (_leaf("equals", "folder", "contracts"), {"lease-2025", "lease-2024"}),
    (_leaf("equals", "file_type", "text"), set(DOCUMENTS)),
    (_leaf("equals", "source_type", "upload"), set(DOCUMENTS)),
    (_leaf("greaterThan", "created_at", "2020-01-01"), set(DOCUMENTS)),
    (
        {
            "andAll": [
                _leaf("equals", "department", "legal"),
                _leaf("greaterThanOrEquals", "year", 2025),
            ]
        },
        {"lease-2025"},
    ),
    (
        {"orAll": [_leaf("equals", "department", "hr"), _leaf("equals", "signed", True)]},
        {"lease-2025", "payroll", "handbook"},
    ),
    ({"not": _leaf("exists", "department")}, {"plain"}),
    ({"not": {"not": _leaf("equals", "year", 2024)}}, {"lease-2024"}),
]


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_each_operator_matches_exactly_the_documents_it_names(
    filtered: Tenant, raw: object, expected: set[str]
) -> None:
    assert _titles(filtered, raw) == expected


def _searched(tenant: Tenant, raw: object, arms: str, exact_max_chunks: int) -> set[str]:
    """The titles of every chunk a filtered search returns (each document has one)."""
    with transaction() as session:
        compiled = compile_filter(raw, CachedRegistry(session, tenant.project_id))
    chunks = _search(
        tenant,
        "harbour crane tonnes",
        top_k=20,
        exact_max_chunks=exact_max_chunks,
        document_filter=compiled,
        arms=arms,
    )
    return {chunk.title for chunk in chunks}


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_a_filtered_search_returns_only_and_all_the_documents_it_names(
    filtered: Tenant, raw: object, expected: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search evaluates the filter itself: ranked exactly and through the graph, and the
    keyword arm through the GIN index and through the matching documents' own rows."""
    assert _searched(filtered, raw, "dense", exact_max_chunks=1000) == expected
    assert _searched(filtered, raw, "dense", exact_max_chunks=0) == expected
    for ratio in (0.0, 1e12):  # never / always through the GIN index
        monkeypatch.setattr(retrieval, "KEYWORD_SCAN_COST_RATIO", ratio)
        assert _searched(filtered, raw, "keyword", exact_max_chunks=1000) == expected


ERRORS: list[tuple[object, str]] = [
    ("nope", "filter: must be an object with one operator"),
    ({"equals": {"key": "department", "value": "x"}, "in": {}}, "filter: must be an object"),
    ({"equal": {"key": "department", "value": "x"}}, "filter: unknown operator 'equal'"),
    (_leaf("equals", "departmnt", "legal"), "filter.equals.key: no document of this project"),
    (_leaf("equals", "year", "2025"), "filter.equals.value: must be a number"),
    (_leaf("greaterThan", "department", "a"), "'department' is a string: only numbers and dates"),
    (_leaf("listContains", "department", "a"), "'department' is a string, not a list"),
    (_leaf("in", "department", []), "filter.in.value: must be a list of 1-100 values"),
    (_leaf("lessThan", "effective", "soon"), "filter.lessThan.value: must be an ISO 8601 date"),
    ({"andAll": [_leaf("equals", "year", 1), {"or": []}]}, "filter.andAll[1]: unknown operator"),
    ({"andAll": []}, "filter.andAll: must be a non-empty list"),
    ({"equals": {"key": "year"}}, "filter.equals: takes exactly key and value"),
    ({"exists": {"key": "year", "value": 1}}, "filter.exists: takes exactly key"),
]


@pytest.mark.parametrize(("raw", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_a_bad_filter_is_a_422_naming_the_offending_part(
    filtered: Tenant, raw: object, message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        _titles(filtered, raw)
    assert caught.value.status == 422 and caught.value.code == "invalid_filter"
    assert message in caught.value.message


def test_deep_wide_and_malformed_filters_are_bounded(filtered: Tenant) -> None:
    deep: object = _leaf("exists", "year")
    for _ in range(10):
        deep = {"not": deep}
    with pytest.raises(ApiError, match="nest at most 8 levels"):
        _titles(filtered, deep)
    wide = {"orAll": [_leaf("equals", "year", n) for n in range(150)]}
    with pytest.raises(ApiError, match="at most 100 parts"):
        _titles(filtered, wide)
    with pytest.raises(ApiError, match="not valid JSON"):
        parse_filter_text("{oops")


def _search(tenant: Tenant, question: str, top_k: int = 10, **kwargs: Any) -> list[RetrievedChunk]:
    with transaction() as session:
        return search(
            session,
            project_id=tenant.project_id,
            query_vector=get_embedder().embed_query(question),
            question=question,
            top_k=top_k,
            ef_search=get_settings().hnsw_ef_search,
            **kwargs,
        )


def _ranked(tenant: Tenant, question: str, **kwargs: Any) -> list[uuid.UUID]:
    return [chunk.chunk_id for chunk in _search(tenant, question, **kwargs)]


def test_filtered_search_is_the_true_top_k_of_the_matching_chunks(database_url: str) -> None:
    """A filter matching a third of a project's chunks: the exact plan and the graph plan give
    the top 10 of exactly those chunks, the same as naming the documents outright."""
    tenant = make_tenant("filtered-search")
    sentences = [
        f"Report {n}: the {colour} pump in hall {n % 7} moves {n * 3} litres a minute."
        for n, colour in zip(range(90), ["red", "green", "blue"] * 30, strict=True)
    ]
    for start in range(0, 90, 3):
        insert_document(
            tenant,
            f"report {start}",
            sentences[start : start + 3],
            attributes={"team": ["alpha", "beta", "gamma"][start // 3 % 3]},
        )
    with transaction() as session:
        known = known_types(session, tenant.project_id)
        compiled = compile_filter(_leaf("equals", "team", "beta"), known)
        ids = matching_documents(session, tenant.project_id, compiled)
    assert len(ids) == 10
    question = "How many litres does the green pump in hall 3 move?"
    by_ids = _ranked(tenant, question, document_ids=ids)
    exact = _ranked(tenant, question, document_filter=compiled)
    graph = _ranked(tenant, question, document_filter=compiled, exact_max_chunks=0)
    assert exact == by_ids and len(exact) == 10
    assert graph == exact
    # With document_ids too: the documents both name (named documents outside the filter drop).
    with transaction() as session:
        everyone = [row[0] for row in session.execute(
            text("SELECT id FROM documents WHERE project_id = :p"), {"p": tenant.project_id}
        )]  # fmt: skip
    some = ids[:4] + [i for i in everyone if i not in ids][:4]
    for limit in (1000, 0):
        both = _ranked(
            tenant, question, document_ids=some, document_filter=compiled, exact_max_chunks=limit
        )
        assert both == _ranked(tenant, question, document_ids=ids[:4]) and both
    nothing = compile_filter(_leaf("equals", "team", "omega"), known)
    assert _ranked(tenant, question, document_filter=nothing) == []


def test_a_name_registered_after_the_registry_was_cached_is_known(database_url: str) -> None:
    """The query service keeps each project's registry in memory: a name new since then is
    read again, not refused, and a name nobody registered is still a 422 listing the names."""
    tenant = make_tenant("registry-cache")
    insert_document(tenant, "first", ["A red crate."], attributes={"colour": "red"})

    def compiled(raw: object) -> str:
        with transaction() as session:
            return compile_filter(raw, CachedRegistry(session, tenant.project_id)).sql

    assert "@>" in compiled(_leaf("equals", "colour", "red"))
    insert_document(tenant, "second", ["A big crate."], attributes={"size": 3})
    assert "numeric" in compiled(_leaf("greaterThan", "size", 1))
    with pytest.raises(ApiError, match=r"has 'weight' \(known: colour, .*size"):
        compiled(_leaf("equals", "weight", 1))
