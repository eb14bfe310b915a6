"""Fair scheduling decisions on real Postgres: who may start, who waits, who is released next.

Each test builds its teams' jobs with timestamps around a `now` days ahead of the clock, so the
jobs other tests leave running or in flight (their leases and publications lie in the real
present) are not part of the picture.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common.ingestion import scheduling
from common.platform.config import Settings, get_settings
from common.platform.db import transaction
from common.platform.models import Document, DocumentStatus, IngestionJob, JobStatus, Project, Team
from tests.fixtures.factories import Tenant, make_tenant

NOW = datetime.now(UTC) + timedelta(days=30)


def _settings(capacity: int = 4, team_cap: int | None = None) -> Settings:
    return get_settings().model_copy(
        update={"ingest_capacity": capacity, "ingest_team_max_running": team_cap}
    )


def _job(
    tenant: Tenant,
    state: str,
    *,
    project_id: uuid.UUID | None = None,
    age: float = 0.0,
) -> uuid.UUID:
    """A document and its job: 'running' (live lease), 'dead' (lease ran out), 'deferred'
    (`age` seconds ago), 'in_flight' (released just now, after a deferral), 'new' (its first
    message published just now), 'retrying' (published, started, its attempt failed: Pub/Sub
    redelivers it after a backoff), 'lost' (published long ago)."""
    with transaction() as session:
        document = Document(
            team_id=tenant.team_id,
            project_id=project_id or tenant.project_id,
            title="job",
            gcs_uri=f"gs://bucket/{tenant.project_id}/{uuid.uuid4().hex}.txt",
            status=DocumentStatus.UPLOADED,
            generation=1,
        )
        session.add(document)
        session.flush()
        job = IngestionJob(document_id=document.id, generation=1, status=JobStatus.QUEUED)
        if state in ("running", "dead"):
            job.status = JobStatus.RUNNING
            job.started_at = NOW - timedelta(seconds=5)
            job.lease_expires_at = NOW + timedelta(seconds=20 if state == "running" else -1)
        elif state == "deferred":
            job.deferred_at = NOW - timedelta(seconds=age)
            job.published_at = NOW - timedelta(hours=1)
        elif state == "in_flight":
            job.published_at = NOW - timedelta(seconds=1)
            job.deferrals = 1
        elif state == "new":
            job.published_at = NOW - timedelta(seconds=1)
        elif state == "retrying":
            job.published_at = NOW - timedelta(seconds=5)
            job.started_at = NOW - timedelta(seconds=4)
            job.attempts = 1
        else:
            job.published_at = NOW - timedelta(hours=1)
        session.add(job)
        session.flush()
        return job.id


def _admits(tenant: Tenant, settings: Settings) -> str | None:
    with transaction() as session:
        return scheduling.admits(session, tenant.team_id, NOW, settings)


@pytest.fixture
def teams(database_url: str) -> Iterator[list[Tenant]]:
    """Three fresh teams; their jobs are closed afterwards so they burden no other test."""
    made = [make_tenant(f"fair{n}") for n in range(3)]
    yield made
    with transaction() as session:
        for tenant in made:
            session.query(Team).filter(Team.id == tenant.team_id).delete()


def test_a_team_alone_may_use_every_slot_but_no_more(teams: list[Tenant]) -> None:
    alone, *_ = teams
    for _ in range(3):
        _job(alone, "running")
    _job(alone, "dead")  # its worker is gone: it holds no slot
    assert _admits(alone, _settings(capacity=4)) is None
    _job(alone, "running")
    assert _admits(alone, _settings(capacity=4)) == "all 4 ingestion slots are busy"


def test_a_team_over_its_share_waits_while_another_team_has_work(teams: list[Tenant]) -> None:
    big, small, _ = teams
    for _ in range(3):
        _job(big, "running")
    _job(small, "deferred")
    reason = _admits(big, _settings(capacity=4))
    assert reason == "teams running fewer jobs have deferred ones"
    assert _admits(small, _settings(capacity=4)) is None
    # A message merely in flight is work too; a lost one is not (the sweep republishes it).
    _job(teams[2], "lost")
    assert _admits(teams[2], _settings(capacity=4)) is None


def test_a_busier_team_yields_free_slots_to_a_team_running_fewer_with_deferred_jobs(
    teams: list[Tenant],
) -> None:
    busy, starved, capped = teams
    for _ in range(2):
        _job(busy, "running")
    _job(starved, "deferred")
    # Under its share (5 of 10) with slots free, but a team running nothing has a deferred job:
    # that one is released into the slot, not taken by whoever's delivery arrives first.
    assert _admits(busy, _settings(capacity=10)) == "teams running fewer jobs have deferred ones"
    assert _admits(starved, _settings(capacity=10)) is None
    # A team held back by its own limit is not waited for.
    with transaction() as session:
        session.get_one(Team, capped.team_id).max_running_jobs = 1
    _job(capped, "running")
    _job(capped, "deferred")
    assert _admits(capped, _settings(capacity=10)) == "the team's limit of 1 running jobs"


def test_a_message_released_to_a_team_running_fewer_keeps_its_slot(teams: list[Tenant]) -> None:
    busy, released, _ = teams
    for _ in range(3):
        _job(busy, "running")
    _job(released, "in_flight")  # released for the one free slot, not yet delivered
    assert _admits(busy, _settings(capacity=4)) == "all 4 ingestion slots are busy"
    assert _admits(released, _settings(capacity=4)) is None


def test_only_released_messages_hold_slots(teams: list[Tenant]) -> None:
    """A failed attempt's message comes back after Pub/Sub's backoff, and a new job's first
    message is admitted or deferred when it arrives: reserving slots for them would keep every
    other team's deferred job waiting (a 429 storm fails many; a bulk upload sends thousands)."""
    busy, waiting, _ = teams
    for _ in range(3):
        _job(busy, "running")
    _job(busy, "retrying")
    _job(busy, "new")  # a bulk upload's next message: work, but admitted or deferred on arrival
    deferred = _job(waiting, "deferred", age=1)
    assert _admits(waiting, _settings(capacity=4)) is None
    with transaction() as session:
        assert scheduling.has_free_slot(session, NOW, _settings(capacity=4))
        assert deferred in scheduling.releasable(session, NOW, _settings(capacity=100), 10)


