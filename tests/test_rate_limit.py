"""Requests per minute per API key: headers, 429s, limits by key, team and setting, and
concurrent requests from several processes against two served instances."""

from __future__ import annotations

import multiprocessing
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from common.platform.db import transaction
from common.platform.models import ApiKey, ApiKeyRateWindow, Team
from common.query import auth
from common.query.rate_limit import RateLimitExceededError, window_state
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.query import QueryApi, serve_query

RATE_LIMIT = re.compile(r'^"per-key";r=(\d+);t=(\d+)$')


def set_limits(tenant: Tenant, *, team: int | None = None, key: int | None = None) -> None:
    with transaction() as session:
        session.execute(
            update(Team).where(Team.id == tenant.team_id).values(requests_per_minute=team)
        )
        session.execute(
            update(ApiKey).where(ApiKey.id == tenant.api_key_id).values(requests_per_minute=key)
        )


def listing(api: httpx.Client, tenant: Tenant, key: str | None = None) -> httpx.Response:
    return api.get(
        f"/v1/projects/{tenant.project_id}/documents",
        headers={"Authorization": f"Bearer {key or tenant.api_key}"},
    )


def remaining_and_reset(response: httpx.Response) -> tuple[int, int]:
    match = RATE_LIMIT.match(response.headers["RateLimit"])
    assert match, response.headers["RateLimit"]
    return int(match.group(1)), int(match.group(2))


def test_responses_show_the_quota_and_what_is_left(query_api: QueryApi) -> None:
    tenant = make_tenant("rl-headers")
    set_limits(tenant, key=5)
    for expected_remaining in (4, 3, 2, 1, 0):
        response = listing(query_api.client, tenant)
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Policy"] == '"per-key";q=5;w=60'
        remaining, reset = remaining_and_reset(response)
        assert remaining == expected_remaining
        assert 1 <= reset <= 60
        assert "Retry-After" not in response.headers


def test_over_the_limit_is_429_with_retry_after_until_the_window_ends(
    query_api: QueryApi,
) -> None:
    tenant = make_tenant("rl-over")
    set_limits(tenant, key=2)
    assert [listing(query_api.client, tenant).status_code for _ in range(2)] == [200, 200]
    refused = listing(query_api.client, tenant)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "2 requests per minute" in refused.json()["error"]["message"]
    remaining, reset = remaining_and_reset(refused)
    assert remaining == 0 and refused.headers["Retry-After"] == str(reset)
    assert refused.headers["RateLimit-Policy"] == '"per-key";q=2;w=60'
    query = query_api.post_query(tenant.project_id, {"question": "anything"}, tenant.api_key)
    assert query.status_code == 429, "every authenticated route is limited"
    # The window ends (moved back here instead of waiting a minute): requests pass again.
    with transaction() as session:
        session.execute(
            update(ApiKeyRateWindow)
            .where(ApiKeyRateWindow.api_key_id == tenant.api_key_id)
            .values(window_start=func.now() - timedelta(seconds=61))
        )
    again = listing(query_api.client, tenant)
    assert again.status_code == 200
    assert remaining_and_reset(again)[0] == 1


def test_refused_requests_do_not_count(query_api: QueryApi) -> None:
    tenant = make_tenant("rl-refused")
    set_limits(tenant, key=1)
    statuses = [listing(query_api.client, tenant).status_code for _ in range(4)]
    assert statuses == [200, 429, 429, 429]
    with transaction() as session:
        window = session.get_one(ApiKeyRateWindow, tenant.api_key_id)
        assert window.requests == 1


def test_a_keys_own_limit_overrides_its_teams_default(query_api: QueryApi) -> None:
    tenant = make_tenant("rl-team")
    set_limits(tenant, team=3)
    own_key = auth.generate_api_key()
    with transaction() as session:
        session.add(
            ApiKey(
                team_id=tenant.team_id,
                key_hash=auth.hash_api_key(own_key),
                key_prefix=own_key[:12],
                requests_per_minute=7,
            )
        )
    team_default = listing(query_api.client, tenant)
    overridden = listing(query_api.client, tenant, own_key)
    assert team_default.headers["RateLimit-Policy"] == '"per-key";q=3;w=60'
    assert overridden.headers["RateLimit-Policy"] == '"per-key";q=7;w=60'
    # Each key has its own window.
    assert remaining_and_reset(team_default)[0] == 2
    assert remaining_and_reset(overridden)[0] == 6


def test_the_global_setting_applies_without_key_or_team_limits(database_url: str) -> None:
    tenant = make_tenant("rl-global")
    with transaction() as session:
        principal = auth.authenticate(session, tenant.api_key, default_rpm=2)
    assert principal.rate_limit is not None and principal.rate_limit.limit == 2
    with transaction() as session:
        auth.authenticate(session, tenant.api_key, default_rpm=2)
    with pytest.raises(RateLimitExceededError) as refused, transaction() as session:
        auth.authenticate(session, tenant.api_key, default_rpm=2)
    assert refused.value.status == 429 and refused.value.state.remaining == 0


def test_unauthenticated_requests_are_not_limited_and_carry_no_rate_headers(
    query_api: QueryApi,
) -> None:
    response = query_api.client.get(
        f"/v1/projects/{uuid.uuid4()}/documents", headers={"Authorization": "Bearer aik_nope"}
    )
    assert response.status_code == 401
    assert "RateLimit" not in response.headers and "RateLimit-Policy" not in response.headers


def test_window_state_rounds_the_reset_up_and_stays_within_the_window() -> None:
    from datetime import UTC, datetime

    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert window_state(10, 1, start, start).reset_seconds == 60
    assert window_state(10, 1, start, start + timedelta(seconds=59.2)).reset_seconds == 1
    assert window_state(10, 1, start, start + timedelta(seconds=0.5)).reset_seconds == 60
    state = window_state(10, 11, start, start + timedelta(seconds=30))
    assert not state.allowed and state.headers()["Retry-After"] == "30"


# --- several processes, two instances -----------------------------------------------------------


def _burst(base_url: str, project_id: str, key: str, count: int) -> list[int]:
    """One client process: `count` requests as fast as it can (run in a spawned process)."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        return [
            client.get(
                f"/v1/projects/{project_id}/documents",
                headers={"Authorization": f"Bearer {key}"},
            ).status_code
            for _ in range(count)
        ]


@pytest.fixture(scope="module")
def second_instance(
    query_api: QueryApi, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Another query function process on the same database, as Cloud Run scales out."""
    env = {
        "AI_INFRA_DATABASE_URL": database_url,
        "AI_INFRA_STORAGE_EMULATOR_HOST": query_api.storage_host,
        "AI_INFRA_DB_POOL_SIZE": "4",
    }
    child, url = serve_query(Path(tmp_path_factory.mktemp("query-logs-2")), env)
    try:
        yield url
    finally:
        child.stop()


def test_concurrent_requests_from_several_processes_never_exceed_the_limit(
    query_api: QueryApi, second_instance: str
) -> None:
    tenant = make_tenant("rl-burst")
    limit, processes, per_process = 25, 6, 12
    set_limits(tenant, key=limit)
    urls = [query_api.base_url, second_instance]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(_burst, urls[n % 2], str(tenant.project_id), tenant.api_key, per_process)
            for n in range(processes)
        ]
        statuses = Counter(status for future in futures for status in future.result())
    assert statuses == {200: limit, 429: processes * per_process - limit}
    with transaction() as session:
        counted = session.scalar(
            select(ApiKeyRateWindow.requests).where(
                ApiKeyRateWindow.api_key_id == tenant.api_key_id
            )
        )
    assert counted == limit
