"""What the per-key rate limiter adds to the query path: the authentication statement with the
counting upsert (as served) against the same statement without it (the baseline, as before
rate limits), each as its own transaction on a pooled connection, alternating, same database.

Runs at concurrency 1 (one key) and 8 (eight threads on ONE key: every request waits for the
counter row's lock, the worst case) and prints p50/p99 of each and the difference.
Run: uv run --extra local python -m bench.rate_limit [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

# The statement before rate limits (common/query/auth.py at the parent of this change).
BASELINE = text(
    """
    WITH key AS (
        SELECT id, team_id, last_used_at FROM api_keys
        WHERE key_hash = :key_hash AND status = 'active'
    ), touched AS (
        UPDATE api_keys SET last_used_at = now() FROM key
        WHERE api_keys.id = key.id
          AND (key.last_used_at IS NULL
               OR key.last_used_at < now() - make_interval(secs => :resolution))
    )
    SELECT id, team_id FROM key
    """
)


def _served(raw_key: str) -> float:
    from common.platform.db import transaction
    from common.query.auth import authenticate

    start = time.perf_counter()
    with transaction() as session:
        authenticate(session, raw_key, default_rpm=1_000_000_000)
    return (time.perf_counter() - start) * 1000


def _baseline(raw_key: str) -> float:
    from common.platform.db import transaction
    from common.query.auth import LAST_USED_RESOLUTION_SECONDS, hash_api_key

    start = time.perf_counter()
    with transaction() as session:
        session.execute(
            BASELINE,
            {"key_hash": hash_api_key(raw_key), "resolution": LAST_USED_RESOLUTION_SECONDS},
        ).first()
    return (time.perf_counter() - start) * 1000


def measure(raw_key: str, requests: int, concurrency: int) -> dict[str, float]:
    """Alternate baseline and served calls so drift hits both equally."""
    served: list[float] = []
    baseline: list[float] = []

    def pair(_: int) -> None:
        baseline.append(_baseline(raw_key))
        served.append(_served(raw_key))

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(pair, range(requests)))
    figures = {}
    for name, values in (("baseline", baseline), ("rate_limited", served)):
        figures[f"{name}_p50_ms"] = float(np.percentile(values, 50))
        figures[f"{name}_p99_ms"] = float(np.percentile(values, 99))
    figures["added_p50_ms"] = figures["rate_limited_p50_ms"] - figures["baseline_p50_ms"]
    figures["added_p99_ms"] = figures["rate_limited_p99_ms"] - figures["baseline_p99_ms"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="pairs per concurrency")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ai-infra-bench-rl-"))
    from common.localstack import embedded_pg

    server = embedded_pg.start(data_dir / "pg", database="ai_infra_bench")
    results: dict[int, dict[str, float]] = {}
    try:
        os.environ["AI_INFRA_DATABASE_URL"] = server.url
        os.environ["AI_INFRA_DB_POOL_SIZE"] = "8"
        from common.platform import migrate
        from common.platform.config import get_settings
        from common.platform.db import reset_engine
        from tests.fixtures.factories import make_tenant

        get_settings.cache_clear()
        reset_engine()
        migrate.upgrade()
        tenant = make_tenant("bench-rl")
        measure(tenant.api_key, 200, 1)  # warm-up: pool, plans
        for concurrency in (1, 8):
            results[concurrency] = measure(tenant.api_key, args.requests, concurrency)
    finally:
        reset_engine()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report(results)


def report(results: dict[int, dict[str, float]]) -> None:
    print(f"{'concurrency':>11} {'':>14} {'p50 ms':>8} {'p99 ms':>8}")
    for concurrency, figures in results.items():
        for name in ("baseline", "rate_limited", "added"):
            print(
                f"{concurrency:>11} {name:>14} {figures[f'{name}_p50_ms']:>8.3f} "
                f"{figures[f'{name}_p99_ms']:>8.3f}"
            )
    summary: dict[str, Any] = {
        f"c{c}_{k}": round(v, 3) for c, figures in results.items() for k, v in figures.items()
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
