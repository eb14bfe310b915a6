"""The cached placeholder conversion gives pg8000 exactly what its own scan gives."""

from __future__ import annotations

from typing import Any

import pytest
from pg8000.exceptions import InterfaceError
from sqlalchemy import text

from common.platform import pg8000_statements
from common.platform.db import transaction
from common.platform.pg8000_statements import DRIVER_CONVERSION, cached_conversion

STATEMENTS = [
    "SELECT 1",
    "SELECT %s, %s",
    "SELECT '%%s is not a placeholder', %s -- %s in a comment\n, %s",
    "SELECT E'it''s %s' || %s, \"col%%\" FROM t WHERE x LIKE 'a%%' AND y = %s",
    "SELECT $$ %s $$, %s::int, 50 %% 7",
]


@pytest.mark.parametrize("statement", STATEMENTS)
def test_the_cached_conversion_is_the_drivers_own(statement: str) -> None:
    convert = cached_conversion(DRIVER_CONVERSION)
    args = ("a", 2, None)
    expected = DRIVER_CONVERSION("format", statement, args)
    for _ in range(2):  # the second answer comes from the cache
        assert convert("format", statement, args) == expected


def test_a_bad_placeholder_still_fails_and_other_styles_pass_through() -> None:
    convert = cached_conversion(DRIVER_CONVERSION)
    with pytest.raises(InterfaceError, match="Only %s and %% are supported"):
        convert("format", "SELECT %d", (1,))
    named = convert("named", "SELECT :a, :b, :a", {"a": 1, "b": 2})
    assert named == ("SELECT $1, $2, $1", (1, 2))


def test_the_engine_runs_through_the_cached_conversion(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def scan(style: str, query: str, args: Any) -> tuple[str, Any]:
        seen.append(query)
        return DRIVER_CONVERSION(style, query, args)

    monkeypatch.setattr(pg8000_statements, "DRIVER_CONVERSION", scan)
    monkeypatch.setattr(pg8000_statements, "_installed", False)
    pg8000_statements.install()
    statement = text("SELECT CAST(:v AS text) || '%' AS cached_conversion_probe")
    for value in ("50", "60"):
        with transaction() as session:
            assert session.execute(statement, {"v": value}).scalar() == f"{value}%"
    assert sum("cached_conversion_probe" in query for query in seen) == 1  # scanned once
    monkeypatch.undo()
    monkeypatch.setattr(pg8000_statements, "_installed", False)
    pg8000_statements.install()
