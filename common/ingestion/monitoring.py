"""Figures operators alert on: the job sweep's outcome and the jobs that should be done by now.

`sweep_and_measure` is what the cloud's scheduled sweep runs: the sweep itself (row locks, safe
to run concurrently and repeatedly), the project HNSW indexes kept in step with project sizes
(`project_indexes`, at most one build a call), then a read-only count of the live jobs older
than the overdue window that are still queued or running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from common.ingestion.project_indexes import sync_project_indexes
from common.ingestion.sweeper import sweep_stuck_jobs
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.job_queue import TeamQueue, team_queues
from common.platform.models import Document, IngestionJob, JobStatus

DEFAULT_OVERDUE_MINUTES = 30
# Below 5 minutes an ordinary large document would count; above a day the figure is useless.
MIN_OVERDUE_MINUTES = 5
MAX_OVERDUE_MINUTES = 24 * 60
# A project index build the sweep may start: the function's timeout is 900 s (infra/main.tf);
# bigger builds are left to `ai-infra db index-projects`.
SWEEP_BUILD_SECONDS = 600.0


class InvalidOverdueMinutesError(ValueError):
    """`overdue_minutes` is not a whole number of minutes within the bounds."""


@dataclass(frozen=True)
class OverdueJobs:
    count: int
    oldest_age_seconds: int | None


@dataclass(frozen=True)
class SweepFigures:
    requeued: int
    failed: int
    republished: int
    overdue_minutes: int
    overdue_jobs: int
    oldest_overdue_seconds: int | None
    indexes_built: int = 0
    indexes_dropped: int = 0
    indexes_pending: int = 0
    indexes_too_big: int = 0
    released: int = 0
    # Per team with overdue jobs: the alert counts per team (infra/monitoring.tf).
    overdue_teams: tuple[TeamQueue, ...] = ()

    def as_record(self) -> dict[str, int | None]:
        return {
            "requeued": self.requeued,
            "failed": self.failed,
            "republished": self.republished,
            "overdue_minutes": self.overdue_minutes,
            "overdue_jobs": self.overdue_jobs,
            "oldest_overdue_seconds": self.oldest_overdue_seconds,
            "indexes_built": self.indexes_built,
            "indexes_dropped": self.indexes_dropped,
            "indexes_pending": self.indexes_pending,
            "indexes_too_big": self.indexes_too_big,
            "released": self.released,
        }

    def team_records(self) -> list[dict[str, object]]:
        """One log record per team with overdue jobs (the per-team alert's samples)."""
        return [
            {
                "team_id": str(queue.team_id),
                "team": queue.team,
                "overdue_jobs": queue.overdue,
                "queued": queue.queued,
                "deferred": queue.deferred,
                "running": queue.running,
                "oldest_queued_seconds": queue.oldest_queued_seconds,
            }
            for queue in self.overdue_teams
        ]


def overdue_minutes(raw: object) -> int:
    """Validate a caller's window: None means the default; ints and decimal strings are taken."""
    if raw is None:
        return DEFAULT_OVERDUE_MINUTES
    if isinstance(raw, str) and raw.strip().isdecimal():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidOverdueMinutesError("overdue_minutes must be a whole number of minutes")
    if not MIN_OVERDUE_MINUTES <= raw <= MAX_OVERDUE_MINUTES:
        raise InvalidOverdueMinutesError(
            f"overdue_minutes must be between {MIN_OVERDUE_MINUTES} and {MAX_OVERDUE_MINUTES}"
        )
    return raw


def count_overdue_jobs(older_than: timedelta, now: datetime | None = None) -> OverdueJobs:
    """Queued or running jobs of a document's current generation created before now - older_than.

    Superseded jobs are left out: nobody waits for them, and the worker closes them whenever
    their message arrives.
    """
    now = now or datetime.now(UTC)
    with transaction() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(IngestionJob.created_at))
            .select_from(IngestionJob)
            .join(Document, Document.id == IngestionJob.document_id)
            .where(
                IngestionJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
                IngestionJob.created_at < now - older_than,
                Document.generation == IngestionJob.generation,
            )
        ).one()
    age = None if oldest is None else max(0, int((now - oldest).total_seconds()))
    return OverdueJobs(count=int(count), oldest_age_seconds=age)


def sweep_and_measure(overdue_after_minutes: int) -> SweepFigures:
    """Run the job sweep, then count what is still overdue after it."""
    report = sweep_stuck_jobs()
    indexes = sync_project_indexes(
        min_chunks=get_settings().exact_search_max_chunks, max_build_seconds=SWEEP_BUILD_SECONDS
    )
    overdue = count_overdue_jobs(timedelta(minutes=overdue_after_minutes))
    settings = get_settings()
    with transaction() as session:
        queues = team_queues(
            session,
            datetime.now(UTC),
            job_timeout_seconds=settings.job_timeout_seconds,
            overdue_after=timedelta(minutes=overdue_after_minutes),
        )
    return SweepFigures(
        released=report.released,
        overdue_teams=tuple(queue for queue in queues if queue.overdue),
        requeued=report.requeued,
        failed=report.failed,
        republished=report.republished,
        overdue_minutes=overdue_after_minutes,
        overdue_jobs=overdue.count,
        oldest_overdue_seconds=overdue.oldest_age_seconds,
        indexes_built=len(indexes.built),
        indexes_dropped=len(indexes.dropped),
        indexes_pending=indexes.pending,
        indexes_too_big=len(indexes.too_big),
    )
