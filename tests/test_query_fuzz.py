"""Schema-driven fuzzing of the query API: requests generated from its own OpenAPI document.

schemathesis reads `GET /v1/openapi.json` from the served query function and sends valid and
invalid requests for every operation over real HTTP, with a real Postgres behind it. Whatever
it sends, the answer is never a 5xx nor a traceback, every error is the JSON error shape, and
responses conform to the document. Bounded (examples per operation, a fixed seed, no example
database) so the run is short and the same in CI as on a laptop.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis

from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import QueryApi, insert_document

MAX_EXAMPLES = 20
SEED = 20261126
# How generated requests are authenticated and which rows their path ids name (weights).
KEYS = ("valid", "valid", "valid", "valid", "none", "garbage")
TARGETS = ("own", "own", "own", "other", "generated")
GARBAGE_KEYS = ("Bearer aik_not-a-key", "Basic dXNlcjpwYXNz", "Bearer", "Bearer \xe9t\xe9")

schema = schemathesis.pytest.from_fixture("api_schema")
FuzzCase = schemathesis.Case[Any]


@dataclass(frozen=True)
class FuzzTargets:
    """Rows the generated requests can reach: a project with documents, another team's one."""

    tenant: Tenant
    other: Tenant
    document_ids: tuple[uuid.UUID, ...]


@pytest.fixture(scope="module")
def fuzz_targets(database_url: str) -> FuzzTargets:
    tenant = make_tenant("fuzz")
    other = make_tenant("fuzz-other")
    document_ids = tuple(
        insert_document(tenant, f"Fuzz notes {n}", [f"Pump {n} runs at {n + 1}0 bar in winter."])[0]
        for n in range(3)
    )
    return FuzzTargets(tenant, other, document_ids)


@pytest.fixture(scope="module")
def api_schema(query_api: QueryApi, fuzz_targets: FuzzTargets) -> schemathesis.BaseSchema:
    """The document the function serves, not one built in this process."""
    response = query_api.client.get("/v1/openapi.json")
    assert response.status_code == 200, response.text
    config = schemathesis.Config.from_dict(
        {
            "base-url": query_api.base_url,
            "seed": SEED,
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # Credentials are chosen below (valid, none, garbage), not generated.
                "with-security-parameters": False,
            },
            "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
            "operations": [
                {
                    # A cursor is opaque: a schema-valid string the API never handed out is a 422.
                    "include-operation-id": "listDocuments",
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
                {
                    # Whether a URL can be fetched depends on the network and on where its host
                    # resolves (SSRF refusals are 422s), not on the schema.
                    "include-operation-id": "addDocument",
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
                {
                    # The size limit is a setting and unsafe file names ('..', control
                    # characters) are refused by rule, both 422s a static schema cannot state.
                    "include-operation-id": "createUpload",
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
                {
                    # A filter names the project's own attributes with values of their types:
                    # a schema-valid filter over an attribute the project lacks is a 422 by
                    # rule (a typo must not silently match nothing). The structure is checked
                    # by the recursive DocumentFilter schema; 5xx and error shapes still are.
                    "include-operation-id": "query",
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
                {
                    # An attribute's type is fixed by its first use in the project, and the
                    # 8 KiB limit is on the encoded whole: 422s the schema cannot state.
                    "include-operation-id": "patchDocument",
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
                {
                    # Any two schema-valid dates are not a valid range (order, 366 days): 422.
                    "include-operation-id": "usage",
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
            ],
        }
    )
    return schemathesis.openapi.from_dict(response.json(), config=config)


def _negative_at(case: FuzzCase, location: str) -> bool:
    """Whether the generator made this part of the request invalid on purpose."""
    meta = case.meta
    return meta is not None and any(
        where == location and info.mode.is_negative for where, info in meta.components.items()
    )


def _path_parameters(case: FuzzCase, targets: FuzzTargets, choice: str) -> None:
    """Point generated ids at real rows ("own", "other") or keep the generated ones.

    A negative case's invalid path parameters stay: they are what the case tests.
    """
    if choice == "generated" or _negative_at(case, "path"):
        return
    tenant = targets.tenant if choice == "own" else targets.other
    real = {"project_id": tenant.project_id, "document_id": targets.document_ids[0]}
    for name in list(case.path_parameters or {}):
        if name in real:
            case.path_parameters[name] = str(real[name])


def _authorization(case: FuzzCase, targets: FuzzTargets, key: str) -> dict[str, str]:
    """Extra headers for the call: a valid key is the caller's own, not generated data.

    Headers the generator made invalid on purpose (a missing or malformed credential) stay.
    """
    if _negative_at(case, "header"):
        return {}
    if key == "valid":  # sent over whatever was generated; the case itself stays as generated
        return {"Authorization": f"Bearer {targets.tenant.api_key}"}
    if key == "none":
        case.headers.pop("Authorization", None)
    else:
        case.headers["Authorization"] = _choice(case, "garbage", GARBAGE_KEYS)
    return {}


def _assert_safe(response: schemathesis.Response) -> None:
    text = response.text or ""
    sent = f"{response.request.method} {response.request.url}\n{text}"
    assert response.status_code < 500, sent
    assert "Traceback" not in text and 'File "' not in text, sent
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), sent
        body = json.loads(text)
        assert isinstance(body, dict) and set(body) == {"error"}, sent
        assert set(body["error"]) == {"code", "message"}, sent
        assert all(isinstance(v, str) and v for v in body["error"].values()), sent


def _choice[T](case: FuzzCase, salt: str, options: tuple[T, ...]) -> T:
    """A choice that is a function of the generated request, so a seeded run repeats exactly.

    (Not a hypothesis strategy: `schema.given` would switch off schemathesis' coverage phase.)
    """
    drawn = repr((salt, case.path_parameters, case.query, case.body)).encode("utf-8", "replace")
    return options[zlib.crc32(drawn) % len(options)]


@schema.parametrize()
def test_generated_requests_never_fail_the_server(
    case: FuzzCase, fuzz_targets: FuzzTargets
) -> None:
    _path_parameters(case, fuzz_targets, _choice(case, "target", TARGETS))
    headers = _authorization(case, fuzz_targets, _choice(case, "key", KEYS))
    response = case.call(headers=headers)
    _assert_safe(response)
    case.validate_response(response, headers=headers)
