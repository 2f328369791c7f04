"""The service layer: start, dispatch, rerun, cancel and read runs.

The admin, the management commands and developers all go through here; it is
the only code that creates runs or changes their status outside of a worker
executing a step (see ``execution.py``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from workflows import compiler
from workflows.conf import app_settings
from workflows.dag import (
    downstream_of,
    make_snapshot,
    snapshot_graph,
    validate_params,
)
from workflows.exceptions import InvalidParams, InvalidWorkflow, RunStateError
from workflows.models import DispatchSegment, StepRun, Workflow, WorkflowRun
from workflows.spec import workflow_steps
from workflows.states import (
    RUN_FINAL,
    STEP_FINAL,
    STEP_RERUNNABLE,
    RunStatus,
    StepStatus,
    run_status_from_steps,
)


def start_run(
    workflow: Workflow,
    params: dict | None = None,
    user: Any = None,
    *,
    request_id: str | None = None,
) -> WorkflowRun:
    """Create a run of *workflow* and send it to the workers once committed.

    Raises InvalidParams when *params* fail the workflow's params schema and
    InvalidWorkflow when the stored workflow does not validate. With a
    *request_id* already used, returns that run instead of starting another.
    """
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise InvalidParams("run params must be a JSON object")
    validate_params(params, workflow.params_schema, what="run params")
    if request_id:
        existing = WorkflowRun.objects.filter(request_id=request_id).first()
        if existing:
            return existing
    snapshot = make_snapshot(
        {
            "slug": workflow.slug,
            "name": workflow.name,
            "steps": workflow_steps(workflow),
        }
    )
    if not snapshot["steps"]:
        raise InvalidWorkflow(f"Workflow {workflow.slug!r} has no steps to run.")
    try:
        with transaction.atomic():
            return _create_run(workflow, snapshot, params, user, request_id)
    except IntegrityError:
        if request_id:  # the same submit, twice at once: the first one won
            return WorkflowRun.objects.get(request_id=request_id)
        raise


def _create_run(workflow, snapshot, params, user, request_id) -> WorkflowRun:
    run = WorkflowRun.objects.create(
        workflow=workflow,
        snapshot=snapshot,
        params=params,
        started_by=user if getattr(user, "is_authenticated", False) else None,
        request_id=request_id or None,
        generation=1,
        dispatch_keys=sorted(snapshot["steps"]),
    )
    graph = snapshot_graph(snapshot)
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            key=key,
            spec={**spec, "next": sorted(graph.successors(key))},
            task_id=str(uuid.uuid4()),
        )
        for key, spec in snapshot["steps"].items()
    )
    _send_on_commit(run)
    return run


def _send_on_commit(run: WorkflowRun) -> None:
    """Send one small message; a worker compiles and publishes the canvas."""
    signature = compiler.advance_signature(
        run.pk, run.generation, compiler.START, app_settings.CONTROL_QUEUE
    )
    # robust: a broker that is down must not turn a committed start into an
    # error page; the run stays pending and `workflow_reconcile` sends it later.
    transaction.on_commit(signature.apply_async, robust=True)


def advance(run_id: int, generation: int, index: int) -> str:
    """Record that segment *index* ended and publish the segments now free to go.

    Called by the ``advance_run`` task; *index* is ``compiler.START`` when the
    run starts, which plans the segments first. Messages of an older generation
    do nothing, and a segment is published once however often this runs.
    """
    run = (
        WorkflowRun.objects.filter(pk=run_id, generation=generation)
        .exclude(status__in=RUN_FINAL)
        .first()
    )
    if run is None:
        return "stale"
    segments = DispatchSegment.objects.filter(run=run, generation=generation)
    if index == compiler.START:
        _plan(run)
        # A rerun keeps the time the run first started.
        WorkflowRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING,
            started_at=Coalesce(F("started_at"), Value(timezone.now())),
        )
    else:
        segments.filter(index=index).update(finished=True)
    rows = list(segments.only("index", "after", "published", "finished"))
    done = {row.index for row in rows if row.finished}
    sent = 0
    for row in rows:
        if row.published or not all(i in done for i in row.after):
            continue
        if segments.filter(pk=row.pk, published=False).update(published=True):
            _publish(run, generation, row.index)
            sent += 1
    if len(done) == len(rows):
        return "finished" if finalize(run.pk, generation) else "waiting"
    return "published" if sent else "waiting"


def _publish(run: WorkflowRun, generation: int, index: int) -> None:
    segment = DispatchSegment.objects.get(run=run, generation=generation, index=index)
    block = compiler.block_from_data(segment.block)
    keys = _block_keys(block)
    rows = {
        r.key: r
        for r in StepRun.objects.filter(run=run, key__in=keys).only(
            "key", "task_id", "spec"
        )
    }
    make_step = compiler.step_signature_factory(
        run.pk,
        generation,
        {k: r.task_id for k, r in rows.items()},
        {k: r.spec.get("queue") for k, r in rows.items()},
    )
    then = compiler.advance_signature(
        run.pk, generation, index, app_settings.CONTROL_QUEUE
    )
    mark_queued(run.pk, keys)
    compiler.to_canvas(block, make_step, then).apply_async()


def mark_queued(run_id: int, keys: list[str]) -> None:
    """Mark ``queued`` the pending steps among *keys* whose upstream all succeeded.

    Those are the ones whose message is (or is about to be) in the broker; a
    step still waiting for its upstream stays ``pending``.
    """
    candidates = StepRun.objects.filter(
        run_id=run_id, key__in=keys, status=StepStatus.PENDING
    ).only("pk", "spec")
    for step_run in candidates:
        after = step_run.spec.get("after", [])
        waiting = StepRun.objects.filter(run_id=run_id, key__in=after).exclude(
            status=StepStatus.SUCCESS
        )
        if not after or not waiting.exists():
            StepRun.objects.filter(pk=step_run.pk, status=StepStatus.PENDING).update(
                status=StepStatus.QUEUED
            )


def _block_keys(block: compiler.Block) -> list[str]:
    if isinstance(block, compiler.Step):
        return [block.key]
    return [k for part in block.parts for k in _block_keys(part)]


def _plan(run: WorkflowRun) -> None:
    if DispatchSegment.objects.filter(run=run, generation=run.generation).exists():
        return  # a redelivered start: the plan stands
    block = compiler.decompose(snapshot_graph(run.snapshot), run.dispatch_keys)
    segments = compiler.plan_segments(block, app_settings.SEGMENT_MAX_STEPS)
    DispatchSegment.objects.filter(run=run).exclude(generation=run.generation).delete()
    DispatchSegment.objects.bulk_create(
        [
            DispatchSegment(
                run=run,
                generation=run.generation,
                index=i,
                block=compiler.block_to_data(segment.block),
                after=list(segment.after),
            )
            for i, segment in enumerate(segments)
        ],
        ignore_conflicts=True,
    )


def finalize(run_id: int, generation: int | None = None) -> bool:
    """Settle the run's status from its steps if every step is final.

    Returns False (and changes nothing) while a step is not final.
    """
    statuses = list(
        StepRun.objects.filter(run_id=run_id).values_list("status", flat=True)
    )
    if any(s not in STEP_FINAL for s in statuses):
        return False
    runs = WorkflowRun.objects.filter(pk=run_id).exclude(status__in=RUN_FINAL)
    if generation is not None:
        runs = runs.filter(generation=generation)
    runs.update(status=run_status_from_steps(statuses), finished_at=timezone.now())
    return True


def rerun(
    run: WorkflowRun,
    *,
    failed: bool = False,
    from_key: str | None = None,
    user: Any = None,
) -> WorkflowRun:
    """Run again the failed steps of *run*, or *from_key* and everything after it.

    Successful steps outside that set are not executed again: their stored
    results feed the rerun. The run continues (same id), each step keeping its
    attempt history. Raises RunStateError while the run is not final, and
    when there is nothing to rerun.
    """
    if failed == bool(from_key):
        raise ValueError("pass exactly one of failed=True or from_key")
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in RUN_FINAL:
            raise RunStateError(
                f"Run {run.pk} is {run.status}; wait for it to end (or cancel it) "
                "before rerunning steps."
            )
        graph = snapshot_graph(run.snapshot)
        if from_key:
            if from_key not in graph:
                raise RunStateError(f"Run {run.pk} has no step {from_key!r}.")
            keys = downstream_of(graph, [from_key])
        else:
            bad = StepRun.objects.filter(run=run, status__in=STEP_RERUNNABLE)
            keys = downstream_of(graph, bad.values_list("key", flat=True))
            if not keys:
                raise RunStateError(f"Run {run.pk} has no failed steps to rerun.")
        for step_run in StepRun.objects.filter(run=run, key__in=keys):
            step_run.status = StepStatus.PENDING
            step_run.deferred = False
            step_run.task_id = str(uuid.uuid4())
            step_run.result = None
            step_run.error = step_run.traceback = step_run.worker = ""
            step_run.started_at = step_run.finished_at = step_run.heartbeat_at = None
            step_run.save(
                update_fields=[
                    "status",
                    "deferred",
                    "task_id",
                    "result",
                    "error",
                    "traceback",
                    "worker",
                    "started_at",
                    "finished_at",
                    "heartbeat_at",
                ]
            )
        run.status = RunStatus.PENDING
        run.finished_at = None
        run.generation += 1
        run.dispatch_keys = sorted(keys)
        run.save(update_fields=["status", "finished_at", "generation", "dispatch_keys"])
        _send_on_commit(run)
    return run


def cancel(run: WorkflowRun, user: Any = None) -> WorkflowRun:
    """Cancel *run*: every step not yet final ends ``cancelled``.

    Raises RunStateError if the run already ended. A step function already
    running goes on until it returns; its outcome is discarded.
    """
    now = timezone.now()
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        if run.status in RUN_FINAL:
            raise RunStateError(f"Run {run.pk} already ended ({run.status}).")
        StepRun.objects.filter(run=run).exclude(status__in=STEP_FINAL).update(
            status=StepStatus.CANCELLED,
            finished_at=now,
            error="Cancelled.",
        )
        run.status = RunStatus.CANCELLED
        run.finished_at = now
        run.generation += 1  # every message still in flight becomes a no-op
        run.save(update_fields=["status", "finished_at", "generation"])
    return run


def resume(run: WorkflowRun) -> WorkflowRun:
    """Dispatch again the steps of an unfinished run whose messages were lost.

    For a broker that lost its queues or workers that died mid-step: steps
    that are not final are reset to pending and sent again; finished ones stay.
    """
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        if run.status in RUN_FINAL:
            raise RunStateError(f"Run {run.pk} already ended ({run.status}).")
        open_steps = StepRun.objects.filter(run=run).exclude(status__in=STEP_FINAL)
        keys = sorted(open_steps.values_list("key", flat=True))
        for step_run in open_steps:
            step_run.status = StepStatus.PENDING
            step_run.deferred = False
            step_run.task_id = str(uuid.uuid4())
            step_run.worker = ""
            step_run.save(update_fields=["status", "deferred", "task_id", "worker"])
        run.generation += 1
        run.dispatch_keys = keys
        run.save(update_fields=["generation", "dispatch_keys"])
        _send_on_commit(run)
    return run


def stalled_runs(older_than_seconds: float) -> list[WorkflowRun]:
    """Return unfinished runs where nothing moved for *older_than_seconds*."""
    limit = timezone.now() - timedelta(seconds=older_than_seconds)
    moving = StepRun.objects.filter(
        Q(heartbeat_at__gte=limit) | Q(finished_at__gte=limit)
    ).values("run_id")
    return list(
        WorkflowRun.objects.in_flight()
        .filter(created_at__lt=limit)
        .exclude(pk__in=moving)
    )


def run_status(run: WorkflowRun) -> dict:
    """Return the run and each of its steps as JSON-ready data."""
    steps = {}
    for s in run.step_runs.all():
        steps[s.key] = {
            "status": s.status,
            "attempts": s.attempts,
            "started_at": _iso(s.started_at),
            "finished_at": _iso(s.finished_at),
            "result": s.result,
            "error": s.error or None,
        }
    return {
        "id": run.pk,
        "workflow": run.snapshot.get("slug"),
        "status": run.status,
        "params": run.params,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "steps": steps,
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None
