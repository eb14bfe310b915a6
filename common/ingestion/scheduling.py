"""Fair ingestion across teams: who runs now, who waits, and who goes next.

All teams share one job queue (one subscription pushing to `chunk_embed`). Left alone it serves
arrival order, so a team that drops 5,000 files starves every other team for hours. Every claim
therefore passes an admission check, decided in Postgres under one advisory lock so concurrent
workers see one another's decisions:

- at most `AI_INFRA_INGEST_CAPACITY` jobs run at once in all (the chunk_embed instances);
- a team may hold no more than its fair share of that capacity while another team has jobs
  waiting (a team alone may use all of it), nor its own cap (`teams.max_running_jobs`, else
  `AI_INFRA_INGEST_TEAM_MAX_RUNNING`);
- a delivery never takes a slot from a team running fewer jobs: not while that team has
  deferred jobs (they are released into the slot instead), nor the slots its released messages
  are on their way to fill.

A delivery over the limit is deferred: the job stays `queued` with `deferred_at` set and the
message is acknowledged, so a deferral never spends a delivery attempt and never becomes a
redelivery storm. Deferred jobs are released, fairest first (the team, then the project, with
the fewest running jobs; oldest first), whenever capacity frees up: by each worker as it
finishes or defers a job and by every sweep, so a deferred job is never forgotten, even when
the worker that would release it is killed. A worker whose job finished takes the fairest
deferred job over itself, admitted the same way (no Pub/Sub round trip while its slot idles;
`common.ingestion.jobs`); any other released job is published again and claimed like any other.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.platform.config import Settings
from common.platform.models import Document, IngestionJob

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key of admission and release decisions (one lock: they are short).
ADMISSION_LOCK = 7_412_016
# A released or freshly published job not yet claimed counts against capacity this long (the
# time a message takes to reach a worker), so one free slot is not released twice.
IN_FLIGHT_SECONDS = 30

# A queued job's message is in flight when it was published after the job last started: a job
# whose attempt failed and waits for Pub/Sub's redelivery (its backoff: seconds to minutes) is
# not, and its redelivery is admitted like any delivery.
IN_FLIGHT = (
    "j.status = 'queued' AND j.deferred_at IS NULL AND j.published_at > :in_flight"
    " AND (j.started_at IS NULL OR j.published_at > j.started_at)"
)
# In flight to a slot kept for it: released after a deferral, or published again after a failed
# attempt. A new job's first message (`fresh`) holds a slot only where its delivery will be
# admitted on arrival, i.e. no team running fewer has deferred jobs (`Load.busy`): a bulk
# upload's fresh messages then take the slots that free up without a detour through deferral,
# but never hold them against the deferred jobs of a team running fewer.
RESERVED = f"{IN_FLIGHT} AND (j.deferrals > 0 OR j.attempts > 0)"
FRESH = f"{IN_FLIGHT} AND j.deferrals = 0 AND j.attempts = 0"
# Per team: jobs running under a live lease, messages in flight to a kept slot (RESERVED) and
# new ones (FRESH), and waiting: deferred, or in flight. A queued job whose message is lost waits
# for the sweep to publish it again and competes from then on. Jobs of superseded generations
# are not counted.
_LOAD = text(
    f"""
    SELECT d.team_id,
           count(*) FILTER (WHERE j.status = 'running' AND j.lease_expires_at > :now
                            AND j.started_at > :timed_out) AS running,
           count(*) FILTER (WHERE {RESERVED}) AS in_flight,
           count(*) FILTER (WHERE {FRESH}) AS fresh,
           count(*) FILTER (WHERE j.status = 'queued' AND j.deferred_at IS NOT NULL
                            OR {IN_FLIGHT}) AS waiting,
           count(*) FILTER (WHERE j.status = 'queued' AND j.deferred_at IS NOT NULL) AS deferred,
           min(tm.max_running_jobs) AS cap
    FROM ingestion_jobs j
    JOIN documents d ON d.id = j.document_id AND d.generation = j.generation
    JOIN teams tm ON tm.id = d.team_id
    WHERE j.status IN ('queued', 'running')
    GROUP BY d.team_id
    """
)
_TEAM_CAP = text("SELECT max_running_jobs FROM teams WHERE id = :team_id")
# Deferred jobs in the order fairness releases them: round robin over teams by their busy slots
# (running, or released and not yet claimed), then over each team's projects by their running
# jobs, oldest deferral first; never more of a team than its cap leaves room for.
_RELEASABLE = text(
    f"""
    WITH running AS (
        SELECT d.team_id, d.project_id, count(*) AS jobs
        FROM ingestion_jobs j
        JOIN documents d ON d.id = j.document_id
        WHERE j.status = 'running' AND j.lease_expires_at > :now AND j.started_at > :timed_out
        GROUP BY d.team_id, d.project_id
    ), busy AS (
        SELECT d.team_id, count(*) AS jobs
        FROM ingestion_jobs j
        JOIN documents d ON d.id = j.document_id AND d.generation = j.generation
        WHERE (j.status = 'running' AND j.lease_expires_at > :now AND j.started_at > :timed_out)
           OR ({RESERVED})
        GROUP BY d.team_id
    ), deferred AS (
        SELECT j.id, d.team_id, j.deferred_at,
               coalesce(r.jobs, 0) + row_number() OVER (
                   PARTITION BY d.team_id, d.project_id ORDER BY j.deferred_at, j.id
               ) AS project_turn
        FROM ingestion_jobs j
        JOIN documents d ON d.id = j.document_id AND d.generation = j.generation
        LEFT JOIN running r ON r.team_id = d.team_id AND r.project_id = d.project_id
        WHERE j.status = 'queued' AND j.deferred_at IS NOT NULL AND d.gcs_uri IS NOT NULL
    ), turns AS (
        SELECT id, team_id, deferred_at,
               row_number() OVER (
                   PARTITION BY team_id ORDER BY project_turn, deferred_at, id
               ) AS seq
        FROM deferred
    )
    SELECT t.id
    FROM turns t
    JOIN teams tm ON tm.id = t.team_id
    LEFT JOIN busy b ON b.team_id = t.team_id
    WHERE t.seq <= coalesce(tm.max_running_jobs, CAST(:team_cap AS integer), 2147483647)
                   - coalesce(b.jobs, 0)
    ORDER BY coalesce(b.jobs, 0) + t.seq, t.deferred_at, t.id
    LIMIT :limit
    """
)


@dataclass(frozen=True)
class Load:
    """Who is running and waiting now (see `_LOAD`)."""

    running: dict[uuid.UUID, int]
    in_flight: dict[uuid.UUID, int]
    fresh: dict[uuid.UUID, int]
    waiting: dict[uuid.UUID, int]
    deferred: dict[uuid.UUID, int]
    caps: dict[uuid.UUID, int]  # per team: its running-jobs limit, where it has one

    @property
    def busy(self) -> int:
        """Slots taken or promised: running jobs, released messages, and the new messages that
        will be admitted when they arrive."""
        held = sum(
            count
            for team, count in self.fresh.items()
            if not any(self.deferred.get(other, 0) for other in self.behind(team))
        )
        return sum(self.running.values()) + sum(self.in_flight.values()) + held

    def behind(self, team_id: uuid.UUID) -> set[uuid.UUID]:
        """Other teams running fewer jobs than `team_id`, below their own limit: fairness
        serves them first."""
        mine = self.running.get(team_id, 0)
        teams = {*self.running, *self.in_flight, *self.deferred} - {team_id}
        return {
            team
            for team in teams
            if self.running.get(team, 0) < min(mine, self.caps.get(team, mine))
        }


def _load(session: Session, now: datetime, settings: Settings) -> Load:
    rows = session.execute(
        _LOAD,
        {
            "now": now,
            "timed_out": now - timedelta(seconds=settings.job_timeout_seconds),
            "in_flight": now - timedelta(seconds=IN_FLIGHT_SECONDS),
        },
    ).all()
    return Load(
        running={row.team_id: int(row.running) for row in rows if row.running},
        in_flight={row.team_id: int(row.in_flight) for row in rows if row.in_flight},
        fresh={row.team_id: int(row.fresh) for row in rows if row.fresh},
        waiting={row.team_id: int(row.waiting) for row in rows if row.waiting},
        deferred={row.team_id: int(row.deferred) for row in rows if row.deferred},
        caps={
            row.team_id: cap
            for row in rows
            if (cap := row.cap or settings.ingest_team_max_running) is not None
        },
    )


def lock(session: Session) -> None:
    """Serialise admission and release decisions for this transaction."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMISSION_LOCK})


