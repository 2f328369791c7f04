"""Step types used by the tests; discovered like any project's steps module."""

import os
import time
from pathlib import Path

from workflows import step


@step(
    "add",
    label="Add",
    params_schema={
        "type": "object",
        "properties": {"value": {"type": "integer", "default": 1}},
    },
)
def add(params, inputs, context):
    """Return value plus the sum of the upstream results that are numbers."""
    return params["value"] + sum(v for v in inputs.values() if isinstance(v, int))


@step("unjsonable", label="Returns a set")
def unjsonable(params, inputs, context):
    return {1, 2}


@step(
    "count",
    label="Count executions",
    params_schema={
        "type": "object",
        "properties": {"dir": {"type": "string"}, "sleep": {"type": "number"}},
        "required": ["dir"],
    },
)
def count(params, inputs, context):
    """Append a line per execution to a file, so tests count executions."""
    time.sleep(params.get("sleep", 0))
    path = Path(params["dir"]) / f"{context.run_id}-{context.step_key}"
    with path.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    return context.step_key


@step(
    "suicide",
    label="Kill my worker process once",
    params_schema={
        "type": "object",
        "properties": {"marker": {"type": "string"}},
        "required": ["marker"],
    },
)
def suicide(params, inputs, context):
    """Kill the worker child on the first execution, like an OOM kill."""
    marker = Path(params["marker"])
    if not marker.exists():
        marker.write_text("killed")
        os.kill(os.getpid(), 9)
    return "survived"


@step(
    "configurable",
    label="Configurable",
    description=(
        "Return its params; its schema has an enum, a nested array, "
        "a boolean and a number."
    ),
    params_schema={
        "type": "object",
        "properties": {
            "mode": {"type": "string", "enum": ["fast", "safe", "thorough"]},
            "targets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "weight": {"type": "number", "minimum": 0},
                    },
                    "required": ["name"],
                },
            },
            "verbose": {"type": "boolean", "default": False},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["mode"],
        "additionalProperties": False,
    },
)
def configurable(params, inputs, context):
    """Return params and the keys of the upstream results (for editor tests)."""
    return {"params": params, "inputs": sorted(inputs)}


@step("exit", label="Call sys.exit()")
def exit_step(params, inputs, context):
    """Call sys.exit(3), as a careless script would: a failure, not a lost worker."""
    raise SystemExit(3)
