"""No job is ever stuck: dead workers' jobs are taken over, lost messages published again.

- `handle_dead_letter`: a job message Pub/Sub gave up on (its worker could not be reached on
  any delivery). A job that used every attempt fails; otherwise the dead letter counts as one
  attempt and the job is published again with a fresh delivery budget, so a worker that was
  down for a while costs a healthy document one attempt, not all of them.
- `sweep_stuck_jobs`: jobs `running` whose lease ran out (the worker stopped renewing it) are
  re-queued, or failed once they used every attempt; queued jobs whose last hand-over to Pub/Sub
  is older than `job_republish_seconds` (a message lost by a restarted emulator, or between the
  trigger's commit and its publish) are published again. The worker ignores a duplicate.
  Jobs deferred by fair scheduling are not republished but released into the slots free now,
  fairest first (`common.ingestion.scheduling`), so none waits for ever.
  The dev stack runs it every `sweep_interval_seconds`, the cloud every few minutes (Cloud
  Scheduler); operators can run `ai-infra jobs sweep`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select

from common.ingestion.job_write import WORKER_DIED, give_up
from common.ingestion.lease import lease_is_live
from common.ingestion.scheduling import release
from common.ingestion.trigger import publish_job, split_gcs_uri
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.events import JobMessage
from common.platform.models import Document, IngestionJob, JobStatus, Project

logger = logging.getLogger(__name__)

__all__ = ["WORKER_DIED", "SweepReport", "handle_dead_letter", "sweep_stuck_jobs"]

DEAD_LETTERED = "the job message was dead-lettered (the worker could not be reached)"


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int
    republished: int
    released: int = 0  # deferred jobs handed free slots (common.ingestion.scheduling)


def handle_dead_letter(message: JobMessage) -> bool:
    """Fail or re-queue the job of a dead-lettered message; True if it changed anything."""
    settings = get_settings()
    now = datetime.now(UTC)
    with transaction() as session:
        document = session.get(Document, message.document_id, with_for_update=True)
        job = session.get(IngestionJob, message.job_id, with_for_update=True)
        if job is None or document is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return False
        if document.generation != job.generation or document.gcs_uri is None:
            return False  # superseded: its successor has a job of its own
        if job.attempts >= settings.max_delivery_attempts:
            give_up(session, job, document, now)
            logger.warning("dead-lettered job marked failed", extra={"job_id": str(job.id)})
            return True
        if job.status is JobStatus.RUNNING and lease_is_live(job, now, settings):
            return False  # a live worker owns it and will finish it
        job.attempts += 1
        job.status = JobStatus.QUEUED
        job.lease_expires_at = None
        job.error_message = f"attempt {job.attempts}: {DEAD_LETTERED}"
        if job.attempts >= settings.max_delivery_attempts:
            give_up(session, job, document, now)
            logger.warning("dead-lettered job marked failed", extra={"job_id": str(job.id)})
            return True
        bucket, name = split_gcs_uri(document.gcs_uri)
        publish_job(session, job, bucket, name)
    logger.warning("dead-lettered job published again", extra={"job_id": str(message.job_id)})
    return True


def _activate_complete_switches() -> None:
    """A switch whose last job's own check failed (its worker died after the write) flips
    here: every project with a pending embedding space is checked."""
    from common.ingestion.embedding_switch import activate_if_complete

    with transaction() as session:
        switching = list(
            session.scalars(select(Project.id).where(Project.pending_space_id.is_not(None)))
        )
    for project_id in switching:
        with transaction() as session:
            activate_if_complete(session, project_id, get_settings())


def sweep_stuck_jobs(
    now: datetime | None = None, *, republish_after: timedelta | None = None
) -> SweepReport:
    """`republish_after`: instead of `job_republish_seconds` (0 after the broker lost every
    message, as a restarted Pub/Sub emulator does)."""
    settings = get_settings()
    now = now or datetime.now(UTC)
    timed_out = now - timedelta(seconds=settings.job_timeout_seconds)
    if republish_after is None:
        republish_after = timedelta(seconds=settings.job_republish_seconds)
    stale_publish = now - republish_after
    requeued = failed = republished = 0
    with transaction() as session:
        candidates = session.execute(
            select(IngestionJob.id, IngestionJob.document_id).where(
                or_(
                    and_(
                        IngestionJob.status == JobStatus.RUNNING,
                        or_(
                            IngestionJob.lease_expires_at < now,
                            IngestionJob.started_at < timed_out,
                        ),
                    ),
                    and_(
                        IngestionJob.status == JobStatus.QUEUED,
                        IngestionJob.deferred_at.is_(None),  # fair scheduling releases those
                        or_(
                            IngestionJob.published_at.is_(None),
                            IngestionJob.published_at < stale_publish,
                        ),
                        IngestionJob.created_at < stale_publish,
                    ),
                )
            )
        ).all()
    for job_id, document_id in candidates:
        with transaction() as session:
            document = session.get(Document, document_id, with_for_update=True)
            job = session.get(IngestionJob, job_id, with_for_update=True)
            if job is None or document is None or document.gcs_uri is None:
                continue
            if document.generation != job.generation:
                # Superseded: the newer generation has its own job; close this one, or a lost
                # message would leave it queued for ever.
                job.status = JobStatus.FAILED
                job.error_message = f"superseded by generation {document.generation}"
                job.finished_at = now
                job.lease_expires_at = None
                continue
            bucket, name = split_gcs_uri(document.gcs_uri)
            if job.status is JobStatus.RUNNING and not lease_is_live(job, now, settings):
                if job.attempts >= settings.max_delivery_attempts:
                    give_up(session, job, document, now)
                    failed += 1
                    continue
                job.status = JobStatus.QUEUED
                job.lease_expires_at = None
                job.error_message = f"attempt {job.attempts}: {WORKER_DIED}"
                publish_job(session, job, bucket, name)
                requeued += 1
            elif (
                job.status is JobStatus.QUEUED
                and job.deferred_at is None
                and (job.published_at is None or job.published_at < stale_publish)
            ):
                # Never handed over, or handed over long ago and never claimed since: publish
                # (again; the worker acknowledges a duplicate without work).
                publish_job(session, job, bucket, name)
                republished += 1
    with transaction() as session:
        released = release(session, now, settings)
    _activate_complete_switches()
    report = SweepReport(requeued, failed, republished, released)
    if candidates or released:
        logger.info("stuck jobs swept", extra=vars(report))
    return report
