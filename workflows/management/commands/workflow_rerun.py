"""``workflow_rerun RUN_ID``: run again the failed steps of a run, or from a step."""

from __future__ import annotations

from django.core.management.base import CommandError

from workflows.management.commands._common import (
    WorkflowCommand,
    add_wait_arguments,
    engine_errors,
    finish_wait,
    get_run,
    wait_option,
)
from workflows.runs import rerun


class Command(WorkflowCommand):
    help = (
        "Continue an ended run: rerun its failed steps (--failed) or a step and "
        "everything downstream of it (--from KEY). Successful steps outside "
        "that set keep their results. Prints the run id, or with --wait its "
        "status as JSON once it ends."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_id", metavar="RUN_ID")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--failed",
            action="store_true",
            help="Rerun the failed, upstream_failed and cancelled steps.",
        )
        which.add_argument(
            "--from",
            dest="from_key",
            metavar="STEP_KEY",
            help="Rerun STEP_KEY and every step downstream of it.",
        )
        add_wait_arguments(parser)

    def handle(self, *args, run_id: str, failed=False, from_key=None, **options):
        wait_option(options)
        if bool(failed) == bool(from_key):
            raise CommandError("Give exactly one of --failed or --from STEP_KEY.")
        run = get_run(run_id)
        with engine_errors("Cannot rerun: "):
            run = rerun(run, failed=failed, from_key=from_key)
        finish_wait(self, run, options)
