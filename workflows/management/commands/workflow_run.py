"""``workflow_run SLUG``: start a run, print its id, or wait for its end."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from workflows.management.commands._common import (
    WorkflowCommand,
    add_wait_arguments,
    engine_errors,
    finish_wait,
    get_workflow,
    one_line,
    wait_option,
)
from workflows.runs import start_run


class Command(WorkflowCommand):
    help = (
        "Start a run of a workflow and print its id. With --wait, print the "
        "run's status as JSON once it ends and exit 0 only if it succeeded."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", metavar="SLUG")
        parser.add_argument(
            "--params",
            metavar="JSON",
            help="Run params as a JSON object, e.g. '{\"limit\": 10}'.",
        )
        add_wait_arguments(parser)

    def handle(self, *args, slug: str, params: str | None = None, **options):
        wait_option(options)  # refuse a bad --timeout before starting anything
        workflow = get_workflow(slug)
        run_params = parse_params(params)
        with engine_errors(f"Cannot start {slug!r}: "):
            run = start_run(workflow, run_params)
        finish_wait(self, run, options)


def parse_params(text: str | None) -> dict | None:
    """Return the ``--params`` JSON object, or raise a CommandError."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(one_line(f"--params is not valid JSON: {exc}.")) from None
    if not isinstance(value, dict):
        raise CommandError(
            f"--params must be a JSON object, not {type(value).__name__}."
        )
    return value
