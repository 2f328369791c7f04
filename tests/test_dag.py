"""Pure DAG logic: validation messages, resolved snapshots, downstream sets."""

import math

import pytest

from tests.factories import SHAPES, steps_for
from workflows.dag import (
    build_graph,
    downstream_of,
    find_cycle,
    make_snapshot,
    resolve_step,
    snapshot_graph,
    validate_params,
    validate_steps,
)
from workflows.exceptions import CycleError, InvalidParams, InvalidWorkflow
from workflows.registry import StepRegistry, step


def spec(key, after=(), type="noop", **fields):
    return {"key": key, "type": type, "after": list(after), **fields}


def refused(steps, **kwargs) -> InvalidWorkflow:
    with pytest.raises(InvalidWorkflow) as excinfo:
        validate_steps(steps, **kwargs)
    return excinfo.value


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_named_shapes_are_valid(shape):
    assert validate_steps(steps_for(shape)) is None


def test_empty_and_minimal_workflows_are_valid():
    validate_steps([])
    validate_steps([{"key": "a", "type": "noop"}])
    validate_steps([spec("a"), spec("b", ["a"], params=None, label=None)])


def test_self_loop_is_refused_naming_the_step():
    error = refused([spec("a"), spec("b", ["b"])])
    assert error.errors == ["cycle: b -> b"]
    assert isinstance(error, CycleError)
    assert error.code == "cycle" and error.cycle == ["b"]


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": ["b"], "b": ["a"]}, ["a", "b"]),
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "b", "c"]),
        ({f"k{i}": [f"k{(i - 1) % 8}"] for i in range(8)}, [f"k{i}" for i in range(8)]),
    ],
    ids=["two", "three", "eight"],
)
def test_cycle_is_refused_naming_its_steps_in_order(edges, cycle):
    steps = [spec("start")] + [spec(k, after) for k, after in edges.items()]
    steps.append(spec("end", ["start"]))
    error = refused(steps)
    assert isinstance(error, CycleError)
    assert error.code == "cycle"
    # The same cycle whichever step it starts from, in the order of its edges.
    found = error.cycle
    assert sorted(found) == sorted(cycle)
    start = found.index(cycle[0])
    assert found[start:] + found[:start] == cycle
    path = " -> ".join([*found, found[0]])
    assert str(error) == f"cycle: {path}"
    assert error.errors == [f"cycle: {path}"]


def test_cycle_message_of_a_known_rotation():
    error = refused([spec("a", ["c"]), spec("b", ["a"]), spec("c", ["b"])])
    assert str(error) == "cycle: a -> b -> c -> a"


def test_cycle_in_a_larger_graph_names_only_the_cycle():
    steps = steps_for("x>a>b>c>d>y")
    steps[1]["after"].append("c")  # a after c: a -> b -> c -> a
    error = refused(steps)
    assert set(error.cycle) == {"a", "b", "c"}


def test_missing_dependency_is_refused():
    error = refused([spec("a"), spec("b", ["a", "ghost"])])
    assert error.errors == ["step 'b': depends on missing step 'ghost'"]


def test_unknown_type_is_refused_listing_known_types():
    error = refused([spec("a", type="nope")])
    assert "step 'a': Unknown step type 'nope'" in str(error)
    assert "noop" in str(error)


def test_duplicate_keys_are_refused():
    error = refused([spec("a"), spec("b"), spec("a")])
    assert error.errors == ["step 'a': duplicate key"]


@pytest.mark.parametrize(
    "key", ["", None, 5, "has space", "-dash-first", ".dot", "a/b", "é", "k" * 101]
)
def test_bad_keys_are_refused(key):
    error = refused([{"key": key, "type": "noop"}])
    assert len(error.errors) == 1
    assert "key" in error.errors[0]


@pytest.mark.parametrize("key", ["a", "A1", "_x", "1", "etl.load-2", "k" * 100])
def test_good_keys_are_accepted(key):
    validate_steps([spec(key)])


