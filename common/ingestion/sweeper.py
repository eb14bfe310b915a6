"""No job is ever stuck: dead letters and expired leases end as `failed` with a reason.

- `handle_dead_letter`: a job message that Pub/Sub gave up on (the worker was killed, timed out
  or ran out of memory on every delivery) fails its job, unless the job finished meanwhile.
- `sweep_stuck_jobs`: jobs `running` past the function timeout are re-queued (or failed once
  they used every attempt), and jobs whose message was never handed over are published again.
  The dev stack runs it every minute; operators run `ai-infra jobs sweep` (or a scheduler).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from common.ingestion.job_write import fail_document
from common.ingestion.trigger import publish_job, split_gcs_uri
from common.platform.config import get_settings
from common.platform.db import transaction
from common.platform.events import JobMessage
from common.platform.models import Document, IngestionJob, JobStatus

logger = logging.getLogger(__name__)

WORKER_DIED = "the worker stopped without finishing (killed, timed out or out of memory)"
UNPUBLISHED_GRACE = timedelta(minutes=1)
# A published job no worker ever claimed: lost between the trigger's commit and its publish.
UNCONSUMED_GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int
    republished: int


def handle_dead_letter(message: JobMessage) -> bool:
    """Fail the job of a dead-lettered message; True if it changed anything."""
    with transaction() as session:
        document = session.get(Document, message.document_id, with_for_update=True)
        job = session.get(IngestionJob, message.job_id, with_for_update=True)
        if job is None or document is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return False
        _give_up(session, job, document, datetime.now(UTC))
    logger.warning("dead-lettered job marked failed", extra={"job_id": str(message.job_id)})
    return True


def sweep_stuck_jobs(now: datetime | None = None) -> SweepReport:
    settings = get_settings()
    now = now or datetime.now(UTC)
    lease_expired = now - timedelta(seconds=settings.job_timeout_seconds)
    requeued = failed = republished = 0
    with transaction() as session:
        candidates = session.execute(
            select(IngestionJob.id, IngestionJob.document_id).where(
                or_(
                    (IngestionJob.status == JobStatus.RUNNING)
                    & (IngestionJob.started_at < lease_expired),
                    (IngestionJob.status == JobStatus.QUEUED)
                    & IngestionJob.published_at.is_(None)
                    & (IngestionJob.created_at < now - UNPUBLISHED_GRACE),
                    (IngestionJob.status == JobStatus.QUEUED)
                    & (IngestionJob.attempts == 0)
                    & (IngestionJob.published_at < now - UNCONSUMED_GRACE),
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
                continue  # superseded: the worker skips it when its message arrives
            bucket, name = split_gcs_uri(document.gcs_uri)
            if (
                job.status is JobStatus.RUNNING
                and job.started_at
                and job.started_at < lease_expired
            ):
                if job.attempts >= settings.max_delivery_attempts:
                    _give_up(session, job, document, now)
                    failed += 1
                    continue
                job.status = JobStatus.QUEUED
                job.error_message = f"attempt {job.attempts}: {WORKER_DIED}"
                publish_job(session, job, bucket, name)
                requeued += 1
            elif job.status is JobStatus.QUEUED and (
                job.published_at is None
                or (job.attempts == 0 and job.published_at < now - UNCONSUMED_GRACE)
            ):
                # Never handed over, or claimed for publishing by a trigger that died before
                # the hand-over: publish (again; the worker ignores a duplicate).
                publish_job(session, job, bucket, name)
                republished += 1
    report = SweepReport(requeued, failed, republished)
    if candidates:
        logger.info("stuck jobs swept", extra=vars(report))
    return report


def _give_up(session: Session, job: IngestionJob, document: Document, now: datetime) -> None:
    reason = job.error_message or WORKER_DIED
    reason = reason.split(": ", 1)[1] if reason.startswith("attempt ") else reason
    job.status = JobStatus.FAILED
    job.error_message = f"gave up after {job.attempts} attempts: {reason}"
    job.finished_at = now
    if document.generation == job.generation:
        fail_document(session, document, job.error_message)
