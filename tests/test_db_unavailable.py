"""Which database errors mean "unavailable, wait or retry" (the CLI and the API share this)."""

from __future__ import annotations

from pathlib import Path

import pg8000.exceptions
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from common.platform.db import get_engine, is_database_unavailable


def test_a_server_that_is_not_there_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"postgresql+pg8000://postgres@/x?unix_sock={tmp_path}/.s.PGSQL.1")
    with pytest.raises(DBAPIError) as caught:
        engine.connect()
    assert is_database_unavailable(caught.value)


def test_a_bad_statement_is_not(database_url: str) -> None:
    with pytest.raises(DBAPIError) as caught, get_engine().connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    assert not is_database_unavailable(caught.value)


@pytest.mark.parametrize(
    ("code", "unavailable"),
    [("57P03", True), ("57P01", True), ("08006", True), ("42P01", False), ("23505", False)],
)
def test_sqlstates_of_a_restarting_server_are_unavailable(code: str, unavailable: bool) -> None:
    """57P03 "the database system is starting up" is what a restarted Postgres answers."""
    fields = {"S": "FATAL", "C": code, "M": "the database system is starting up"}
    error = DBAPIError.instance(
        "SELECT 1", {}, pg8000.exceptions.DatabaseError(fields), pg8000.exceptions.Error
    )
    assert is_database_unavailable(error) is unavailable
