"""The built-in step types every installation has."""

from __future__ import annotations

import io
import time

from django.core.management import call_command

from workflows.conf import app_settings
from workflows.registry import StepContext, step


@step("noop", label="No-op", description="Do nothing and return null.")
def noop(params: dict, inputs: dict, context: StepContext) -> None:
    return None


@step(
    "sleep",
    label="Sleep",
    description="Wait the given number of seconds, then return null.",
    params_schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "default": 1}},
        "required": ["seconds"],
        "additionalProperties": False,
    },
)
def sleep(params: dict, inputs: dict, context: StepContext) -> None:
    time.sleep(params["seconds"])


@step(
    "echo",
    label="Echo",
    description="Return its params and the results of its upstream steps.",
)
def echo(params: dict, inputs: dict, context: StepContext) -> dict:
    return {"params": params, "inputs": inputs}


@step(
    "fail",
    label="Fail",
    description=(
        "Raise an error with the given message on the first `times` attempts "
        "(every attempt when `times` is empty). For drills, alerts and tests."
    ),
    params_schema={
        "type": "object",
        "properties": {
            "message": {"type": "string", "default": "Failed on purpose."},
            "times": {"type": "integer", "minimum": 0},
        },
        "required": ["message"],
        "additionalProperties": False,
    },
)
def fail(params: dict, inputs: dict, context: StepContext) -> None:
    times = params.get("times")
    if times is None or context.attempt <= times:
        raise RuntimeError(params["message"])
    context.log(f"attempt {context.attempt} > times={times}: succeeding")


@step(
    "management_command",
    label="Management command",
    description=(
        "Run a management command of this project that the developers allowed "
        "(DAGFLOW['ALLOWED_COMMANDS']); its output is the step's log."
    ),
    params_schema={
        "type": "object",
        "properties": {
            "command": {"type": "string", "minLength": 1},
            "args": {"type": "array", "items": {"type": "string"}, "default": []},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
)
def management_command(params: dict, inputs: dict, context: StepContext) -> dict:
    allowed = app_settings.ALLOWED_COMMANDS
    if params["command"] not in allowed:
        raise PermissionError(
            f"Command {params['command']!r} is not allowed: add it to "
            f"DAGFLOW['ALLOWED_COMMANDS'] (now: {', '.join(allowed) or 'empty'})."
        )
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(params["command"], *params.get("args", []), stdout=out, stderr=err)
    finally:
        context.log(out.getvalue() + err.getvalue())
    return {"command": params["command"], "args": params.get("args", [])}
