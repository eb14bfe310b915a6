"""`ai-infra jobs sweep|status`: move stuck jobs on; see each team's queue.

The dev stack runs the same sweep every `sweep_interval_seconds` and the cloud every minute
(Cloud Scheduler calls the `sweep` function); this runs it once, by hand.
"""

from typing import Annotated

import typer
from rich.console import Console

from common.cli.context import connect, state_of
from common.cli.output import emit, emit_records

app = typer.Typer(no_args_is_help=True, help="Ingestion jobs: each team's queue; sweep stuck ones.")


@app.command("sweep")
def sweep_command(ctx: typer.Context) -> None:
    """Re-queue jobs whose lease ran out, republish lost messages; fail jobs out of attempts."""
    from common.ingestion.sweeper import sweep_stuck_jobs

    connect(ctx, need_stack=True)
    report = sweep_stuck_jobs()
    record = vars(report)

    def render(out: Console) -> None:
        out.print(
            f"{report.requeued} re-queued, {report.failed} failed, {report.republished} "
            f"republished, {report.released} deferred released"
        )

    emit(state_of(ctx), record, render)


STATUS_COLUMNS = [
    ("team", "TEAM"),
    ("queued", "QUEUED"),
    ("deferred", "DEFERRED"),
    ("running", "RUNNING"),
    ("oldest_queued_seconds", "OLDEST QUEUED (S)"),
    ("overdue", "OVERDUE"),
]


@app.command("status")
def status_command(
    ctx: typer.Context,
    overdue_minutes: Annotated[
        int, typer.Option("--overdue-minutes", min=1, help="Unfinished after this long: overdue.")
    ] = 30,
) -> None:
    """Per team: jobs queued, deferred by fair scheduling, running; the oldest queued job's age."""
    from dataclasses import asdict
    from datetime import UTC, datetime, timedelta

    from common.platform.db import transaction
    from common.platform.job_queue import team_queues

    settings = connect(ctx)
    with transaction() as session:
        queues = team_queues(
            session,
            datetime.now(UTC),
            job_timeout_seconds=settings.job_timeout_seconds,
            overdue_after=timedelta(minutes=overdue_minutes),
        )
    records = [asdict(queue) for queue in queues]
    emit_records(state_of(ctx), records, STATUS_COLUMNS, empty="no unfinished jobs")
