"""The step registry: registration, look-ups, the decorator and autodiscovery."""

import pytest

from workflows.registry import (
    AlreadyRegistered,
    NotRegistered,
    StepContext,
    StepRegistry,
    StepType,
    registry,
    step,
)

BUILT_INS = {"noop", "sleep", "echo", "fail", "management_command"}
TEST_TYPES = {"add", "unjsonable", "count", "suicide", "configurable"}


@pytest.fixture
def fresh() -> StepRegistry:
    """A registry of its own, so the global one is never polluted."""
    return StepRegistry()


def plain(params, inputs, context):
    """Return the params."""
    return params


def test_step_returns_the_function_unchanged(fresh):
    decorated = step("plain", registry=fresh)(plain)
    assert decorated is plain
    assert decorated({"x": 1}, {}, None) == {"x": 1}
    registered = fresh.get("plain")
    assert registered.function is plain
    assert registered.module == __name__
    assert "plain" not in registry


def test_step_fills_label_description_and_options(fresh):
    step(
        "resize_images",
        params_schema={"type": "object"},
        retries=2,
        retry_delay=1.5,
        timeout=30,
        queue="images",
        registry=fresh,
    )(plain)
    step_type = fresh.get("resize_images")
    assert step_type.label == "Resize images"
    assert step_type.description == "Return the params."
    assert (step_type.retries, step_type.retry_delay, step_type.timeout) == (2, 1.5, 30)
    assert step_type.queue == "images"
    step("explicit", label="Mine", description="", registry=fresh)(plain)
    assert fresh.get("explicit").label == "Mine"
    assert fresh.get("explicit").description == ""
    assert fresh.get("explicit").params_schema == {"type": "object"}


def test_already_registered_names_the_first_module(fresh):
    step("dup", registry=fresh)(plain)

    def other(params, inputs, context):
        return None

    other.__module__ = "someapp.steps"
    with pytest.raises(AlreadyRegistered) as excinfo:
        step("dup", registry=fresh)(other)
    assert "'dup'" in str(excinfo.value)
    assert __name__ in str(excinfo.value)
    assert fresh.get("dup").function is plain


def test_not_registered_lists_known_names(fresh):
    step("beta", registry=fresh)(plain)
    step("alpha", registry=fresh)(plain)
    with pytest.raises(NotRegistered) as excinfo:
        fresh.get("gamma")
    message = str(excinfo.value)
    assert "'gamma'" in message
    assert "alpha, beta" in message
    assert isinstance(excinfo.value, KeyError)


def test_not_registered_on_an_empty_registry_says_none(fresh):
    with pytest.raises(NotRegistered, match="Registered types: none"):
        fresh.get("anything")


def test_unregister(fresh):
    step("gone", registry=fresh)(plain)
    fresh.unregister("gone")
    assert "gone" not in fresh
    with pytest.raises(NotRegistered):
        fresh.unregister("gone")


@pytest.mark.parametrize(
    "name",
    ["", "Upper", "1starts_with_digit", "_under", "has space", "a" * 101, "é", "a/b"],
)
def test_invalid_names_are_refused(fresh, name):
    with pytest.raises(ValueError, match="Invalid step type name"):
        step(name, registry=fresh)(plain)
    assert len(fresh) == 0


@pytest.mark.parametrize("name", ["a", "a1", "etl.load", "my-step", "x_y", "a" * 100])
def test_valid_names_are_accepted(fresh, name):
    step(name, registry=fresh)(plain)
    assert name in fresh


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nonsense"},
        {"type": 5},
        {"properties": {"a": {"minimum": "zero"}}},
        {"required": "a"},
        ["type", "object"],
        True,
    ],
)
def test_invalid_params_schema_is_refused(fresh, schema):
    with pytest.raises(ValueError, match="invalid params_schema"):
        step("bad", params_schema=schema, registry=fresh)(plain)
    assert "bad" not in fresh


def test_default_params():
    step_type = StepType(
        name="t",
        function=plain,
        label="T",
        params_schema={
            "type": "object",
            "properties": {
                "a": {"type": "integer", "default": 3},
                "b": {"type": "string"},
                "c": {"type": "array", "default": []},
                "d": True,
            },
        },
    )
    assert step_type.default_params() == {"a": 3, "c": []}
    bare = StepType(name="u", function=plain, label="U")
    assert bare.default_params() == {}


def test_iteration_names_and_choices_are_sorted(fresh):
    step("zeta", label="Z", registry=fresh)(plain)
    step("alpha", label="A", registry=fresh)(plain)
    assert [t.name for t in fresh] == ["alpha", "zeta"]
    assert fresh.names() == ["alpha", "zeta"]
    assert fresh.choices() == [("alpha", "A (alpha)"), ("zeta", "Z (zeta)")]
    assert len(fresh) == 2


def test_context_log_keeps_lines_as_text():
    context = StepContext(run_id=1, step_key="a", attempt=1, run_params={})
    context.log("one")
    context.log(2)
    assert context.lines == ["one", "2"]


def test_autodiscovery_found_built_ins_and_test_steps():
    names = set(registry.names())
    assert names >= BUILT_INS
    assert names >= TEST_TYPES
    for name in BUILT_INS:
        assert registry.get(name).module == "workflows.steps"
    for name in TEST_TYPES:
        assert registry.get(name).module == "tests.testapp.steps"


def test_built_in_schemas():
    assert registry.get("sleep").default_params() == {"seconds": 1}
    assert registry.get("fail").default_params() == {"message": "Failed on purpose."}
    assert registry.get("management_command").params_schema["required"] == ["command"]
    assert registry.get("noop").function({}, {}, None) is None
    echo = registry.get("echo").function({"p": 1}, {"up": 2}, None)
    assert echo == {"params": {"p": 1}, "inputs": {"up": 2}}


def test_autodiscover_is_idempotent_for_imported_modules():
    before = registry.names()
    registry.autodiscover()  # modules are already imported: nothing registers twice
    assert registry.names() == before
