"""``workflow_cancel RUN_ID``: cancel a run that has not ended."""

from __future__ import annotations

from workflows.management.commands._common import (
    WorkflowCommand,
    engine_errors,
    get_run,
)
from workflows.runs import cancel
from workflows.states import StepStatus


class Command(WorkflowCommand):
    help = (
        "Cancel a run: every step not yet finished ends cancelled. A step "
        "already executing finishes in its worker, but its outcome is discarded."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_id", metavar="RUN_ID")

    def handle(self, *args, run_id: str, **options):
        run = get_run(run_id)
        with engine_errors("Cannot cancel: "):
            run = cancel(run)
        count = run.step_runs.filter(status=StepStatus.CANCELLED).count()
        self.stdout.write(
            f"Cancelled run {run.pk} ({count} step{'' if count == 1 else 's'} "
            "cancelled)."
        )
