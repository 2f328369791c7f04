"""What the ``workflow_*`` commands share: lookups, one-line errors, ``--wait``.

The leading underscore keeps Django from listing this module as a command.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.exceptions import WorkflowError
from workflows.models import Workflow, WorkflowRun
from workflows.runs import run_status
from workflows.states import RUN_FINAL, RunStatus

# Polling starts fast (a short run is reported at once) and slows down so a
# long wait costs the database about one query a second.
POLL_FIRST = 0.1
POLL_MAX = 1.0


def one_line(message: object) -> str:
    """Return *message* as a single line: the CLI prints one line per error."""
    return " ".join(str(message).split())


def _one_line_parser_error(self: CommandParser, message: str) -> NoReturn:
    # argparse prints its whole usage before the error; our commands promise
    # one line on bad input, with --help still there for the usage.
    if not self.called_from_command_line:
        raise CommandError(f"Error: {message}")
    self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


class WorkflowCommand(BaseCommand):
    """Base of the ``workflow_*`` commands: usage errors fit on one line."""

    def create_parser(
        self, prog_name: str, subcommand: str, **kwargs: Any
    ) -> CommandParser:
        """Return Django's parser, whose errors print one line instead of usage."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = types.MethodType(_one_line_parser_error, parser)
        return parser


@contextmanager
def engine_errors(prefix: str = "") -> Iterator[None]:
    """Turn an engine refusal (any WorkflowError) into a one-line CommandError."""
    try:
        yield
    except WorkflowError as exc:
        raise CommandError(one_line(f"{prefix}{exc}")) from exc


def get_workflow(slug: str) -> Workflow:
    """Return the workflow *slug*, or raise a CommandError that names it."""
    workflow = Workflow.objects.filter(slug=slug).first()
    if workflow is None:
        raise CommandError(f"No workflow with slug {slug!r}.")
    return workflow


def get_run(run_id: object) -> WorkflowRun:
    """Return the run *run_id* (text or int), or raise a CommandError."""
    try:
        pk = int(str(run_id).strip())
    except ValueError:
        raise CommandError(f"Run id must be a whole number, not {run_id!r}.") from None
    run = WorkflowRun.objects.filter(pk=pk).first()
    if run is None:
        raise CommandError(f"No run with id {pk}.")
    return run


def positive_seconds(value: str) -> float:
    """Parse a ``--timeout``/``--older-than`` value: a positive number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        raise CommandError(f"Expected a number of seconds, not {value!r}.") from None
    if not seconds > 0 or seconds == float("inf"):
        raise CommandError(f"Expected a positive number of seconds, not {value!r}.")
    return seconds


def add_wait_arguments(parser: CommandParser) -> None:
    """Add ``--wait`` and ``--timeout`` as every run-starting command has them."""
    parser.add_argument(
        "--wait",
        action="store_true",
        help="Wait for the run to end, print its status as JSON and exit 0 "
        "if it succeeded, 1 otherwise.",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        help="With --wait: give up after SECONDS (exit 1; the run goes on). "
        "Default: wait as long as it takes.",
    )


def wait_option(options: dict) -> float | None:
    """Return the ``--timeout`` in seconds, refusing it without ``--wait``."""
    timeout = options.get("timeout")
    if timeout is None:
        return None
    if not options.get("wait"):
        raise CommandError("--timeout only applies together with --wait.")
    return positive_seconds(str(timeout))


def wait_for_run(run: WorkflowRun, timeout: float | None) -> WorkflowRun | None:
    """Poll the database until *run* is final; return it, or None on timeout.

    The database is the truth (workers write every outcome there), so this
    needs no result backend and works for runs started by anyone.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = POLL_FIRST
    while True:
        status = (
            WorkflowRun.objects.filter(pk=run.pk)
            .values_list("status", flat=True)
            .first()
        )
        if status is None:
            raise CommandError(f"Run {run.pk} was deleted while waiting for it.")
        if status in RUN_FINAL:
            return WorkflowRun.objects.get(pk=run.pk)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(interval, left))
        else:
            time.sleep(interval)
        interval = min(interval * 1.5, POLL_MAX)


def status_json(run: WorkflowRun) -> str:
    """Return ``runs.run_status(run)`` as indented JSON text."""
    return json.dumps(run_status(run), indent=2, ensure_ascii=False, default=str)


def finish_wait(command: BaseCommand, run: WorkflowRun, options: dict) -> None:
    """Wait for *run* if ``--wait`` was given, print its status and set the exit.

    Prints the status JSON on stdout in every case (at a timeout, as it stands
    then) and raises CommandError, hence exit status 1, unless the run ended
    ``success``.
    """
    timeout = wait_option(options)
    if not options.get("wait"):
        command.stdout.write(str(run.pk))
        return
    command.stderr.write(f"Waiting for run {run.pk}...")
    try:
        final = wait_for_run(run, timeout)
    except KeyboardInterrupt:
        raise CommandError(
            f"Interrupted; run {run.pk} goes on in the workers."
        ) from None
    if final is None:
        current = WorkflowRun.objects.get(pk=run.pk)
        command.stdout.write(status_json(current))
        raise CommandError(
            f"Timed out after {timeout:g}s waiting for run {run.pk} "
            f"(still {current.status}); it goes on in the workers."
        )
    command.stdout.write(status_json(final))
    if final.status != RunStatus.SUCCESS:
        raise CommandError(f"Run {final.pk} ended {final.status}.")
