"""The JSON format: lossless round trip, atomic saves, refusals that save nothing."""

import copy

import pytest

from tests.factories import make_workflow
from workflows.exceptions import InvalidWorkflow, StaleWorkflow
from workflows.models import Step, Workflow
from workflows.spec import (
    export_workflow,
    import_workflow,
    save_steps,
    step_to_spec,
    validate_workflow_spec,
    workflow_steps,
)

pytestmark = pytest.mark.django_db

FULL = {
    "slug": "etl",
    "name": "ETL",
    "description": "Extract, transform, load.",
    "params_schema": {
        "type": "object",
        "properties": {"day": {"type": "string", "format": "date"}},
        "required": ["day"],
    },
    "layout": {"extract": {"x": 10, "y": 20}, "load": {"x": 300, "y": 20}},
    "steps": [
        {
            "key": "extract",
            "type": "echo",
            "params": {"source": "s3://bucket", "nested": {"a": [1, 2]}},
            "after": [],
            "label": "Extract rows",
        },
        {
            "key": "clean",
            "type": "fail",
            "params": {"message": "dirty", "times": 1},
            "after": ["extract"],
            "retries": 2,
            "retry_delay": 1.5,
            "timeout": 30.0,
        },
        {
            "key": "enrich",
            "type": "sleep",
            "params": {"seconds": 0},
            "after": ["extract"],
            "retries": 0,
            "retry_delay": 0.0,
        },
        {
            "key": "load",
            "type": "configurable",
            "params": {"mode": "safe", "targets": [{"name": "db", "weight": 1}]},
            "after": ["clean", "enrich"],
            "label": "Load",
        },
    ],
}


def snapshot_db() -> tuple:
    """Every row the format can touch, to prove a refusal saved nothing."""
    workflows = list(
        Workflow.objects.order_by("pk").values_list(
            "pk", "slug", "name", "description", "params_schema", "layout", "version"
        )
    )
    steps = list(
        Step.objects.order_by("pk").values_list(
            "pk",
            "workflow_id",
            "key",
            "label",
            "step_type",
            "params",
            "retries",
            "retry_delay",
            "timeout",
            "position",
        )
    )
    edges = sorted(Step.upstream.through.objects.values_list("from_step", "to_step"))
    return workflows, steps, edges


def test_round_trip_is_lossless():
    workflow = import_workflow(copy.deepcopy(FULL))
    exported = export_workflow(workflow)
    assert exported == FULL
    again = import_workflow(exported)
    assert again.pk == workflow.pk
    assert export_workflow(again) == FULL


def test_import_creates_rows():
    workflow = import_workflow(copy.deepcopy(FULL))
    assert workflow.version == 2  # created at 1, the step save bumps it
    assert workflow.params_schema == FULL["params_schema"]
    assert workflow.layout == FULL["layout"]
    steps = {s.key: s for s in workflow.steps.all()}
    assert [s.key for s in workflow.steps.all()] == [
        "extract",
        "clean",
        "enrich",
        "load",
    ]
    assert steps["clean"].retries == 2
    assert steps["clean"].timeout == 30.0
    assert steps["enrich"].retries == 0
    assert steps["extract"].label == "Extract rows"
    assert sorted(u.key for u in steps["load"].upstream.all()) == ["clean", "enrich"]
    assert sorted(d.key for d in steps["extract"].downstream.all()) == [
        "clean",
        "enrich",
    ]


def test_minimal_import_and_export_defaults():
    workflow = import_workflow(
        {"slug": "mini", "steps": [{"key": "a", "type": "noop"}]}
    )
    assert workflow.name == "mini"
    assert export_workflow(workflow) == {
        "slug": "mini",
        "name": "mini",
        "description": "",
        "steps": [{"key": "a", "type": "noop", "params": {}, "after": []}],
    }
    empty = import_workflow({"slug": "empty"})
    assert export_workflow(empty)["steps"] == []


def test_after_is_exported_in_a_stable_order():
    # Dependencies are a set; export lists them sorted, so a second round trip
    # gives back exactly the first one.
    data = {
        "slug": "order",
        "steps": [
            {"key": "z", "type": "noop"},
            {"key": "a", "type": "noop"},
            {"key": "m", "type": "noop", "after": ["z", "a"]},
        ],
    }
    first = export_workflow(import_workflow(data))
    assert [s["key"] for s in first["steps"]] == ["z", "a", "m"]
    assert first["steps"][2]["after"] == ["a", "z"]
    assert export_workflow(import_workflow(first)) == first