def test_a_team_alone_keeps_a_free_slot_for_its_next_new_message(teams: list[Tenant]) -> None:
    """No team runs fewer: the bulk upload's next message takes the slot on arrival, so its
    deferred jobs are not handed the slot only to defer that message (churn, no fairness)."""
    alone, *_ = teams
    for _ in range(3):
        _job(alone, "running")
    _job(alone, "deferred", age=5)
    _job(alone, "new")
    with transaction() as session:
        assert not scheduling.has_free_slot(session, NOW, _settings(capacity=4))
    assert _admits(alone, _settings(capacity=4)) is None


def test_a_team_limit_holds_even_with_free_slots(teams: list[Tenant]) -> None:
    capped, other, _ = teams
    _job(capped, "running")
    assert (
        _admits(capped, _settings(capacity=8, team_cap=1)) == "the team's limit of 1 running jobs"
    )
    with transaction() as session:
        session.get_one(Team, other.team_id).max_running_jobs = 3
    for _ in range(3):
        _job(other, "running")
    assert _admits(other, _settings(capacity=8)) == "the team's limit of 3 running jobs"
    assert _admits(capped, _settings(capacity=8)) is None, "the global default is unset"


def test_deferred_jobs_are_released_round_robin_over_teams_then_projects(
    teams: list[Tenant],
) -> None:
    a, b, c = teams
    with transaction() as session:
        second = Project(team_id=a.team_id, name=f"second-{uuid.uuid4().hex[:8]}")
        session.add(second)
        session.flush()
        second_id = second.id
    _job(a, "running")
    _job(a, "running")  # team a runs 2, both in its first project
    _job(c, "running")  # team c runs 1
    a_first = _job(a, "deferred", age=50)
    a_first_later = _job(a, "deferred", age=40)
    a_second = _job(a, "deferred", age=10, project_id=second_id)
    b_old = _job(b, "deferred", age=30)
    b_new = _job(b, "deferred", age=5)
    c_old = _job(c, "deferred", age=20)
    with transaction() as session:
        order = scheduling.releasable(session, NOW, _settings(capacity=100), 10)
    mine = {a_first, a_first_later, a_second, b_old, b_new, c_old}
    assert [job for job in order if job in mine] == [
        b_old,  # b runs nothing: its oldest first
        c_old,  # turn 2: c (1 running) before b's second, older
        b_new,
        a_second,  # a runs 2, none in its second project: that one first
        a_first,
        a_first_later,
    ]


def test_a_team_at_its_limit_gets_no_release_however_many_slots_are_free(
    teams: list[Tenant],
) -> None:
    capped, free, _ = teams
    with transaction() as session:
        session.get_one(Team, capped.team_id).max_running_jobs = 2
    _job(capped, "running")
    waiting = [_job(capped, "deferred", age=60 - n) for n in range(3)]
    other = _job(free, "deferred", age=1)
    with transaction() as session:
        order = scheduling.releasable(session, NOW, _settings(capacity=100), 10)
    assert [job for job in order if job in {*waiting, other}] == [other, waiting[0]]
