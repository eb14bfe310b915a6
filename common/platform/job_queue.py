"""Where each team's ingestion stands: jobs queued, deferred by fair scheduling, running, and how
long the oldest has waited. One query for the operator's `ai-infra jobs status`, the sweep's
per-team overdue figures and a team's own `GET /v1/usage`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

# Jobs of a document's current generation only: superseded ones wait for nobody.
_QUEUES = text(
    """
    SELECT t.id AS team_id, t.name,
           count(*) FILTER (WHERE j.status = 'queued' AND j.deferred_at IS NULL) AS queued,
           count(*) FILTER (WHERE j.status = 'queued' AND j.deferred_at IS NOT NULL) AS deferred,
           count(*) FILTER (WHERE j.status = 'running' AND j.lease_expires_at > :now
                            AND j.started_at > :timed_out) AS running,
           count(*) FILTER (WHERE j.created_at < :overdue) AS overdue,
           min(j.created_at) FILTER (WHERE j.status = 'queued') AS oldest_queued
    FROM ingestion_jobs j
    JOIN documents d ON d.id = j.document_id AND d.generation = j.generation
    JOIN teams t ON t.id = d.team_id
    WHERE j.status IN ('queued', 'running')
      AND (CAST(:team_id AS uuid) IS NULL OR d.team_id = CAST(:team_id AS uuid))
    GROUP BY t.id, t.name
    ORDER BY t.name
    """
)


@dataclass(frozen=True)
class TeamQueue:
    team_id: uuid.UUID
    team: str
    queued: int  # waiting for a worker (published, or to be published again by the sweep)
    deferred: int  # held back by fair scheduling until a slot frees up
    running: int  # under a live lease
    overdue: int  # queued or running, created before the overdue window
    oldest_queued_seconds: int | None


def team_queues(
    session: Session,
    now: datetime,
    *,
    job_timeout_seconds: int,
    overdue_after: timedelta = timedelta(minutes=30),
    team_id: uuid.UUID | None = None,
) -> list[TeamQueue]:
    """Every team with unfinished jobs (or one team), by name."""
    rows = session.execute(
        _QUEUES,
        {
            "now": now,
            "timed_out": now - timedelta(seconds=job_timeout_seconds),
            "overdue": now - overdue_after,
            "team_id": team_id,
        },
    ).all()
    return [
        TeamQueue(
            team_id=row.team_id,
            team=row.name,
            queued=int(row.queued),
            deferred=int(row.deferred),
            running=int(row.running),
            overdue=int(row.overdue),
            oldest_queued_seconds=(
                None
                if row.oldest_queued is None
                else max(0, int((now - row.oldest_queued).total_seconds()))
            ),
        )
        for row in rows
    ]
