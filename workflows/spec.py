"""The JSON format of a workflow: validation, export, and the one atomic save.

Format::

    {"slug", "name", "description", "params_schema"?, "layout"?,
     "steps": [{"key", "type", "params", "after", "retries", "retry_delay",
                "timeout", "label"}]}

Only ``slug`` and, per step, ``key`` and ``type`` are required. Export then
import gives back the same workflow.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.db.models import F
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from workflows.dag import json_errors, validate_steps
from workflows.exceptions import InvalidWorkflow, StaleWorkflow
from workflows.models import Step, Workflow
from workflows.registry import StepRegistry, registry

SLUG_RE = re.compile(r"[-a-zA-Z0-9_]{1,100}")
TOP_FIELDS = {"slug", "name", "description", "params_schema", "layout", "steps"}
OPTIONAL_STEP_FIELDS = ("label", "retries", "retry_delay", "timeout")


def validate_workflow_spec(data: Any, step_registry: StepRegistry = registry) -> None:
    """Raise InvalidWorkflow listing every problem of the workflow *data*."""
    if not isinstance(data, dict):
        raise InvalidWorkflow("a workflow must be a JSON object")
    errors = json_errors(data, "the workflow")
    if errors:
        raise InvalidWorkflow(errors)
    unknown = set(data) - TOP_FIELDS
    if unknown:
        errors.append(f"unknown fields {', '.join(sorted(unknown))}")
    slug = data.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        errors.append("slug is required: 1 to 100 letters, digits, '-' or '_'")
    for name, limit in (("name", 200), ("description", None)):
        value = data.get(name)
        if value is not None and (
            not isinstance(value, str) or (limit and len(value) > limit)
        ):
            errors.append(
                f"{name} must be text" + (f" of at most {limit}" if limit else "")
            )
    errors.extend(params_schema_errors(data.get("params_schema")))
    layout = data.get("layout")
    if layout is not None and not isinstance(layout, dict):
        errors.append("layout must be an object")
    steps = data.get("steps", [])
    if errors:
        raise InvalidWorkflow(errors)
    validate_steps(steps, step_registry)


def params_schema_errors(schema: Any) -> list[str]:
    """Return why *schema* is not a usable run params schema (empty if it is)."""
    if schema is None:
        return []
    if not isinstance(schema, dict):
        return ["params_schema must be a JSON schema object"]
    try:
        Draft202012Validator.check_schema(schema)
        Draft202012Validator(schema).is_valid({})
    except SchemaError as exc:
        return [f"params_schema is not a valid JSON schema: {exc.message}"]
    except RecursionError:
        return ["params_schema refers to itself without end"]
    return []


def export_workflow(workflow: Workflow) -> dict:
    """Return *workflow* in the JSON format."""
    steps = list(workflow.steps.prefetch_related("upstream"))
    data: dict[str, Any] = {
        "slug": workflow.slug,
        "name": workflow.name,
        "description": workflow.description,
    }
    if workflow.params_schema is not None:
        data["params_schema"] = workflow.params_schema
    if workflow.layout:
        data["layout"] = workflow.layout
    data["steps"] = [step_to_spec(s) for s in steps]
    return data


def step_to_spec(step: Step) -> dict:
    """Return one step in the JSON format (prefetch ``upstream`` for many)."""
    spec: dict[str, Any] = {
        "key": step.key,
        "type": step.step_type,
        "params": step.params,
        "after": sorted(u.key for u in step.upstream.all()),
    }
    for name in OPTIONAL_STEP_FIELDS:
        value = getattr(step, name)
        if value not in (None, ""):
            spec[name] = value
    return spec


def workflow_steps(workflow: Workflow) -> list[dict]:
    """Return the steps of *workflow* as specs, the input of a snapshot."""
    return [step_to_spec(s) for s in workflow.steps.prefetch_related("upstream")]


@transaction.atomic
def import_workflow(
    data: Any,
    *,
    expected_version: int | None = None,
    step_registry: StepRegistry = registry,
) -> Workflow:
    """Create or update the workflow *data* describes, all or nothing.

    Raises InvalidWorkflow (nothing saved) or StaleWorkflow when
    *expected_version* is given and someone saved the workflow since.
    """
    validate_workflow_spec(data, step_registry)
    workflow, _created = Workflow.objects.select_for_update().get_or_create(
        slug=data["slug"], defaults={"name": data.get("name") or data["slug"]}
    )
    workflow.name = data.get("name") or workflow.name or data["slug"]
    workflow.description = data.get("description") or ""
    workflow.params_schema = data.get("params_schema")
    if "layout" in data:
        workflow.layout = data["layout"] or {}
    workflow.save()
    save_steps(
        workflow,
        data.get("steps", []),
        expected_version=expected_version,
        step_registry=step_registry,
    )
    workflow.refresh_from_db()
    return workflow


@transaction.atomic
def save_steps(
    workflow: Workflow,
    steps: list[dict],
    *,
    expected_version: int | None = None,
    layout: dict | None = None,
    step_registry: StepRegistry = registry,
) -> None:
    """Replace the steps of *workflow* by *steps* in one transaction.

    Validates with the engine's rules first; raises StaleWorkflow when
    *expected_version* no longer matches. Steps keep their row (and id) when
    their key stays. Raises the workflow's version by one.
    """
    validate_steps(steps, step_registry)
    bumped = Workflow.objects.filter(pk=workflow.pk)
    if expected_version is not None:
        bumped = bumped.filter(version=expected_version)
    if not bumped.update(version=F("version") + 1):
        raise StaleWorkflow(
            f"Workflow {workflow.slug!r} was changed by someone else since version "
            f"{expected_version}; reload it and apply your changes again."
        )
    existing = {s.key: s for s in workflow.steps.all()}
    keep = {spec["key"] for spec in steps}
    workflow.steps.exclude(key__in=keep).delete()
    rows: dict[str, Step] = {}
    for position, spec in enumerate(steps):
        row = existing.get(spec["key"]) or Step(workflow=workflow, key=spec["key"])
        row.step_type = spec["type"]
        row.params = spec.get("params") or {}
        row.label = spec.get("label") or ""
        row.retries = spec.get("retries")
        row.retry_delay = spec.get("retry_delay")
        row.timeout = spec.get("timeout")
        row.position = position
        row.save()
        rows[spec["key"]] = row
    for spec in steps:
        rows[spec["key"]].upstream.set([rows[k] for k in spec.get("after") or []])
    if layout is not None:
        Workflow.objects.filter(pk=workflow.pk).update(layout=layout)
