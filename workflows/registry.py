"""Step types: the registry, the ``@step`` decorator, what a step function receives."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import autodiscover_modules

StepFunction = Callable[[dict, dict, "StepContext"], Any]

NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,99}")


class AlreadyRegistered(Exception):
    """Raised when a step type name is registered twice."""


class NotRegistered(KeyError):
    """Raised when a step type name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class StepType:
    """A registered kind of step: what staff pick in the admin, what a worker runs."""

    name: str
    function: StepFunction = field(repr=False)
    label: str
    description: str = ""
    params_schema: dict = field(default_factory=lambda: {"type": "object"})
    retries: int | None = None
    retry_delay: float | None = None
    timeout: float | None = None
    queue: str | None = None
    module: str = ""

    def default_params(self) -> dict:
        """Return the ``default`` of each top-level property of the params schema."""
        props = self.params_schema.get("properties") or {}
        return {
            k: v["default"]
            for k, v in props.items()
            if isinstance(v, dict) and "default" in v
        }


@dataclass
class StepContext:
    """What a step knows about where it runs, besides its params and inputs.

    ``log()`` appends to the step's captured log, which the admin and
    ``workflow_status`` show.
    """

    run_id: int
    step_key: str
    attempt: int
    run_params: dict
    lines: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        """Append *message* to this attempt's log."""
        self.lines.append(str(message))


class StepRegistry:
    """The map of step type names to :class:`StepType`; nothing else can run."""

    def __init__(self) -> None:
        # The name ``_registry`` lets autodiscover_modules() roll back a failed import.
        self._registry: dict[str, StepType] = {}

    def register(self, step_type: StepType) -> StepType:
        """Add *step_type*; raise AlreadyRegistered if its name is taken."""
        if not NAME_RE.fullmatch(step_type.name):
            raise ValueError(
                f"Invalid step type name {step_type.name!r}: use lowercase letters, "
                "digits, '_', '-' or '.', starting with a letter."
            )
        existing = self._registry.get(step_type.name)
        if existing is not None:
            raise AlreadyRegistered(
                f"Step type {step_type.name!r} is already registered by "
                f"{existing.module or 'an unknown module'}."
            )
        _check_schema(step_type)
        self._registry[step_type.name] = step_type
        return step_type

    def unregister(self, name: str) -> None:
        """Remove the step type *name*; raise NotRegistered if it is unknown."""
        self.get(name)
        del self._registry[name]

    def get(self, name: str) -> StepType:
        """Return the step type *name*; raise NotRegistered listing the known names."""
        try:
            return self._registry[name]
        except KeyError:
            known = ", ".join(sorted(self._registry)) or "none"
            raise NotRegistered(
                f"Unknown step type {name!r}. Registered types: {known}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self) -> Iterator[StepType]:
        return iter(sorted(self._registry.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._registry)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._registry)

    def choices(self) -> list[tuple[str, str]]:
        """Return ``(name, label)`` pairs for form fields, sorted by name."""
        return [(t.name, f"{t.label} ({t.name})") for t in self]

    def autodiscover(self) -> None:
        """Import the ``steps`` module of every installed app."""
        autodiscover_modules("steps", register_to=self)


def _check_schema(step_type: StepType) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    # A boolean is a valid JSON schema, but params are always an object whose
    # defaults and properties the engine and the admin read.
    if not isinstance(step_type.params_schema, dict):
        raise ValueError(
            f"Step type {step_type.name!r} has an invalid params_schema: "
            "it must be a JSON object."
        )
    try:
        Draft202012Validator.check_schema(step_type.params_schema)
    except SchemaError as exc:
        raise ValueError(
            f"Step type {step_type.name!r} has an invalid params_schema: {exc.message}"
        ) from exc


registry = StepRegistry()


def step(
    name: str,
    *,
    label: str | None = None,
    description: str | None = None,
    params_schema: dict | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    timeout: float | None = None,
    queue: str | None = None,
    registry: StepRegistry = registry,
) -> Callable[[StepFunction], StepFunction]:
    """Register the decorated function as the step type *name*.

    The function is returned unchanged, so it stays a plain function that tests
    can call without Celery. It is called as ``function(params, inputs, context)``:
    *params* validated against *params_schema*, *inputs* the results of its
    upstream steps keyed by step key, *context* a :class:`StepContext` whose
    ``run_params`` are the run's params. Its return value must be JSON-serialisable.
    """

    def decorator(function: StepFunction) -> StepFunction:
        doc = (function.__doc__ or "").strip()
        registry.register(
            StepType(
                name=name,
                function=function,
                label=label or name.replace("_", " ").capitalize(),
                description=description if description is not None else doc,
                params_schema=params_schema or {"type": "object"},
                retries=retries,
                retry_delay=retry_delay,
                timeout=timeout,
                queue=queue,
                module=function.__module__,
            )
        )
        return function

    return decorator
