"""``workflow_reconcile``: send again runs whose messages a broker or worker lost."""

from __future__ import annotations

from django.utils import timezone

from workflows.exceptions import RunStateError
from workflows.management.commands._common import WorkflowCommand, positive_seconds
from workflows.runs import resume, stalled_runs

DEFAULT_OLDER_THAN = 300.0


class Command(WorkflowCommand):
    help = (
        "Find runs that have not ended but where no step moved (no heartbeat, "
        "no step finished) for --older-than seconds, and dispatch their "
        "unfinished steps again. Finished steps are kept. Safe to run from cron: "
        "a message that turns up later does nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            metavar="SECONDS",
            default=str(DEFAULT_OLDER_THAN),
            help="A run counts as stalled after this long without any step "
            "moving; keep it above your longest retry delay "
            f"(default: {DEFAULT_OLDER_THAN:g}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List the stalled runs; change nothing.",
        )

    def handle(self, *args, older_than=DEFAULT_OLDER_THAN, dry_run=False, **options):
        seconds = positive_seconds(str(older_than))
        stalled = stalled_runs(seconds)
        if not stalled:
            self.stdout.write(f"No stalled runs (idle for {seconds:g}s or more).")
            return
        now = timezone.now()
        resumed = 0
        for run in stalled:
            age = (now - run.created_at).total_seconds()
            what = (
                f"run {run.pk} ({run.snapshot.get('slug', run.workflow_id)}, "
                f"{run.status}, started {age:.0f}s ago)"
            )
            if dry_run:
                self.stdout.write(f"Would resume {what}.")
                continue
            try:
                resume(run)
            except RunStateError as exc:
                # It ended between the query and now: nothing to do.
                self.stdout.write(f"Skipped {what}: {exc}")
                continue
            resumed += 1
            self.stdout.write(f"Resumed {what}.")
        if dry_run:
            self.stdout.write(f"{len(stalled)} stalled run(s); dry run, none resumed.")
        else:
            self.stdout.write(f"Resumed {resumed} of {len(stalled)} stalled run(s).")
