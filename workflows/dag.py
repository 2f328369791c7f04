"""Pure DAG logic: step specs to a networkx graph, validation, frozen snapshots.

A *step spec* is the dict the JSON format uses:
``{"key", "type", "params", "after", "retries", "retry_delay", "timeout", "label"}``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable

import networkx as nx
from jsonschema import Draft202012Validator

from workflows.conf import app_settings
from workflows.exceptions import CycleError, InvalidParams, InvalidWorkflow
from workflows.registry import NotRegistered, StepRegistry, registry

KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Step.retries is a PositiveIntegerField: 32 bits on PostgreSQL, so a larger
# value must be refused here rather than crash the save with a DataError.
MAX_RETRIES = 2_147_483_647
# Longer waits belong to a scheduler, not to a step holding a worker.
MAX_SECONDS = 7 * 24 * 3600
# SQLite refuses JSON nested deeper than 1,000 levels; real params stay far below.
MAX_JSON_DEPTH = 200
STEP_FIELDS = {
    "key",
    "type",
    "params",
    "after",
    "retries",
    "retry_delay",
    "timeout",
    "label",
}


def build_graph(steps: Iterable[dict]) -> nx.DiGraph:
    """Return the graph of *steps*: an edge ``u -> v`` when v runs after u."""
    graph = nx.DiGraph()
    for spec in steps:
        graph.add_node(spec["key"])
    for spec in steps:
        for upstream in spec.get("after") or ():
            graph.add_edge(upstream, spec["key"])
    return graph


def find_cycle(graph: nx.DiGraph) -> list[str] | None:
    """Return the keys on one cycle of *graph*, in order, or None."""
    try:
        edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _v in edges]


def json_errors(value: object, what: str) -> list[str]:
    """Return why *value* cannot be stored as JSON in any database we support.

    NaN and infinities are not JSON, sets and bytes are not JSON types, and
    PostgreSQL refuses the NUL character in JSON text.
    """
    if _depth(value) > MAX_JSON_DEPTH:  # before json.dumps, which may recurse
        return [f"{what} nests deeper than {MAX_JSON_DEPTH} levels"]
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return [
            f"{what} must be plain JSON (objects, arrays, strings, finite numbers, "
            f"true, false, null): {exc}"
        ]
    if "\\u0000" in text:
        return [f"{what} must not contain the NUL character (\\u0000)"]
    return []


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:  # also ends on a list that holds itself
                return depth
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def validate_params(params: object, schema: dict | None, what: str = "params") -> None:
    """Raise InvalidParams naming every place where *params* fails *schema*."""
    if not schema:
        return
    problem = json_errors(params, what)
    if problem:
        raise InvalidParams(problem[0])
    validator = Draft202012Validator(schema)
    problems = []
    try:
        errors = sorted(validator.iter_errors(params), key=lambda e: list(e.path))
    except RecursionError:
        raise InvalidParams(
            f"{what} cannot be checked: the schema refers to itself without end"
        ) from None
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{where}: {error.message}")
    if problems:
        raise InvalidParams(f"{what} invalid: " + "; ".join(problems))


def validate_steps(steps: list[dict], step_registry: StepRegistry = registry) -> None:
    """Raise InvalidWorkflow listing every problem of *steps*, or return None.

    Checks, in order: shape of each spec, keys (present, well-formed, unique),
    step types (registered), params (against the type's schema), numeric
    options, dependencies (existing, not on itself) and finally cycles, whose
    error names the steps on the cycle.
    """
    errors: list[str] = []
    if not isinstance(steps, list):
        raise InvalidWorkflow("steps must be a list")
    keys: list[str] = []
    for index, spec in enumerate(steps):
        where = f"step #{index + 1}"
        if not isinstance(spec, dict):
            errors.append(f"{where}: must be an object")
            continue
        unknown = set(spec) - STEP_FIELDS
        if unknown:
            errors.append(f"{where}: unknown fields {', '.join(sorted(unknown))}")
        key = spec.get("key")
        if not isinstance(key, str) or not key:
            errors.append(f"{where}: 'key' is required")
            continue
        where = f"step {key!r}"
        if len(key) > 100 or not KEY_RE.fullmatch(key):
            errors.append(
                f"{where}: key must be at most 100 letters, digits, '_', '-' or '.'"
            )
        if key in keys:
            errors.append(f"{where}: duplicate key")
        keys.append(key)
        errors.extend(_spec_errors(spec, where, step_registry))
    known = set(keys)
    self_loops: list[str] = []
    for spec in steps:
        if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
            continue
        after = spec.get("after") or []
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            errors.append(f"step {spec['key']!r}: 'after' must be a list of keys")
            continue
        for upstream in after:
            if upstream == spec["key"]:
                self_loops.append(upstream)
            elif upstream not in known:
                errors.append(
                    f"step {spec['key']!r}: depends on missing step {upstream!r}"
                )
    if errors:
        raise InvalidWorkflow(errors + [f"cycle: {k} -> {k}" for k in self_loops])
    errors = json_errors(steps, "steps")  # what the checks above do not look at
    if errors:
        raise InvalidWorkflow(errors)
    if self_loops:
        raise CycleError([self_loops[0]])
    cycle = find_cycle(build_graph(steps))
    if cycle:
        raise CycleError(cycle)


def _spec_errors(spec: dict, where: str, step_registry: StepRegistry) -> list[str]:
    errors = []
    type_name = spec.get("type")
    if not isinstance(type_name, str) or not type_name:
        errors.append(f"{where}: 'type' is required")
    else:
        try:
            step_type = step_registry.get(type_name)
        except NotRegistered as exc:
            errors.append(f"{where}: {exc}")
        else:
            params = spec.get("params")
            params = {} if params is None else params
            merged = (
                {**step_type.default_params(), **params}
                if isinstance(params, dict)
                else params
            )
            try:
                validate_params(merged, step_type.params_schema)
            except InvalidParams as exc:
                errors.append(f"{where}: {exc}")
    for name, minimum, integer in (
        ("retries", 0, True),
        ("retry_delay", 0, False),
        ("timeout", 0, False),
    ):
        value = spec.get(name)
        if value is None:
            continue
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if (
            isinstance(value, bool)
            or not ok_type
            or not math.isfinite(value)
            or value < minimum
            or (name == "timeout" and value == 0)
        ):
            kind = "a whole number" if integer else "a number"
            bound = "above 0" if name == "timeout" else f">= {minimum}"
            errors.append(f"{where}: {name} must be {kind} {bound}")
        elif integer and value > MAX_RETRIES:
            errors.append(f"{where}: {name} must be at most {MAX_RETRIES}")
        elif not integer and value > MAX_SECONDS:
            errors.append(
                f"{where}: {name} must be at most {MAX_SECONDS} seconds (a week)"
            )
    label = spec.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > 200):
        errors.append(f"{where}: label must be text of at most 200 characters")
    return errors


def resolve_step(spec: dict, step_registry: StepRegistry = registry) -> dict:
    """Return *spec* with every option made explicit: type defaults, then settings."""
    step_type = step_registry.get(spec["type"])

    def pick(name: str, setting: str):
        for value in (spec.get(name), getattr(step_type, name)):
            if value is not None:
                return value
        return getattr(app_settings, setting)

    return {
        "key": spec["key"],
        "type": spec["type"],
        # Unlabelled steps are shown by key: two of one type stay apart.
        "label": spec.get("label") or spec["key"],
        "params": {**step_type.default_params(), **(spec.get("params") or {})},
        "after": list(spec.get("after") or []),
        "retries": pick("retries", "DEFAULT_RETRIES"),
        "retry_delay": pick("retry_delay", "DEFAULT_RETRY_DELAY"),
        "timeout": pick("timeout", "DEFAULT_TIMEOUT"),
        "queue": step_type.queue or app_settings.DEFAULT_QUEUE,
    }


def make_snapshot(workflow_spec: dict, step_registry: StepRegistry = registry) -> dict:
    """Return the frozen form of a workflow spec that a run stores and follows.

    Validates first, so a run never starts from a definition the engine refuses.
    """
    steps = workflow_spec.get("steps") or []
    validate_steps(steps, step_registry)
    return {
        "slug": workflow_spec.get("slug", ""),
        "name": workflow_spec.get("name", ""),
        "steps": {s["key"]: resolve_step(s, step_registry) for s in steps},
    }


def snapshot_graph(snapshot: dict) -> nx.DiGraph:
    """Return the graph of a stored snapshot."""
    return build_graph(snapshot["steps"].values())


def downstream_of(graph: nx.DiGraph, keys: Iterable[str]) -> set[str]:
    """Return *keys* and every step that depends on one of them, directly or not."""
    found: set[str] = set()
    for key in keys:
        found.add(key)
        found |= nx.descendants(graph, key)
    return found