def admits(session: Session, team_id: uuid.UUID, now: datetime, settings: Settings) -> str | None:
    """None when a job of `team_id` may start now, else why it waits. The caller holds the
    job's row lock and has called `lock`; the job itself is counted as waiting, not running."""
    load = _load(session, now, settings)
    mine = load.running.get(team_id, 0)
    cap = session.scalar(_TEAM_CAP, {"team_id": team_id}) or settings.ingest_team_max_running
    if cap is not None and mine >= cap:
        return f"the team's limit of {cap} running jobs"
    running = sum(load.running.values())
    # Messages on their way to a team running fewer jobs (released for it, most likely) hold
    # their slots: a delivery of a busier team arriving first must not take them.
    behind = load.behind(team_id)
    reserved = sum(load.in_flight.get(team, 0) for team in behind)
    if running + reserved >= settings.ingest_capacity:
        return f"all {settings.ingest_capacity} ingestion slots are busy"
    # A team running fewer jobs with deferred ones goes first: they are released, not this.
    if any(load.deferred.get(team, 0) for team in behind):
        return "teams running fewer jobs have deferred ones"
    others = {team for team, waiting in load.waiting.items() if waiting and team != team_id}
    active = {team_id, *others, *(team for team in load.running if team != team_id)}
    share = math.ceil(settings.ingest_capacity / len(active))
    if others and mine >= share:
        return f"its fair share ({share} of {settings.ingest_capacity} slots) while others wait"
    return None


