"""The locks a model switch takes leave the project's queries alone.

Two contentions bench/model_switch.py found, each reproduced here with a second connection
standing in for a query: the switch's row lock on the project must not block the inserts that
reference it (a query's log rows waited for the whole `switch` command), and `finish` dropping a
space's table must not deadlock with a query that read `projects` and then reads that table.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from common.ingestion import embedding_switch
from common.platform.config import get_settings
from common.platform.db import get_engine, transaction
from common.platform.models import Project
from common.platform.spaces import ensure_space
from tests.fixtures.factories import make_tenant

pytestmark = pytest.mark.usefixtures("database_url")


def test_a_project_locked_by_a_switch_still_takes_rows_that_reference_it() -> None:
    tenant = make_tenant("switch-lock")
    with transaction() as session:
        session.get_one(Project, tenant.project_id, with_for_update=embedding_switch._PROJECT_LOCK)
        # What an insert into query_logs or documents checks of its project (the foreign key).
        with get_engine().connect() as other:
            other.execute(text("SET lock_timeout = '1s'"))
            referenced = other.execute(
                text("SELECT 1 FROM projects WHERE id = :p FOR KEY SHARE"),
                {"p": tenant.project_id},
            ).scalar()
            other.rollback()
    assert referenced == 1


def test_finish_drops_an_unused_space_table_without_deadlocking_a_query_reading_it() -> None:
    with transaction() as session:
        space = ensure_space(session, "text-embedding-005", 768, get_settings())
    assert space.table is not None
    read_projects, drop_started = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def query() -> None:
        try:
            with transaction() as session:
                session.execute(text("SELECT count(*) FROM projects"))  # ownership check
                read_projects.set()
                drop_started.wait(10)
                session.execute(text(f"SELECT count(*) FROM {space.table}"))  # its search
            outcome["query"] = "answered"
        except DBAPIError as error:
            outcome["query"] = str(error)

    asker = threading.Thread(target=query)
    asker.start()
    assert read_projects.wait(10)
    # The query reads the space's table once the DROP holds it and waits for `projects`.
    threading.Timer(0.2, drop_started.set).start()
    began = time.monotonic()
    with transaction() as session:
        embedding_switch._drop_unused_tables(session)
    asker.join(10)
    assert outcome == {"query": "answered"}
    assert time.monotonic() - began < 5
    with transaction() as session:
        assert session.scalar(text("SELECT to_regclass(:t)"), {"t": space.table}) is None
