"""`ai-infra jobs sweep`: re-queue jobs whose worker vanished, fail those out of attempts.

The dev stack runs the same sweep every `sweep_interval_seconds` and the cloud every minute
(Cloud Scheduler calls the `sweep` function); this runs it once, by hand.
"""

import typer
from rich.console import Console

from common.cli.context import connect, state_of
from common.cli.output import emit

app = typer.Typer(no_args_is_help=True, help="Ingestion jobs: sweep stuck ones.")


@app.command("sweep")
def sweep_command(ctx: typer.Context) -> None:
    """Re-queue jobs whose lease ran out, republish lost messages; fail jobs out of attempts."""
    from common.ingestion.sweeper import sweep_stuck_jobs

    connect(ctx, need_stack=True)
    report = sweep_stuck_jobs()
    record = vars(report)

    def render(out: Console) -> None:
        out.print(
            f"{report.requeued} re-queued, {report.failed} failed, {report.republished} republished"
        )

    emit(state_of(ctx), record, render)
