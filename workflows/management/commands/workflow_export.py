"""``workflow_export SLUG``: print a workflow as the JSON ``workflow_import`` reads."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from workflows.management.commands._common import WorkflowCommand, get_workflow
from workflows.spec import export_workflow


class Command(WorkflowCommand):
    help = (
        "Print a workflow as JSON (indent 2): slug, name, description, "
        "params_schema, layout and steps. Importing the output gives back the "
        "same workflow."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", metavar="SLUG")
        parser.add_argument(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the JSON to FILE instead of standard output.",
        )

    def handle(self, *args, slug: str, output: str | None = None, **options):
        text = json.dumps(
            export_workflow(get_workflow(slug)), indent=2, ensure_ascii=False
        )
        if not output:
            self.stdout.write(text)
            return
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        except OSError as exc:
            raise CommandError(
                f"Cannot write {output}: {exc.strerror or exc}."
            ) from None
        self.stdout.write(f"Exported workflow {slug!r} to {output}.")
