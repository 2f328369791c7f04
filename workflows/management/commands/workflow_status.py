"""``workflow_status RUN_ID``: a run and its steps, as a table or as JSON."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

from django.utils import timezone

from workflows.management.commands._common import (
    WorkflowCommand,
    get_run,
    status_json,
)
from workflows.models import StepRun, WorkflowRun
from workflows.states import RunStatus, StepStatus

RESULT_WIDTH = 40
ERROR_WIDTH = 60
COLUMNS = ("KEY", "STATUS", "ATTEMPTS", "STARTED", "FINISHED", "RESULT", "ERROR")


class Command(WorkflowCommand):
    help = (
        "Show a run: its status and timestamps, then for each step its status, "
        "attempts, start and finish times, a short result and the error. "
        "--json prints the full data instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_id", metavar="RUN_ID")
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="Print the status as JSON (full results and errors).",
        )

    def handle(self, *args, run_id: str, as_json: bool = False, **options):
        run = get_run(run_id)
        if as_json:
            self.stdout.write(status_json(run))
        else:
            self.stdout.write(self.table(run))

    def table(self, run: WorkflowRun) -> str:
        """Return the human-readable view of *run*."""
        steps = list(run.step_runs.all())
        counts = Counter(s.status for s in steps)
        header = [
            f"Run {run.pk} of {run.snapshot.get('slug') or run.workflow_id}: "
            + self.paint(run.status, run.status),
            f"  params:   {_dump(run.params)}",
            f"  created:  {_when(run.created_at)}",
            f"  started:  {_when(run.started_at)}",
            f"  finished: {_when(run.finished_at)}"
            + (f" (took {_took(run)})" if run.started_at and run.finished_at else ""),
            "  steps:    " + ", ".join(f"{n} {s}" for s, n in counts.items()),
            "",
        ]
        rows = [COLUMNS] + [_row(s) for s in steps]
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
        lines = []
        for index, row in enumerate(rows):
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
            if index:
                cells[1] = self.paint(row[1], cells[1])
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        return "\n".join(header + lines)

    def paint(self, status: str, text: str) -> str:
        """Color *text* by *status* (Django drops the color when not a terminal)."""
        if status in (RunStatus.SUCCESS, StepStatus.SUCCESS):
            return self.style.SUCCESS(text)
        if status in (StepStatus.FAILED, StepStatus.UPSTREAM_FAILED):
            return self.style.ERROR(text)
        if status in (StepStatus.RUNNING, StepStatus.RETRYING, StepStatus.CANCELLED):
            return self.style.WARNING(text)
        return text


def _row(step: StepRun) -> tuple[str, ...]:
    result = ""
    if step.status == StepStatus.SUCCESS:
        result = _short(_dump(step.result), RESULT_WIDTH)
    error = step.error.strip().splitlines()[0] if step.error.strip() else ""
    return (
        step.key,
        step.status,
        str(step.attempts),
        _when(step.started_at),
        _when(step.finished_at),
        result,
        _short(error, ERROR_WIDTH),
    )


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def _took(run: WorkflowRun) -> str:
    seconds = (run.finished_at - run.started_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s"
