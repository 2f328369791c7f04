"""The compiler: block trees of DAGs, their Celery canvases, segments.

Correctness is checked by walking the trees and canvases, never by timing:
every edge ``u -> v`` must make v wait for u, and on series-parallel graphs
nothing may wait for a step it does not depend on.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from pathlib import Path

import networkx as nx
import pytest
from celery.canvas import Signature, _chain, _chord, group

from tests.factories import SHAPES, chain_shape, fan_shape, steps_for
from workflows import compiler
from workflows.compiler import (
    ADVANCE_RUN,
    JOIN,
    RUN_STEP,
    Parallel,
    Segment,
    Series,
    Step,
    advance_signature,
    block_from_data,
    block_to_data,
    decompose,
    plan_segments,
    step_count,
    step_signature_factory,
    to_canvas,
)
from workflows.dag import build_graph

RUN_ID, GENERATION = 41, 3


def graph_of(shape: str) -> nx.DiGraph:
    return build_graph(steps_for(shape))


EXPECTED = {
    "chain": ["s", "a", "b", "c", "d"],
    "diamond": ["s", "a", ["p", "b", "c"], "d"],
    "fan_out_fan_in": ["s", "a", ["p", "b", "c", "d", "e"], "f"],
    "two_diamonds": ["s", "a", ["p", "b", "c"], "d", ["p", "e", "f"], "g"],
    "nested": [
        "p",
        ["s", "a", ["p", ["s", "b", "c"], ["s", "d", "e"]], "f", "g"],
        ["s", "x", "y"],
    ],
    "wide_1000": ["s", "start", ["p", *(f"m{i:04d}" for i in range(1000))], "end"],
    "chain_1000": ["s", *(f"s{i:04d}" for i in range(1000))],
}
SP_SHAPES = {
    **{name: SHAPES[name] for name in EXPECTED if name in SHAPES},
    "wide_1000": fan_shape(1000),
    "chain_1000": chain_shape(1000),
}


@functools.cache
def shape_case(name: str) -> tuple[nx.DiGraph, object]:
    """Return the graph of a named shape and its block tree, built once."""
    graph = graph_of(SP_SHAPES.get(name) or SHAPES[name])
    return graph, decompose(graph)


@pytest.fixture(params=sorted(SP_SHAPES))
def sp_shape(request) -> tuple[str, nx.DiGraph, object]:
    """A named series-parallel shape, its graph and its block tree."""
    return (request.param, *shape_case(request.param))


@pytest.fixture(params=[*sorted(SP_SHAPES), "n_shape"])
def any_shape(request) -> tuple[nx.DiGraph, object]:
    """Every named shape, the N-shape (not series-parallel) included."""
    return shape_case(request.param)


# -- checkers -----------------------------------------------------------------


def paths(block, prefix=()) -> dict[str, tuple]:
    """Return, for each key, its path from the root: ((block, index), ...)."""
    if isinstance(block, Step):
        return {block.key: prefix}
    found: dict[str, tuple] = {}
    for i, part in enumerate(block.parts):
        for key, path in paths(part, (*prefix, (block, i))).items():
            assert key not in found, f"{key} appears twice"
            found[key] = path
    return found


def keys_in(block) -> list[str]:
    if isinstance(block, Step):
        return [block.key]
    return [k for part in block.parts for k in keys_in(part)]


def waits_for(key_paths: dict[str, tuple], u: str, v: str) -> bool:
    """True when the tree makes v start after u ended."""
    pu, pv = key_paths[u], key_paths[v]
    for (bu, iu), (bv, iv) in zip(pu, pv, strict=False):
        assert bu is bv
        if iu != iv:
            return isinstance(bu, Series) and iu < iv
    raise AssertionError(f"{u} and {v} share a leaf")


def waiting_pairs(block) -> set[tuple[str, str]]:
    """Every (u, v) such that v waits for u in the tree."""
    if isinstance(block, Step):
        return set()
    pairs: set[tuple[str, str]] = set()
    for part in block.parts:
        pairs |= waiting_pairs(part)
    if isinstance(block, Series):
        seen: list[str] = []
        for part in block.parts:
            keys = keys_in(part)
            pairs.update((u, v) for u in seen for v in keys)
            seen.extend(keys)
    return pairs


def assert_correct(graph: nx.DiGraph, block, keys=None) -> None:
    """Each key once, and every edge u -> v has u strictly before v."""
    wanted = set(graph.nodes if keys is None else keys)
    listed = keys_in(block)
    assert len(listed) == len(set(listed)), "a key appears twice"
    assert set(listed) == wanted
    key_paths = paths(block)
    for u, v in graph.subgraph(wanted).edges:
        assert waits_for(key_paths, u, v), f"{v} does not wait for {u}"
        assert not waits_for(key_paths, v, u)


def assert_exact(graph: nx.DiGraph, block) -> None:
    """No step waits for a step it does not depend on."""
    ancestors: dict[str, set[str]] = {}
    for key in nx.topological_sort(graph):
        ancestors[key] = set()
        for upstream in graph.predecessors(key):
            ancestors[key] |= ancestors[upstream] | {upstream}
    for u, v in waiting_pairs(block):
        assert u in ancestors[v], f"{v} waits for {u} without depending on it"


def assert_well_formed(block) -> None:
    """Series hold no Series, Parallel hold no Parallel, no one-part blocks."""
    if isinstance(block, Step):
        return
    assert len(block.parts) >= 2
    for part in block.parts:
        assert type(part) is not type(block)
        assert_well_formed(part)


# -- decompose ------------------------------------------------------------------


def test_named_shapes_decompose_exactly(sp_shape):
    name, graph, block = sp_shape
    assert block_to_data(block) == EXPECTED[name]
    assert_correct(graph, block)
    assert_exact(graph, block)
    assert_well_formed(block)


def test_n_shape_is_correct_and_waits_only_at_its_cut():
    graph = graph_of(SHAPES["n_shape"])
    block = decompose(graph)
    assert block_to_data(block) == ["s", ["p", "a", "b"], ["p", "c", "d"]]
    assert_correct(graph, block)
    extra = {(u, v) for u, v in waiting_pairs(block) if u not in nx.ancestors(graph, v)}
    assert extra == {("b", "c")}


def test_single_step_and_empty():
    graph = nx.DiGraph()
    graph.add_node("only")
    assert decompose(graph) == Step("only")
    assert decompose(nx.DiGraph()) is None
    assert decompose(graph, []) is None


def random_dag(rng: random.Random, size: int, density: float) -> nx.DiGraph:
    names = [f"n{i}" for i in range(size)]
    rng.shuffle(names)  # topological order unrelated to the names
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    for i in range(size):
        for j in range(i + 1, size):
            if rng.random() < density:
                graph.add_edge(names[i], names[j])
    return graph


def random_sp(rng: random.Random, size: int) -> tuple[nx.DiGraph, object]:
    """Return a random series-parallel DAG of *size* steps (and its own tree)."""
    counter = iter(range(size))

    def build(n: int):
        if n == 1:
            return Step(f"k{next(counter):02d}")
        cut = rng.randint(1, n - 1)
        kind = rng.choice([Series, Parallel])
        return kind((build(cut), build(n - cut)))

    tree = build(size)
    graph = nx.DiGraph()

    def wire(block) -> tuple[list[str], list[str]]:
        """Add the edges of *block*; return its sources and sinks."""
        if isinstance(block, Step):
            graph.add_node(block.key)
            return [block.key], [block.key]
        ends = [wire(part) for part in block.parts]
        if isinstance(block, Parallel):
            return [s for e in ends for s in e[0]], [t for e in ends for t in e[1]]
        for (_, sinks), (sources, _) in itertools.pairwise(ends):
            graph.add_edges_from((t, s) for t in sinks for s in sources)
        return ends[0][0], ends[-1][1]

    wire(tree)
    return graph, tree


@pytest.mark.parametrize("seed", range(6))
def test_random_dags_decompose_correctly(seed):
    rng = random.Random(seed)
    for _ in range(50):
        size = rng.randint(1, 40)
        density = rng.choice([0.02, 0.08, 0.2, 0.5, 0.9])
        graph = random_dag(rng, size, density)
        block = decompose(graph)
        assert_correct(graph, block)
        assert_well_formed(block)


@pytest.mark.parametrize("seed", range(4))
def test_random_series_parallel_dags_decompose_exactly(seed):
    rng = random.Random(1000 + seed)
    for _ in range(50):
        graph, _tree = random_sp(rng, rng.randint(1, 40))
        block = decompose(graph)
        assert_correct(graph, block)
        assert_exact(graph, block)
        assert_well_formed(block)


@pytest.mark.parametrize("seed", range(3))
def test_random_subsets_ignore_edges_to_other_steps(seed):
    rng = random.Random(2000 + seed)
    for _ in range(40):
        graph = random_dag(rng, rng.randint(2, 30), rng.choice([0.1, 0.3, 0.6]))
        keys = [k for k in graph if rng.random() < 0.5]
        block = decompose(graph, keys)
        if not keys:
            assert block is None
            continue
        assert_correct(graph, block, keys)


def test_subset_of_a_rerun():
    graph = graph_of(SHAPES["diamond"])
    # c succeeded and stays: d does not wait for it again.
    assert block_to_data(decompose(graph, ["b", "d"])) == ["s", "b", "d"]
    assert block_to_data(decompose(graph, {"d", "c", "b"})) == [
        "s",
        ["p", "b", "c"],
        "d",
    ]
    n_shape = graph_of(SHAPES["n_shape"])
    assert block_to_data(decompose(n_shape, ["c", "d"])) == ["p", "c", "d"]
    assert block_to_data(decompose(n_shape, ["b", "d"])) == ["s", "b", "d"]
    nested = graph_of(SHAPES["nested"])
    assert block_to_data(decompose(nested, ["c", "e", "f", "y"])) == [
        "p",
        ["s", ["p", "c", "e"], "f"],
        "y",
    ]


# -- block data -----------------------------------------------------------------


def test_block_data_round_trip(any_shape):
    graph, block = any_shape
    data = block_to_data(block)
    assert block_from_data(data) == block
    assert block_from_data(json.loads(json.dumps(data))) == block
    assert step_count(block) == graph.number_of_nodes()


def test_block_from_data_by_hand():
    assert block_from_data("a") == Step("a")
    assert block_from_data(["s", "a", ["p", "b", "c"]]) == Series(
        (Step("a"), Parallel((Step("b"), Step("c"))))
    )


# -- segments -------------------------------------------------------------------


def segment_counts(segments) -> list[tuple[int, tuple[int, ...]]]:
    return [(step_count(s.block), s.after) for s in segments]


def test_plan_segments_cuts_a_chain():
    block = decompose(graph_of(chain_shape(100)))
    segments = plan_segments(block, 40)
    assert segment_counts(segments) == [(40, ()), (40, (0,)), (20, (1,))]
    assert [k for s in segments for k in keys_in(s.block)] == keys_in(block)
    assert all(isinstance(s.block, Series) for s in segments)


def test_plan_segments_cuts_a_wide_block_into_joined_pieces():
    block = decompose(graph_of(fan_shape(100)))
    segments = plan_segments(block, 40)
    assert block_to_data(segments[0].block) == "start"
    assert segment_counts(segments) == [
        (1, ()),
        (40, (0,)),
        (40, (0,)),
        (20, (0,)),
        (1, (1, 2, 3)),
    ]
    assert all(isinstance(s.block, Parallel) for s in segments[1:4])


def test_plan_segments_cuts_long_branches_of_a_parallel_block():
    shape = chain_shape(30) + " " + chain_shape(30).replace("s", "t")
    segments = plan_segments(decompose(graph_of(shape)), 20)
    assert segment_counts(segments) == [(20, ()), (10, (0,)), (20, ()), (10, (2,))]


def test_plan_segments_groups_small_parts():
    block = decompose(graph_of(SHAPES["two_diamonds"]))
    assert [block_to_data(s.block) for s in plan_segments(block, 40)] == [
        block_to_data(block)
    ]
    assert [(block_to_data(s.block), s.after) for s in plan_segments(block, 3)] == [
        (["s", "a", ["p", "b", "c"]], ()),
        (["s", "d", ["p", "e", "f"]], (0,)),
        ("g", (1,)),
    ]
    assert [step_count(s.block) for s in plan_segments(block, 1)] == [
        1,
        1,
        1,
        1,
        1,
        1,
        1,
    ]


def test_plan_segments_of_small_blocks_and_none():
    block = decompose(graph_of(SHAPES["nested"]))
    assert plan_segments(block, 40) == [Segment(block, ())]
    assert plan_segments(None, 40) == []
    assert plan_segments(Step("a"), 40) == [Segment(Step("a"), ())]


def assert_segments_correct(graph: nx.DiGraph, segments, max_steps: int) -> None:
    """Each key in one segment; an edge stays inside a segment in order, or goes
    from a segment to one that (transitively) waits for it."""
    where: dict[str, int] = {}
    for index, segment in enumerate(segments):
        assert all(a < index for a in segment.after)
        assert step_count(segment.block) <= max_steps or isinstance(segment.block, Step)
        for key in keys_in(segment.block):
            assert key not in where, f"{key} in two segments"
            where[key] = index
        assert_correct(graph, segment.block, keys_in(segment.block))
    assert set(where) == set(graph.nodes)
    before: list[set[int]] = []
    for segment in segments:
        reach = set(segment.after)
        for a in segment.after:
            reach |= before[a]
        before.append(reach)
    for u, v in graph.edges:
        if where[u] != where[v]:
            assert where[u] in before[where[v]], f"segment of {v} does not wait for {u}"


@pytest.mark.parametrize("max_steps", [1, 3, 7, 40])
def test_segments_keep_every_edge(any_shape, max_steps):
    graph, block = any_shape
    assert_segments_correct(graph, plan_segments(block, max_steps), max_steps)


# -- canvases -------------------------------------------------------------------


def make_step_for(graph: nx.DiGraph):
    return step_signature_factory(
        RUN_ID,
        GENERATION,
        {k: f"task-{k}" for k in graph},
        {k: ("slow" if k.endswith("b") else None) for k in graph},
    )


def node_name(sig) -> str:
    if isinstance(sig, _chord):
        return "chord"
    if isinstance(sig, _chain):
        return "chain"
    if isinstance(sig, group):
        return "group"
    return sig["task"]


def walk(sig, waited: frozenset, waits: dict, parent: str | None = None) -> frozenset:
    """Simulate the canvas: record what each step waits for; return what ended.

    Also asserts the structure: groups only as chord headers (never in a
    chain, never two in a row), immutable signatures everywhere.
    """
    name = node_name(sig)
    if name == "chain":
        items = sig.tasks
        assert len(items) >= 2
        for item in items:
            assert not isinstance(item, group), "a bare group in a chain"
        done = waited
        for item in items:
            done = walk(item, done, waits, "chain")
        return done
    if name == "chord":
        header = sig.tasks
        header = header.tasks if isinstance(header, group) else header
        assert len(header) >= 2
        ended = frozenset(waited)
        for member in header:
            assert not isinstance(member, group), "a group inside a chord header"
            ended |= walk(member, waited, waits, "chord")
        assert sig.body is not None, "a chord without body"
        return walk(sig.body, ended, waits, "body")
    assert name != "group", f"a bare group under {parent}"
    assert sig.immutable, f"mutable signature {sig!r}"
    assert sig.kwargs == {}
    if name == RUN_STEP:
        run_id, key, generation = sig.args
        assert (run_id, generation) == (RUN_ID, GENERATION)
        assert key not in waits, f"{key} twice in the canvas"
        waits[key] = waited
        assert sig.options["task_id"] == f"task-{key}"
        assert sig.options.get("queue") == ("slow" if key.endswith("b") else None)
        return waited | {key}
    if name == JOIN:
        assert parent == "body"
        assert sig.args == ()
        return waited
    assert name == ADVANCE_RUN
    waits.setdefault("<then>", waited)
    return waited


def canvas_waits(graph: nx.DiGraph, block, then=None) -> dict:
    canvas = to_canvas(block, make_step_for(graph), then)
    waits: dict = {}
    walk(canvas, frozenset(), waits)
    return waits


def test_chain_canvas_is_a_celery_chain():
    graph = graph_of(SHAPES["chain"])
    canvas = to_canvas(decompose(graph), make_step_for(graph))
    assert isinstance(canvas, _chain)
    assert [t.args for t in canvas.tasks] == [(RUN_ID, k, GENERATION) for k in "abcd"]
    then = advance_signature(RUN_ID, GENERATION, 1)
    canvas = to_canvas(decompose(graph), make_step_for(graph), then)
    assert [t["task"] for t in canvas.tasks] == [RUN_STEP] * 4 + [ADVANCE_RUN]
    assert canvas.tasks[-1].args == (RUN_ID, GENERATION, 1)


def test_diamond_canvas_is_an_explicit_chord():
    graph = graph_of(SHAPES["diamond"])
    then = advance_signature(RUN_ID, GENERATION, 1, queue="control")
    canvas = to_canvas(decompose(graph), make_step_for(graph), then)
    assert isinstance(canvas, _chain)
    first, fan = canvas.tasks
    assert first.args == (RUN_ID, "a", GENERATION)
    assert isinstance(fan, _chord)
    assert [m.args[1] for m in fan.tasks] == ["b", "c"]
    assert isinstance(fan.body, _chain)
    assert [t["task"] for t in fan.body.tasks] == [RUN_STEP, ADVANCE_RUN]
    assert fan.body.tasks[1].options == {"queue": "control"}


def test_fan_out_fan_in_canvas():
    graph = graph_of(SHAPES["fan_out_fan_in"])
    canvas = to_canvas(decompose(graph), make_step_for(graph))
    fan = canvas.tasks[1]
    assert isinstance(fan, _chord)
    assert [m.args[1] for m in fan.tasks] == ["b", "c", "d", "e"]
    assert fan.body.args == (RUN_ID, "f", GENERATION)


def test_nested_parallel_ends_get_the_join_body():
    graph = graph_of(SHAPES["nested"])
    canvas = to_canvas(decompose(graph), make_step_for(graph))
    assert isinstance(canvas, _chord)
    assert canvas.body["task"] == JOIN
    assert canvas.body.immutable
    # A parallel block at the end of a chord member: its own join.
    graph = graph_of("a>b a>c x")
    canvas = to_canvas(decompose(graph), make_step_for(graph))
    member = canvas.tasks[0]
    assert isinstance(member, _chain)
    assert isinstance(member.tasks[1], _chord)
    assert member.tasks[1].body["task"] == JOIN
    assert canvas.body["task"] == JOIN


def test_top_level_parallel_with_a_continuation():
    graph = graph_of("a b c")
    then = advance_signature(RUN_ID, GENERATION, 2)
    canvas = to_canvas(decompose(graph), make_step_for(graph), then)
    assert isinstance(canvas, _chord)
    assert canvas.body["task"] == ADVANCE_RUN


def test_single_step_canvas():
    graph = graph_of("a")
    canvas = to_canvas(decompose(graph), make_step_for(graph))
    assert isinstance(canvas, Signature)
    assert canvas["task"] == RUN_STEP
    then = advance_signature(RUN_ID, GENERATION, 1)
    assert isinstance(to_canvas(Step("a"), make_step_for(graph), then), _chain)


def test_canvases_of_named_shapes_wait_exactly_like_their_trees(any_shape):
    graph, block = any_shape
    then = advance_signature(RUN_ID, GENERATION, 1)
    waits = canvas_waits(graph, block, then)
    assert waits.pop("<then>") == frozenset(graph.nodes)
    assert set(waits) == set(graph.nodes)
    tree_pairs = waiting_pairs(block)
    canvas_pairs = {(u, v) for v, us in waits.items() for u in us}
    assert canvas_pairs == tree_pairs


@pytest.mark.parametrize("seed", range(3))
def test_canvases_of_random_dags_respect_every_edge(seed):
    rng = random.Random(3000 + seed)
    for _ in range(40):
        graph = random_dag(rng, rng.randint(1, 40), rng.choice([0.05, 0.2, 0.5]))
        block = decompose(graph)
        then = advance_signature(RUN_ID, GENERATION, 1) if rng.random() < 0.5 else None
        waits = canvas_waits(graph, block, then)
        if then is not None:
            assert waits.pop("<then>") == frozenset(graph.nodes)
        assert set(waits) == set(graph.nodes)
        for u, v in graph.edges:
            assert u in waits[v], f"{v} may start before {u}"
        assert {(u, v) for v, us in waits.items() for u in us} == waiting_pairs(block)


def test_unflattened_series_input_is_still_correct():
    block = Series((Step("a"), Series((Step("b"), Step("c"))), Step("d")))
    graph = graph_of("a>b>c>d")
    waits = canvas_waits(graph, block)
    assert waits["d"] == frozenset("abc")
    assert waits["c"] == frozenset("ab")


def test_messages_carry_no_params():
    steps = steps_for(SHAPES["diamond"], params={"secret": "do-not-ship"})
    graph = build_graph(steps)
    canvas = to_canvas(
        decompose(graph), make_step_for(graph), advance_signature(RUN_ID, 1, 1)
    )
    text = json.dumps(canvas)
    assert "do-not-ship" not in text
    assert "secret" not in text


def test_step_signature_factory_without_ids_or_queues():
    make = step_signature_factory(5, 2, {}, {})
    sig = make("k")
    assert sig["task"] == RUN_STEP
    assert sig.args == (5, "k", 2)
    assert sig.options == {}
    assert sig.immutable
    assert advance_signature(5, 2, 0).options == {}
    assert advance_signature(5, 2, 0).immutable


def test_the_compiler_stays_pure():
    source = Path(compiler.__file__).read_text()
    assert "django" not in source
    assert "apply_async" not in source
    assert "workflows.models" not in source
