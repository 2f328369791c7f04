"""``workflow_import PATH``: create or update a workflow from its JSON file."""

from __future__ import annotations

import json
import sys

from django.core.management.base import CommandError

from workflows.management.commands._common import (
    WorkflowCommand,
    engine_errors,
    one_line,
)
from workflows.models import Workflow
from workflows.spec import import_workflow


class Command(WorkflowCommand):
    help = (
        "Create or update a workflow from a JSON file (see workflow_export for the "
        "format). PATH '-' reads standard input. Nothing is saved when the file "
        "is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH", help="JSON file, or - for stdin.")

    def handle(self, *args, path: str, **options):
        data = load_json(path)
        slug = data.get("slug") if isinstance(data, dict) else None
        existed = bool(slug) and Workflow.objects.filter(slug=slug).exists()
        with engine_errors(f"Invalid workflow in {_name(path)}: "):
            workflow = import_workflow(data)
        count = workflow.steps.count()
        self.stdout.write(
            f"{'Updated' if existed else 'Created'} workflow {workflow.slug!r} "
            f"({count} step{'' if count == 1 else 's'}, version {workflow.version})."
        )


def _name(path: str) -> str:
    return "standard input" if path == "-" else path


def load_json(path: str) -> object:
    """Return the JSON document at *path* ('-': stdin) or raise a CommandError."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{_name(path)} is not UTF-8 text: {exc.reason}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            one_line(f"{_name(path)} is not valid JSON: {exc}.")
        ) from None
