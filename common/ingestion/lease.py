"""A worker's short, renewed lease on its job: a heartbeat tells a live worker from a dead one.

The claim sets `lease_expires_at = now + job_lease_seconds`; while the attempt runs, a daemon
thread moves it forward every third of that. A worker killed at any line stops renewing, so a
redelivery or the sweep can take its job over soon after, while a slow but live worker keeps
its job however long it takes (up to the function timeout). A renewal that finds the job no
longer this attempt's (taken over, superseded, deleted) marks the lease lost, and the worker
stops at its next stage instead of finishing work nobody will keep.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType

from sqlalchemy import update

from common.platform.config import Settings
from common.platform.db import transaction
from common.platform.models import IngestionJob, JobStatus

logger = logging.getLogger(__name__)


def lease_deadline(lease_seconds: float, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + timedelta(seconds=lease_seconds)


def lease_is_live(job: IngestionJob, now: datetime, settings: Settings) -> bool:
    """Whether a running job's worker still owns it: its heartbeat is recent and it is within
    the function timeout (no attempt outlives that). A row from before leases existed has
    only the timeout."""
    if job.started_at is None or now - job.started_at >= timedelta(
        seconds=settings.job_timeout_seconds
    ):
        return False
    return job.lease_expires_at is None or job.lease_expires_at > now


def renew(job_id: uuid.UUID, attempt: int, lease_seconds: float) -> bool:
    """Extend this attempt's lease; False when the job is no longer this attempt's."""
    with transaction() as session:
        result = session.execute(
            update(IngestionJob)
            .where(
                IngestionJob.id == job_id,
                IngestionJob.attempts == attempt,
                IngestionJob.status == JobStatus.RUNNING,
            )
            .values(lease_expires_at=lease_deadline(lease_seconds))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class LeaseLostError(RuntimeError):
    """Another attempt took this job over (or it was superseded): drop the work, acknowledge."""


class LeaseKeeper:
    """Renews one attempt's lease from a daemon thread for as long as the `with` block runs."""

    def __init__(self, job_id: uuid.UUID, attempt: int, lease_seconds: float) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        if self.lost:
            raise LeaseLostError(f"job {self.job_id} attempt {self.attempt} lost its lease")

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            try:
                if not renew(self.job_id, self.attempt, self.lease_seconds):
                    self._lost.set()
                    logger.warning(
                        "job lease lost: another attempt owns the job",
                        extra={"job_id": str(self.job_id), "attempt": self.attempt},
                    )
                    return
            except Exception as error:  # the database may be restarting: try again next beat
                logger.warning(
                    "job lease not renewed: %s",
                    type(error).__name__,
                    extra={"job_id": str(self.job_id), "attempt": self.attempt},
                )
