"""Pure: a workflow's steps or a run's snapshot and statuses -> graph data and DOT text.

Nothing here touches the ORM: callers pass step specs (``workflows.spec``'s
format) or a run snapshot, so the same code feeds the admin pages, the JSON
endpoints and the ``workflow_graph`` command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import graphviz

# Fill colours by state, shared with the CSS legend (admin_graph/css/graph.css).
STATE_COLORS: dict[str, str] = {
    "pending": "#e8e8e8",
    "queued": "#cfe0f3",
    "running": "#79aec8",
    "retrying": "#f5d48b",
    "success": "#8fd16b",
    "failed": "#e06c6c",
    "upstream_failed": "#f2b8b8",
    "cancelled": "#b8b8b8",
}
DEFAULT_COLOR = "#ffffff"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def steps_graph(
    steps: Iterable[Mapping], type_labels: Mapping[str, str] | None = None
) -> dict:
    """Return ``{"nodes", "edges"}`` for step specs (key, type, label, after).

    *type_labels* maps a step type name to its label, used when a step has no
    label of its own. Edges point from a step to the steps that run after it.
    """
    type_labels = type_labels or {}
    nodes = []
    edges = []
    for spec in steps:
        key = spec["key"]
        step_type = spec.get("type", "")
        nodes.append(
            {
                "id": key,
                "label": spec.get("label") or type_labels.get(step_type) or key,
                "type": step_type,
            }
        )
        edges.extend({"source": up, "target": key} for up in spec.get("after") or ())
    return {"nodes": nodes, "edges": edges}


def run_graph(snapshot: Mapping, statuses: Mapping[str, str]) -> dict:
    """Return ``{"nodes", "edges"}`` of a run's *snapshot*, each node with its state.

    *statuses* maps step keys to their StepRun status; keys it lacks are pending.
    """
    graph = steps_graph(snapshot.get("steps", {}).values())
    for node in graph["nodes"]:
        node["state"] = statuses.get(node["id"], "pending")
    return graph


def dot_label(*lines: str) -> graphviz.quoting.NoHtml:
    """Return a DOT label showing *lines* as plain text, one per line.

    Backslashes lose their DOT meaning (``\\N``, ``\\G``, ``\\l``), a label
    that looks like ``<...>`` is never read as an HTML-like label, quotes are
    escaped by the graphviz package, ``&`` is written ``&amp;`` (Graphviz
    decodes HTML entities such as ``&lt;`` even in plain labels) and control
    characters become spaces.
    """
    parts = [
        graphviz.escape(_CONTROL.sub(" ", str(line)).replace("&", "&amp;"))
        for line in lines
        if line
    ]
    return graphviz.nohtml("\\n".join(parts))


def to_digraph(graph: Mapping, name: str = "workflow") -> graphviz.Digraph:
    """Return the graphviz Digraph of *graph* (top to bottom, coloured by state)."""
    dot = graphviz.Digraph(name=_CONTROL.sub(" ", name) or "workflow")
    dot.attr(rankdir="TB")
    dot.attr(
        "node",
        shape="box",
        style="rounded,filled",
        fontname="Helvetica",
        fontsize="11",
        fillcolor=DEFAULT_COLOR,
    )
    dot.attr("edge", color="#666666", arrowsize="0.7")
    for node in graph["nodes"]:
        attrs = {"label": dot_label(node["label"], f"({node['type']})")}
        state = node.get("state")
        if state:
            attrs["fillcolor"] = STATE_COLORS.get(state, DEFAULT_COLOR)
            attrs["class"] = f"state-{state}"
        dot.node(node["id"], **attrs)
    for edge in graph["edges"]:
        dot.edge(edge["source"], edge["target"])
    return dot


def to_dot(graph: Mapping, name: str = "workflow") -> str:
    """Return the DOT source of *graph*."""
    return to_digraph(graph, name).source