@pytest.mark.parametrize(
    ("type", "params", "fragment"),
    [
        ("configurable", {"mode": "slow"}, "mode: 'slow' is not one of"),
        ("configurable", {}, "'mode' is a required property"),
        ("configurable", {"mode": "fast", "verbose": "yes"}, "verbose: 'yes' is not"),
        ("configurable", {"mode": "fast", "ratio": 2}, "ratio: 2 is greater than"),
        ("configurable", {"mode": "fast", "extra": 1}, "Additional properties"),
        (
            "configurable",
            {"mode": "fast", "targets": [{"weight": 1}]},
            "targets/0: 'name' is a required property",
        ),
        ("sleep", {"seconds": "ten"}, "seconds: 'ten' is not of type 'number'"),
        ("sleep", {"seconds": -1}, "seconds: -1 is less than the minimum"),
        ("fail", {"message": "x", "times": 1.5}, "times: 1.5 is not of type 'integer'"),
        ("add", {"value": "1"}, "value: '1' is not of type 'integer'"),
        ("noop", [], "(root): [] is not of type 'object'"),
        ("management_command", {"command": ""}, "command: '' should be non-empty"),
    ],
)
def test_params_failing_the_schema_are_refused(type, params, fragment):
    error = refused([spec("s", type=type, params=params)])
    assert error.errors[0].startswith("step 's': params invalid: ")
    assert fragment in error.errors[0]


def test_params_defaults_count_for_required_properties():
    # fail requires "message", which has a default.
    validate_steps([spec("s", type="fail")])
    validate_steps([spec("s", type="sleep", params={})])


@pytest.mark.parametrize("name", ["retries", "retry_delay", "timeout"])
@pytest.mark.parametrize("value", [-1, True, False, math.nan, math.inf, "3", [1], {}])
def test_bad_numeric_options_are_refused(name, value):
    error = refused([spec("s", **{name: value})])
    assert len(error.errors) == 1
    assert error.errors[0].startswith(f"step 's': {name} must be")


def test_retries_must_be_whole_and_timeout_above_zero():
    assert refused([spec("s", retries=1.5)]).errors == [
        "step 's': retries must be a whole number >= 0"
    ]
    assert refused([spec("s", timeout=0)]).errors == [
        "step 's': timeout must be a number above 0"
    ]
    assert refused([spec("s", retries=2**31)]).errors == [
        "step 's': retries must be at most 2147483647"
    ]
    validate_steps([spec("s", retries=2**31 - 1)])
    validate_steps([spec("s", retries=0, retry_delay=0, timeout=0.01)])
    validate_steps([spec("s", retries=5, retry_delay=2.5, timeout=3)])


@pytest.mark.parametrize("label", [5, ["x"], "l" * 201])
def test_bad_labels_are_refused(label):
    assert "label must be text" in str(refused([spec("s", label=label)]))


def test_unknown_fields_are_refused():
    error = refused([spec("s", depends_on=["x"], colour="red")])
    assert error.errors == ["step #1: unknown fields colour, depends_on"]


@pytest.mark.parametrize("steps", [None, {"a": {}}, "a>b", 3])
def test_non_list_input_is_refused(steps):
    assert refused(steps).errors == ["steps must be a list"]


@pytest.mark.parametrize("item", ["a", None, ["a"]])
def test_non_object_step_is_refused(item):
    assert refused([spec("ok"), item]).errors == ["step #2: must be an object"]


@pytest.mark.parametrize("after", ["a", [1], {"a": 1}])
def test_after_must_be_a_list_of_keys(after):
    error = refused([spec("a"), {"key": "b", "type": "noop", "after": after}])
    assert error.errors == ["step 'b': 'after' must be a list of keys"]


def test_missing_type_is_refused():
    assert refused([{"key": "a"}]).errors == ["step 'a': 'type' is required"]


def test_every_problem_is_listed_at_once():
    error = refused(
        [
            spec("a", type="nope"),
            spec("b", ["zz"], retries=-1),
            spec("b"),
        ]
    )
    assert len(error.errors) == 4
    assert error.code == "invalid"


def test_validation_uses_the_given_registry():
    local = StepRegistry()
    step("only_here", registry=local)(lambda p, i, c: None)
    validate_steps([spec("a", type="only_here")], step_registry=local)
    assert "Registered types: only_here" in str(
        refused([spec("a", type="noop")], step_registry=local)
    )


