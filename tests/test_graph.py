"""admin_graph.graph: graph structure and DOT whose labels are always plain text."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from admin_graph import graph as graphs

ROOT = Path(__file__).resolve().parent.parent
VIZ = ROOT / "admin_graph/static/admin_graph/vendor/viz-js/viz.js"
SVG_NS = "{http://www.w3.org/2000/svg}"

HOSTILE_LABELS = [
    'He said "hi"',
    '"; node [shape=star]; x [label="pwned',
    "<b>bold</b>",
    "<<table><tr><td>html label</td></tr></table>>",
    "<script>alert(1)</script>",
    "back\\slash \\N \\G \\l \\",
    "trailing backslash \\",
    "ünïcødé ✓ 漢字 🚀",
    "tab\tand\nnewline",
    "{record|field}",
    "& &amp; &lt;",
]


def spec(key, label="", step_type="noop", after=()):
    return {"key": key, "type": step_type, "label": label, "after": list(after)}


def test_steps_graph_structure():
    graph = graphs.steps_graph(
        [
            spec("a", "Extract"),
            spec("b", after=["a"]),
            spec("c", "", "echo", ["a", "b"]),
        ],
        {"noop": "No-op"},
    )
    assert graph["nodes"] == [
        {"id": "a", "label": "Extract", "type": "noop"},
        {"id": "b", "label": "No-op", "type": "noop"},
        {"id": "c", "label": "c", "type": "echo"},
    ]
    assert graph["edges"] == [
        {"source": "a", "target": "b"},
        {"source": "a", "target": "c"},
        {"source": "b", "target": "c"},
    ]


def test_run_graph_has_a_state_per_node():
    snapshot = {"steps": {"a": spec("a"), "b": spec("b", after=["a"])}}
    graph = graphs.run_graph(snapshot, {"a": "success"})
    assert {n["id"]: n["state"] for n in graph["nodes"]} == {
        "a": "success",
        "b": "pending",
    }
    dot = graphs.to_dot(graph)
    assert f'fillcolor="{graphs.STATE_COLORS["success"]}"' in dot
    assert "class=state-pending" in dot or 'class="state-pending"' in dot


def test_dot_is_top_to_bottom_with_labels_and_types():
    dot = graphs.to_dot(graphs.steps_graph([spec("a", "Load"), spec("b", after=["a"])]))
    assert dot.startswith("digraph workflow {")
    assert "rankdir=TB" in dot
    assert 'a [label="Load\\n(noop)"]' in dot
    assert "a -> b" in dot


def test_dot_keywords_as_keys_are_quoted():
    dot = graphs.to_dot(
        graphs.steps_graph([spec("node"), spec("edge", after=["node"])])
    )
    assert '"node" -> "edge"' in dot


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_hostile_labels_stay_inside_one_quoted_dot_string(label):
    dot = graphs.to_dot(graphs.steps_graph([spec("a", label)]))
    line = next(ln for ln in dot.splitlines() if ln.strip().startswith("a ["))
    # One node statement whose label is a single quoted string: no HTML label
    # (<...>), no unescaped quote, no live backslash escape.
    assert line.strip().startswith('a [label="')
    assert line.rstrip().endswith('"]')
    body = line.strip()[len('a [label="') : -2]
    i = 0
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in '\\"n', f"live escape \\{body[i + 1]} in {body!r}"
            i += 2
            continue
        assert body[i] != '"', f"unescaped quote in {body!r}"
        i += 1


def render_svg(dot: str, tmp_path: Path) -> ET.Element:
    """Render *dot* with the vendored viz.js (the browser's Graphviz) under Node."""
    script = tmp_path / "render.mjs"
    script.write_text(
        f'import {{ instance }} from "{VIZ.as_uri()}";\n'
        'let input = "";\n'
        "for await (const chunk of process.stdin) input += chunk;\n"
        "const viz = await instance();\n"
        'process.stdout.write(viz.renderString(input, { format: "svg" }));\n'
    )
    done = subprocess.run(
        ["node", str(script)],
        input=dot,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return ET.fromstring(done.stdout)  # noqa: S314 (our own Graphviz output)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_hostile_labels_render_as_literal_text(tmp_path):
    steps = [spec(f"s{i}", label) for i, label in enumerate(HOSTILE_LABELS)]
    svg = render_svg(graphs.to_dot(graphs.steps_graph(steps)), tmp_path)
    nodes = {
        g.find(f"{SVG_NS}title").text: [t.text or "" for t in g.iter(f"{SVG_NS}text")]
        for g in svg.iter(f"{SVG_NS}g")
        if g.get("class", "").startswith("node")
    }
    # Every label became a node (nothing injected, nothing dropped) and reads
    # back as exactly the text given, control characters shown as spaces.
    assert set(nodes) == {s["key"] for s in steps}
    for step in steps:
        expected = step["label"].replace("\t", " ").replace("\n", " ")
        assert nodes[step["key"]][0] == expected
        assert nodes[step["key"]][-1] == "(noop)"
    assert not list(svg.iter(f"{SVG_NS}script"))
    assert not list(svg.iter(f"{SVG_NS}foreignObject"))


def test_node_label_falls_back_to_the_key():
    graph = graphs.steps_graph([spec("only_key", step_type="mystery")])
    assert graph["nodes"][0]["label"] == "only_key"