def has_free_slot(session: Session, now: datetime, settings: Settings) -> bool:
    """Whether a slot is free now (`Load.busy`; the caller holds `lock`)."""
    return _load(session, now, settings).busy < settings.ingest_capacity


def releasable(session: Session, now: datetime, settings: Settings, limit: int) -> list[uuid.UUID]:
    """Up to `limit` deferred jobs in the order fairness releases them (see `_RELEASABLE`)."""
    return list(
        session.scalars(
            _RELEASABLE,
            {
                "now": now,
                "timed_out": now - timedelta(seconds=settings.job_timeout_seconds),
                "in_flight": now - timedelta(seconds=IN_FLIGHT_SECONDS),
                "team_cap": settings.ingest_team_max_running,
                "limit": limit,
            },
        )
    )


def release(session: Session, now: datetime, settings: Settings) -> int:
    """Publish deferred jobs, fairest first, for the slots free now; returns how many (the
    caller's transaction commits them)."""
    from common.ingestion.trigger import publish_job, split_gcs_uri

    lock(session)
    free = settings.ingest_capacity - _load(session, now, settings).busy
    if free <= 0:
        return 0
    ids = releasable(session, now, settings, free)
    for job_id in ids:
        # SKIP LOCKED: a job a worker is claiming right now (row locked, waiting for the
        # advisory lock this transaction holds) is left to that worker; no deadlock.
        job = session.get(IngestionJob, job_id, with_for_update={"skip_locked": True})
        document = session.get(Document, job.document_id) if job is not None else None
        if job is None or job.deferred_at is None or document is None or not document.gcs_uri:
            continue
        job.deferred_at = None
        publish_job(session, job, *split_gcs_uri(document.gcs_uri))
    if ids:
        logger.info("deferred jobs released", extra={"released": len(ids), "free": free})
    return len(ids)