def test_validate_params():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    validate_params({"n": 1}, schema)
    validate_params({"anything": 1}, None)
    validate_params({"anything": 1}, {})
    with pytest.raises(InvalidParams, match=r"^run params invalid: n: 'x' is not of"):
        validate_params({"n": "x"}, schema, what="run params")


@pytest.fixture
def local_registry():
    local = StepRegistry()
    step(
        "typed",
        label="Typed",
        retries=3,
        retry_delay=None,
        timeout=None,
        queue="typed-q",
        params_schema={
            "type": "object",
            "properties": {"a": {"default": 1}, "b": {"default": 2}},
        },
        registry=local,
    )(lambda p, i, c: None)
    step("bare", registry=local)(lambda p, i, c: None)
    return local


def test_resolve_step_uses_the_step_then_the_type_then_settings(
    local_registry, settings
):
    settings.DAGFLOW = {
        "DEFAULT_RETRIES": 9,
        "DEFAULT_RETRY_DELAY": 4.0,
        "DEFAULT_TIMEOUT": 60,
        "DEFAULT_QUEUE": "default-q",
    }
    resolved = resolve_step(
        {"key": "k", "type": "typed", "params": {"b": 20}}, local_registry
    )
    assert resolved == {
        "key": "k",
        "type": "typed",
        "label": "k",
        "params": {"a": 1, "b": 20},
        "after": [],
        "retries": 3,
        "retry_delay": 4.0,
        "timeout": 60,
        "queue": "typed-q",
    }
    explicit = resolve_step(
        {
            "key": "k",
            "type": "typed",
            "label": "Mine",
            "after": ["x"],
            "retries": 0,
            "retry_delay": 0,
            "timeout": 1.5,
        },
        local_registry,
    )
    assert explicit["retries"] == 0  # zero is a value, not "unset"
    assert explicit["retry_delay"] == 0
    assert explicit["timeout"] == 1.5
    assert explicit["label"] == "Mine"
    assert explicit["after"] == ["x"]
    bare = resolve_step({"key": "k", "type": "bare"}, local_registry)
    assert (bare["retries"], bare["timeout"], bare["queue"]) == (9, 60, "default-q")
    assert bare["params"] == {}


def test_resolve_step_reads_settings_at_call_time(local_registry, settings):
    before = resolve_step({"key": "k", "type": "bare"}, local_registry)
    assert before["retry_delay"] == 0.2  # tests/settings.py
    assert before["queue"] is None
    settings.DAGFLOW = {"DEFAULT_RETRY_DELAY": 30}
    assert (
        resolve_step({"key": "k", "type": "bare"}, local_registry)["retry_delay"] == 30
    )


def test_make_snapshot_validates_and_resolves(local_registry):
    snapshot = make_snapshot(
        {
            "slug": "s",
            "name": "S",
            "steps": [
                {"key": "a", "type": "typed"},
                {"key": "b", "type": "bare", "after": ["a"]},
            ],
        },
        local_registry,
    )
    assert snapshot["slug"] == "s" and snapshot["name"] == "S"
    assert list(snapshot["steps"]) == ["a", "b"]
    assert snapshot["steps"]["a"]["params"] == {"a": 1, "b": 2}
    assert snapshot["steps"]["b"]["after"] == ["a"]
    assert list(snapshot_graph(snapshot).edges) == [("a", "b")]
    with pytest.raises(CycleError):
        make_snapshot(
            {"steps": [spec("a", ["b"], "bare"), spec("b", ["a"], "bare")]},
            local_registry,
        )


def test_build_graph_and_find_cycle():
    graph = build_graph(steps_for(SHAPES["diamond"]))
    assert sorted(graph.edges) == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert find_cycle(graph) is None
    graph.add_edge("d", "a")
    assert sorted(find_cycle(graph)) in (["a", "b", "d"], ["a", "c", "d"])


def test_downstream_of():
    graph = build_graph(steps_for(SHAPES["nested"]))
    assert downstream_of(graph, ["b"]) == {"b", "c", "f", "g"}
    assert downstream_of(graph, ["a"]) == {"a", "b", "c", "d", "e", "f", "g"}
    assert downstream_of(graph, ["c", "y"]) == {"c", "f", "g", "y"}
    assert downstream_of(graph, ["g"]) == {"g"}
    assert downstream_of(graph, []) == set()