def test_update_keeps_rows_of_kept_keys_and_deletes_removed_ones():
    workflow = import_workflow(copy.deepcopy(FULL))
    ids = dict(workflow.steps.values_list("key", "pk"))
    data = copy.deepcopy(FULL)
    data["steps"] = [s for s in data["steps"] if s["key"] != "enrich"]
    data["steps"][2]["after"] = ["clean"]
    data["steps"].append({"key": "report", "type": "noop", "after": ["load"]})
    data["steps"][1]["params"] = {"message": "changed"}
    data["name"] = "ETL v2"
    del data["params_schema"]
    workflow = import_workflow(data)
    after = dict(workflow.steps.values_list("key", "pk"))
    assert set(after) == {"extract", "clean", "load", "report"}
    for key in ("extract", "clean", "load"):
        assert after[key] == ids[key]
    assert not Step.objects.filter(pk=ids["enrich"]).exists()
    assert workflow.name == "ETL v2"
    assert workflow.params_schema is None
    assert workflow.version == 3
    exported = export_workflow(workflow)
    assert exported["steps"][1]["params"] == {"message": "changed"}
    assert exported["steps"][2]["after"] == ["clean"]
    assert "params_schema" not in exported
    assert Workflow.objects.count() == 1


def test_layout_is_kept_when_the_import_has_none():
    workflow = import_workflow(copy.deepcopy(FULL))
    data = copy.deepcopy(FULL)
    del data["layout"]
    assert import_workflow(data).layout == FULL["layout"]
    data["layout"] = {}
    assert import_workflow(data).layout == {}
    assert workflow.pk == Workflow.objects.get().pk


BAD_IMPORTS = {
    "not an object": ["slug", "steps"],
    "no slug": {"name": "x", "steps": []},
    "bad slug": {"slug": "has space", "steps": []},
    "slug too long": {"slug": "s" * 101, "steps": []},
    "slug not text": {"slug": 5, "steps": []},
    "unknown top field": {"slug": "etl", "owner": "me", "steps": []},
    "name not text": {"slug": "etl", "name": ["x"], "steps": []},
    "name too long": {"slug": "etl", "name": "n" * 201, "steps": []},
    "description not text": {"slug": "etl", "description": 3, "steps": []},
    "params_schema not an object": {"slug": "etl", "params_schema": "object"},
    "bad params_schema": {"slug": "etl", "params_schema": {"type": "thing"}},
    "layout not an object": {"slug": "etl", "layout": [1, 2]},
    "steps not a list": {"slug": "etl", "steps": {"a": {"type": "noop"}}},
    "cycle": {
        "slug": "etl",
        "steps": [
            {"key": "a", "type": "noop", "after": ["b"]},
            {"key": "b", "type": "noop", "after": ["a"]},
        ],
    },
    "self loop": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "after": ["a"]}],
    },
    "missing dependency": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "after": ["ghost"]}],
    },
    "unknown type": {"slug": "etl", "steps": [{"key": "a", "type": "nope"}]},
    "duplicate keys": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop"}, {"key": "a", "type": "noop"}],
    },
    "bad key": {"slug": "etl", "steps": [{"key": "a b", "type": "noop"}]},
    "bad params": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "sleep", "params": {"seconds": "x"}}],
    },
    "bad retries": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "retries": -1}],
    },
    "retries out of the database's range": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "retries": 3_000_000_000}],
    },
    "bad timeout": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "timeout": 0}],
    },
    "unknown step field": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "when": "always"}],
    },
    "slug ending in a newline": {"slug": "etl\n", "steps": []},
    "key ending in a newline": {
        "slug": "etl",
        "steps": [{"key": "a\n", "type": "noop"}],
    },
    "NaN in a layout": {"slug": "etl", "layout": {"a": {"x": float("nan")}}},
    "bytes in params": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "echo", "params": {"b": b"x"}}],
    },
    "NUL in params": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "echo", "params": {"b": "x\x00"}}],
    },
    "self-referring params_schema": {"slug": "etl", "params_schema": {"$ref": "#"}},
    "retry delay over a week": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "retries": 1, "retry_delay": 1e300}],
    },
    "timeout over a week": {
        "slug": "etl",
        "steps": [{"key": "a", "type": "noop", "timeout": 700_000}],
    },
}


@pytest.mark.parametrize("data", BAD_IMPORTS.values(), ids=BAD_IMPORTS.keys())
def test_refused_import_of_a_new_workflow_saves_nothing(data):
    import_workflow({"slug": "other", "steps": [{"key": "x", "type": "noop"}]})
    before = snapshot_db()
    with pytest.raises(InvalidWorkflow) as excinfo:
        import_workflow(copy.deepcopy(data))
    assert excinfo.value.errors and all(excinfo.value.errors)
    assert snapshot_db() == before


