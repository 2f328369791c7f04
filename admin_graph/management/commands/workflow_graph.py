"""workflow_graph SLUG [--run RUN_ID] [--format dot|svg]: print a graph."""

from __future__ import annotations

import shutil

import graphviz
from django.core.management.base import BaseCommand, CommandError

from admin_graph import graph as graphs
from workflows.models import StepRun, Workflow, WorkflowRun
from workflows.registry import registry
from workflows.spec import workflow_steps


class Command(BaseCommand):
    help = (
        "Print the graph of a workflow (or of one of its runs, coloured by state) "
        "as DOT, or as SVG drawn by the Graphviz 'dot' binary."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The workflow's slug.")
        parser.add_argument("--run", type=int, dest="run_id", help="A run of it.")
        parser.add_argument("--format", choices=["dot", "svg"], default="dot")

    def handle(self, *args, slug, run_id=None, format="dot", **options):
        try:
            workflow = Workflow.objects.get(slug=slug)
        except Workflow.DoesNotExist:
            raise CommandError(f"No workflow with slug {slug!r}.") from None
        if run_id is None:
            labels = {t.name: t.label for t in registry}
            data = graphs.steps_graph(workflow_steps(workflow), labels)
            name = workflow.slug
        else:
            try:
                run = WorkflowRun.objects.get(pk=run_id, workflow=workflow)
            except WorkflowRun.DoesNotExist:
                raise CommandError(f"Workflow {slug!r} has no run {run_id}.") from None
            statuses = dict(
                StepRun.objects.filter(run=run).values_list("key", "status")
            )
            data = graphs.run_graph(run.snapshot, statuses)
            name = f"{workflow.slug}-run-{run.pk}"
        source = graphs.to_dot(data, name)
        if format == "dot":
            self.stdout.write(source, ending="")
            return
        if shutil.which("dot") is None:
            raise CommandError(
                "The Graphviz 'dot' binary is missing, so SVG cannot be drawn here: "
                "install Graphviz (e.g. `apt-get install graphviz`) or use "
                "--format dot (the admin draws graphs in the browser without it)."
            )
        try:
            svg = graphviz.Source(source).pipe(format="svg", encoding="utf-8")
        except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as exc:
            raise CommandError(f"Graphviz failed to draw the graph: {exc}") from exc
        self.stdout.write(svg, ending="")