@pytest.mark.parametrize("data", BAD_IMPORTS.values(), ids=BAD_IMPORTS.keys())
def test_refused_update_of_an_existing_workflow_saves_nothing(data):
    import_workflow(copy.deepcopy(FULL))
    before = snapshot_db()
    if isinstance(data, dict) and data.get("slug") == "etl":
        # The whole valid workflow, with the one bad part on top.
        data = {**copy.deepcopy(FULL), **copy.deepcopy(data)}
    with pytest.raises(InvalidWorkflow):
        import_workflow(data)
    assert snapshot_db() == before


def test_refusal_messages_name_the_problem():
    with pytest.raises(InvalidWorkflow, match="cycle: a -> b -> a"):
        import_workflow(BAD_IMPORTS["cycle"])
    with pytest.raises(InvalidWorkflow, match="params_schema is not a valid JSON"):
        import_workflow(BAD_IMPORTS["bad params_schema"])
    with pytest.raises(InvalidWorkflow, match="slug is required"):
        import_workflow(BAD_IMPORTS["bad slug"])
    with pytest.raises(InvalidWorkflow, match="unknown fields owner"):
        import_workflow(BAD_IMPORTS["unknown top field"])
    with pytest.raises(InvalidWorkflow, match="depends on missing step 'ghost'"):
        validate_workflow_spec(BAD_IMPORTS["missing dependency"])


def test_stale_expected_version_is_refused_and_saves_nothing():
    workflow = import_workflow(copy.deepcopy(FULL))
    assert workflow.version == 2
    before = snapshot_db()
    changed = copy.deepcopy(FULL)
    changed["name"] = "Someone else's"
    changed["steps"] = changed["steps"][:1]
    with pytest.raises(StaleWorkflow, match=r"'etl'.*version 1"):
        import_workflow(changed, expected_version=1)
    assert snapshot_db() == before
    with pytest.raises(StaleWorkflow):
        save_steps(workflow, changed["steps"], expected_version=3)
    assert snapshot_db() == before
    updated = import_workflow(changed, expected_version=2)
    assert updated.version == 3
    assert updated.name == "Someone else's"


def test_save_steps_bumps_the_version_and_keeps_rows():
    workflow = make_workflow("a>b>c")
    ids = dict(workflow.steps.values_list("key", "pk"))
    version = workflow.version
    specs = workflow_steps(workflow)
    specs[2]["after"] = ["a"]
    specs.insert(0, {"key": "z", "type": "noop"})
    save_steps(workflow, specs, expected_version=version, layout={"a": {"x": 1}})
    workflow.refresh_from_db()
    assert workflow.version == version + 1
    assert workflow.layout == {"a": {"x": 1}}
    rows = dict(workflow.steps.values_list("key", "pk"))
    assert {k: rows[k] for k in ids} == ids
    assert [s.key for s in workflow.steps.all()] == ["z", "a", "b", "c"]
    assert [u.key for u in workflow.steps.get(key="c").upstream.all()] == ["a"]
    save_steps(workflow, specs)
    workflow.refresh_from_db()
    assert workflow.version == version + 2


def test_save_steps_refusal_saves_nothing():
    workflow = make_workflow("a>b")
    before = snapshot_db()
    with pytest.raises(InvalidWorkflow):
        save_steps(workflow, [{"key": "a", "type": "noop", "after": ["a"]}])
    assert snapshot_db() == before


def test_step_to_spec_drops_empty_options_only():
    workflow = import_workflow(copy.deepcopy(FULL))
    step = workflow.steps.get(key="enrich")
    assert step_to_spec(step) == {
        "key": "enrich",
        "type": "sleep",
        "params": {"seconds": 0},
        "after": ["extract"],
        "retries": 0,
        "retry_delay": 0.0,
    }


def test_validate_workflow_spec_accepts_the_full_example():
    assert validate_workflow_spec(copy.deepcopy(FULL)) is None


def test_params_too_deep_to_store_are_refused_and_save_nothing():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    before = snapshot_db()
    data = {
        "slug": "etl",
        "steps": [{"key": "a", "type": "echo", "params": {"b": deep}}],
    }
    with pytest.raises(InvalidWorkflow) as excinfo:
        import_workflow(data)
    assert "nests deeper than 200 levels" in excinfo.value.errors[0]
    assert snapshot_db() == before
