"""The runs service on the database, without a worker: nothing is ever sent.

Dispatch is checked through ``django_capture_on_commit_callbacks`` (never
executed against a broker) and a recorder in place of ``apply_async``.
"""

from datetime import timedelta

import pytest
from celery import canvas
from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from tests.factories import make_workflow
from workflows import runs
from workflows.compiler import ADVANCE_RUN, START
from workflows.exceptions import InvalidParams, InvalidWorkflow, RunStateError
from workflows.models import DispatchSegment, Step, StepAttempt, StepRun, WorkflowRun
from workflows.spec import import_workflow
from workflows.states import RunStatus, StepStatus, run_status_from_steps

pytestmark = pytest.mark.django_db


def start(capture, workflow, params=None, **kwargs):
    with capture() as callbacks:
        run = runs.start_run(workflow, params, **kwargs)
    return run, callbacks


def set_statuses(run, **statuses) -> None:
    for key, status in statuses.items():
        StepRun.objects.filter(run=run, key=key).update(status=status)


def statuses(run) -> dict[str, str]:
    return dict(run.step_runs.values_list("key", "status"))


def finish(run, status=RunStatus.FAILED) -> None:
    WorkflowRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=timezone.now()
    )
    run.refresh_from_db()


# -- start_run ------------------------------------------------------------------


def test_start_run_creates_the_run_and_its_steps(django_capture_on_commit_callbacks):
    workflow = make_workflow("a>b a>c b>d c>d", "echo", overrides={"b": {"retries": 2}})
    user = User.objects.create_user("staff")
    run, callbacks = start(django_capture_on_commit_callbacks, workflow, user=user)
    assert run.status == RunStatus.PENDING
    assert run.generation == 1
    assert run.started_by == user
    assert run.params == {}
    assert run.dispatch_keys == ["a", "b", "c", "d"]
    assert run.snapshot["slug"] == "wf"
    rows = {s.key: s for s in run.step_runs.all()}
    assert set(rows) == {"a", "b", "c", "d"}
    assert all(
        r.status == StepStatus.PENDING and r.attempts == 0 for r in rows.values()
    )
    assert len({r.task_id for r in rows.values()}) == 4
    assert rows["b"].spec == {**run.snapshot["steps"]["b"], "next": ["d"]}
    assert rows["b"].spec["retries"] == 2
    assert rows["d"].spec["after"] == ["b", "c"]
    assert len(callbacks) == 1


def test_anonymous_user_is_not_stored(django_capture_on_commit_callbacks):
    run, _ = start(
        django_capture_on_commit_callbacks, make_workflow("a"), user=AnonymousUser()
    )
    assert run.started_by is None


def test_one_small_message_after_commit_and_none_before(
    django_capture_on_commit_callbacks, sent, settings
):
    settings.DAGFLOW = {**settings.DAGFLOW, "CONTROL_QUEUE": "control"}
    workflow = make_workflow("a>b", "echo", params={"big": "x" * 1000})
    run, callbacks = start(django_capture_on_commit_callbacks, workflow)
    assert sent == []  # nothing leaves before the transaction commits
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(sent) == 1
    message = sent[0]
    assert message["task"] == ADVANCE_RUN
    assert message.args == (run.pk, 1, START)
    assert message.options == {"queue": "control"}
    assert message.immutable
    assert "x" * 10 not in repr(dict(message))


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "'day' is a required property"),
        ({"day": 5}, "day: 5 is not of type 'string'"),
        ({"day": "mon", "extra": 1}, "Additional properties"),
        (["day"], "run params must be a JSON object"),
        ("day", "run params must be a JSON object"),
    ],
)
def test_run_params_are_validated_and_nothing_is_created(
    django_capture_on_commit_callbacks, params, fragment
):
    workflow = make_workflow("a>b")
    workflow.params_schema = {
        "type": "object",
        "properties": {"day": {"type": "string"}},
        "required": ["day"],
        "additionalProperties": False,
    }
    workflow.save()
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(InvalidParams) as excinfo,
    ):
        runs.start_run(workflow, params)
    assert fragment in str(excinfo.value)
    assert WorkflowRun.objects.count() == 0
    assert StepRun.objects.count() == 0
    assert callbacks == []
    run, _ = start(django_capture_on_commit_callbacks, workflow, {"day": "mon"})
    assert run.params == {"day": "mon"}


def test_a_stored_workflow_that_no_longer_validates_starts_nothing(
    django_capture_on_commit_callbacks,
):
    workflow = make_workflow("a>b")
    Step.objects.filter(key="b").update(step_type="uninstalled")
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(InvalidWorkflow, match="'uninstalled'"),
    ):
        runs.start_run(workflow)
    assert WorkflowRun.objects.count() == 0
    assert callbacks == []


def test_snapshot_is_frozen_at_start(django_capture_on_commit_callbacks):
    workflow = make_workflow("a>b>c", "echo", params={"v": 1})
    run, _ = start(django_capture_on_commit_callbacks, workflow)
    snapshot = run.snapshot
    specs = dict(run.step_runs.values_list("key", "spec"))
    import_workflow(
        {
            "slug": "wf",
            "name": "renamed",
            "steps": [
                {"key": "a", "type": "noop", "retries": 5},
                {"key": "z", "type": "echo", "params": {"v": 2}, "after": ["a"]},
            ],
        }
    )
    run = WorkflowRun.objects.get(pk=run.pk)
    assert run.snapshot == snapshot
    assert run.snapshot["steps"]["a"]["type"] == "echo"
    assert set(run.snapshot["steps"]) == {"a", "b", "c"}
    assert dict(run.step_runs.values_list("key", "spec")) == specs
    new_run, _ = start(django_capture_on_commit_callbacks, workflow)
    assert set(new_run.snapshot["steps"]) == {"a", "z"}


def test_request_id_makes_start_idempotent(django_capture_on_commit_callbacks):
    workflow = make_workflow("a")
    first, callbacks = start(
        django_capture_on_commit_callbacks, workflow, request_id="form-1"
    )
    again, more = start(
        django_capture_on_commit_callbacks, workflow, request_id="form-1"
    )
    assert again.pk == first.pk
    assert WorkflowRun.objects.count() == 1
    assert StepRun.objects.count() == 1
    assert (len(callbacks), len(more)) == (1, 0)
    other, _ = start(django_capture_on_commit_callbacks, workflow, request_id="form-2")
    assert other.pk != first.pk
    start(django_capture_on_commit_callbacks, workflow)
    start(django_capture_on_commit_callbacks, workflow, request_id="")
    assert WorkflowRun.objects.count() == 4


# -- rerun ----------------------------------------------------------------------


@pytest.fixture
def failed_run(django_capture_on_commit_callbacks):
    """A finished run of a>b>d, a>c>e, x>y where b failed after two attempts."""
    workflow = make_workflow("a>b>d a>c>e x>y", "echo")
    run, _ = start(django_capture_on_commit_callbacks, workflow)
    StepRun.objects.filter(run=run).update(
        status=StepStatus.SUCCESS, attempts=1, result="kept", worker="w:1"
    )
    set_statuses(run, b=StepStatus.FAILED, d=StepStatus.UPSTREAM_FAILED)
    StepRun.objects.filter(run=run, key="b").update(
        attempts=2, error="boom", traceback="Traceback", result=None
    )
    StepRun.objects.filter(run=run, key="d").update(attempts=0, result=None)
    b = run.step_runs.get(key="b")
    for number in (1, 2):
        StepAttempt.objects.create(
            step_run=b,
            number=number,
            status=StepStatus.FAILED,
            started_at=timezone.now(),
            error="boom",
        )
    finish(run, RunStatus.FAILED)
    return run


def test_rerun_failed_resets_exactly_the_failed_steps_and_downstream(
    failed_run, django_capture_on_commit_callbacks, sent
):
    before = {s.key: s for s in failed_run.step_runs.all()}
    with django_capture_on_commit_callbacks() as callbacks:
        run = runs.rerun(failed_run, failed=True)
    assert run.pk == failed_run.pk
    assert run.generation == 2
    assert run.status == RunStatus.PENDING
    assert run.finished_at is None
    assert run.dispatch_keys == ["b", "d"]
    after = {s.key: s for s in run.step_runs.all()}
    assert {k: s.status for k, s in after.items()} == {
        "a": "success",
        "b": "pending",
        "c": "success",
        "d": "pending",
        "e": "success",
        "x": "success",
        "y": "success",
    }
    for key in ("b", "d"):
        assert after[key].task_id != before[key].task_id
        assert after[key].result is None
        assert (after[key].error, after[key].traceback, after[key].worker) == (
            "",
            "",
            "",
        )
        assert after[key].attempts == before[key].attempts  # counting goes on
    for key in ("a", "c", "e", "x", "y"):
        assert after[key].result == "kept"
        assert after[key].task_id == before[key].task_id
    assert list(after["b"].history.values_list("number", flat=True)) == [1, 2]
    assert sent == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent[0]["task"] == ADVANCE_RUN
    assert sent[0].args == (run.pk, 2, START)


def test_rerun_includes_cancelled_steps(failed_run, django_capture_on_commit_callbacks):
    set_statuses(failed_run, y=StepStatus.CANCELLED)
    with django_capture_on_commit_callbacks():
        run = runs.rerun(failed_run, failed=True)
    assert run.dispatch_keys == ["b", "d", "y"]


def test_rerun_from_a_step_resets_it_and_its_downstream(
    failed_run, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        run = runs.rerun(failed_run, from_key="c")
    assert run.dispatch_keys == ["c", "e"]
    assert statuses(run) == {
        "a": "success",
        "b": "failed",
        "c": "pending",
        "d": "upstream_failed",
        "e": "pending",
        "x": "success",
        "y": "success",
    }
    assert run.step_runs.get(key="c").attempts == 1
    assert len(callbacks) == 1


@pytest.mark.parametrize("status", [RunStatus.PENDING, RunStatus.RUNNING])
def test_rerun_is_refused_while_the_run_is_in_flight(
    failed_run, django_capture_on_commit_callbacks, status
):
    WorkflowRun.objects.filter(pk=failed_run.pk).update(status=status)
    before = statuses(failed_run)
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RunStateError, match=f"is {status}"),
    ):
        runs.rerun(failed_run, failed=True)
        with pytest.raises(RunStateError):
            runs.rerun(failed_run, from_key="a")
    assert statuses(failed_run) == before
    assert WorkflowRun.objects.get(pk=failed_run.pk).generation == 1
    assert callbacks == []


def test_rerun_of_failed_steps_is_refused_when_nothing_failed(
    django_capture_on_commit_callbacks,
):
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a>b"))
    StepRun.objects.filter(run=run).update(status=StepStatus.SUCCESS)
    finish(run, RunStatus.SUCCESS)
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RunStateError, match="no failed steps"),
    ):
        runs.rerun(run, failed=True)
    assert callbacks == []
    assert WorkflowRun.objects.get(pk=run.pk).generation == 1


def test_rerun_from_an_unknown_step_is_refused(failed_run):
    with pytest.raises(RunStateError, match="has no step 'ghost'"):
        runs.rerun(failed_run, from_key="ghost")
    assert WorkflowRun.objects.get(pk=failed_run.pk).generation == 1


def test_rerun_needs_exactly_one_mode(failed_run):
    with pytest.raises(ValueError, match="exactly one"):
        runs.rerun(failed_run)
    with pytest.raises(ValueError, match="exactly one"):
        runs.rerun(failed_run, failed=True, from_key="b")


# -- cancel / resume ------------------------------------------------------------


def test_cancel_marks_unfinished_steps_cancelled(django_capture_on_commit_callbacks):
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a>b>c d"))
    set_statuses(run, a=StepStatus.SUCCESS, b=StepStatus.RUNNING, d=StepStatus.FAILED)
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    with django_capture_on_commit_callbacks() as callbacks:
        cancelled = runs.cancel(run)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert cancelled.generation == 2
    assert statuses(run) == {
        "a": "success",
        "b": "cancelled",
        "c": "cancelled",
        "d": "failed",
    }
    assert run.step_runs.get(key="c").error == "Cancelled."
    assert run.step_runs.get(key="a").error == ""
    assert callbacks == []


@pytest.mark.parametrize("status", sorted(RunStatus.values))
def test_cancel_is_refused_on_a_finished_run(
    django_capture_on_commit_callbacks, status
):
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a"))
    WorkflowRun.objects.filter(pk=run.pk).update(status=status)
    if status in (RunStatus.PENDING, RunStatus.RUNNING):
        runs.cancel(run)
        return
    with pytest.raises(RunStateError, match=f"already ended \\({status}\\)"):
        runs.cancel(run)
    assert statuses(run) == {"a": "pending"}
    assert WorkflowRun.objects.get(pk=run.pk).generation == 1


def test_resume_resends_the_unfinished_steps(django_capture_on_commit_callbacks):
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a>b>c"))
    set_statuses(run, a=StepStatus.SUCCESS, b=StepStatus.RUNNING)
    old = dict(run.step_runs.values_list("key", "task_id"))
    with django_capture_on_commit_callbacks() as callbacks:
        resumed = runs.resume(run)
    assert resumed.generation == 2
    assert resumed.dispatch_keys == ["b", "c"]
    assert statuses(run) == {"a": "success", "b": "pending", "c": "pending"}
    new = dict(run.step_runs.values_list("key", "task_id"))
    assert new["a"] == old["a"] and new["b"] != old["b"]
    assert len(callbacks) == 1
    finish(run, RunStatus.SUCCESS)
    with pytest.raises(RunStateError):
        runs.resume(run)


# -- finalize, advance, status ---------------------------------------------------


@pytest.mark.parametrize(
    ("step_statuses", "expected"),
    [
        (["success", "success"], "success"),
        (["success", "failed"], "failed"),
        (["upstream_failed", "success"], "failed"),
        (["failed", "cancelled"], "cancelled"),
        (["success", "cancelled"], "cancelled"),
        ([], "success"),
    ],
)
def test_run_status_from_steps(step_statuses, expected):
    assert run_status_from_steps(step_statuses) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("success", "success", RunStatus.SUCCESS),
        ("success", "failed", RunStatus.FAILED),
        ("failed", "upstream_failed", RunStatus.FAILED),
        ("cancelled", "success", RunStatus.CANCELLED),
        ("success", "running", None),
        ("success", "retrying", None),
        ("queued", "success", None),
        ("pending", "pending", None),
    ],
)
def test_finalize_settles_the_run_once_every_step_is_final(
    django_capture_on_commit_callbacks, a, b, expected
):
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a>b"))
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    set_statuses(run, a=a, b=b)
    assert runs.finalize(run.pk) is (expected is not None)
    run.refresh_from_db()
    if expected is None:
        assert run.status == RunStatus.RUNNING
        assert run.finished_at is None
    else:
        assert run.status == expected
        assert run.finished_at is not None


def test_finalize_respects_the_generation_and_final_runs(
    django_capture_on_commit_callbacks,
):
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a"))
    set_statuses(run, a=StepStatus.FAILED)
    assert runs.finalize(run.pk, generation=7) is True
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    assert runs.finalize(run.pk, generation=1) is True
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    set_statuses(run, a=StepStatus.SUCCESS)
    runs.finalize(run.pk)
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_advance_plans_and_publishes_segments(
    django_capture_on_commit_callbacks, sent, settings
):
    settings.DAGFLOW = {**settings.DAGFLOW, "SEGMENT_MAX_STEPS": 4}
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a>b>c d"))
    assert runs.advance(run.pk, 2, START) == "stale"
    assert runs.advance(run.pk, 1, START) == "published"
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.started_at is not None
    assert list(run.segments.values_list("index", "block", "after")) == [
        (0, ["p", ["s", "a", "b", "c"], "d"], [])
    ]
    # queued: the steps whose message goes out now; b and c wait for a and b
    assert statuses(run) == {
        "a": "queued",
        "b": "pending",
        "c": "pending",
        "d": "queued",
    }
    assert len(sent) == 1 and isinstance(sent[0], canvas._chord)
    assert sent[0].body.args == (run.pk, 1, 0)
    assert runs.advance(run.pk, 1, START) == "waiting"  # a redelivery sends nothing
    assert len(sent) == 1
    assert DispatchSegment.objects.filter(run=run).count() == 1
    assert runs.advance(run.pk, 1, 0) == "waiting"  # steps not final yet
    StepRun.objects.filter(run=run).update(status=StepStatus.SUCCESS)
    assert runs.advance(run.pk, 1, 0) == "finished"
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.SUCCESS
    assert runs.advance(run.pk, 1, 0) == "stale"


def test_advance_of_a_long_chain_publishes_one_segment_at_a_time(
    django_capture_on_commit_callbacks, sent, settings
):
    settings.DAGFLOW = {**settings.DAGFLOW, "SEGMENT_MAX_STEPS": 2}
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a>b>c>d>e"))
    runs.advance(run.pk, 1, START)
    assert list(run.segments.values_list("block", "after")) == [
        (["s", "a", "b"], []),
        (["s", "c", "d"], [0]),
        ("e", [1]),
    ]
    assert statuses(run) == {
        "a": "queued",
        "b": "pending",
        "c": "pending",
        "d": "pending",
        "e": "pending",
    }
    assert [t.args[1] for t in sent[0].tasks[:2]] == ["a", "b"]
    assert sent[0].tasks[2].args == (run.pk, 1, 0)
    assert runs.advance(run.pk, 1, 0) == "published"
    assert runs.advance(run.pk, 1, 0) == "waiting"  # the same end twice: sent once
    assert len(sent) == 2
    assert [t.args[1] for t in sent[1].tasks[:2]] == ["c", "d"]


def test_advance_joins_the_pieces_of_a_wide_block(
    django_capture_on_commit_callbacks, sent, settings
):
    settings.DAGFLOW = {**settings.DAGFLOW, "SEGMENT_MAX_STEPS": 2}
    shape = "a>b>z a>c>z a>d>z"
    run, _ = start(django_capture_on_commit_callbacks, make_workflow(shape))
    runs.advance(run.pk, 1, START)
    assert list(run.segments.values_list("block", "after")) == [
        ("a", []),
        (["p", "b", "c"], [0]),
        ("d", [0]),
        ("z", [1, 2]),
    ]
    assert runs.advance(run.pk, 1, 0) == "published"
    assert len(sent) == 3
    assert runs.advance(run.pk, 1, 1) == "waiting"  # z waits for both pieces
    assert len(sent) == 3
    assert runs.advance(run.pk, 1, 2) == "published"
    assert sent[-1].args == (run.pk, "z", 1) or sent[-1].tasks[0].args == (
        run.pk,
        "z",
        1,
    )


def test_stalled_runs(django_capture_on_commit_callbacks):
    long_ago = timezone.now() - timedelta(hours=1)
    workflow = make_workflow("a>b")
    stuck, _ = start(django_capture_on_commit_callbacks, workflow)
    beating, _ = start(django_capture_on_commit_callbacks, workflow)
    moved, _ = start(django_capture_on_commit_callbacks, workflow)
    ended, _ = start(django_capture_on_commit_callbacks, workflow)
    fresh, _ = start(django_capture_on_commit_callbacks, workflow)
    WorkflowRun.objects.exclude(pk=fresh.pk).update(created_at=long_ago)
    StepRun.objects.filter(run=stuck).update(heartbeat_at=long_ago)
    StepRun.objects.filter(run=beating, key="a").update(heartbeat_at=timezone.now())
    StepRun.objects.filter(run=moved, key="a").update(finished_at=timezone.now())
    finish(ended, RunStatus.FAILED)
    assert [r.pk for r in runs.stalled_runs(600)] == [stuck.pk]
    assert {r.pk for r in runs.stalled_runs(0)} == {
        stuck.pk,
        beating.pk,
        moved.pk,
        fresh.pk,
    }


def test_run_status(django_capture_on_commit_callbacks):
    run, _ = start(django_capture_on_commit_callbacks, make_workflow("a>b"), {"k": 1})
    StepRun.objects.filter(run=run, key="a").update(
        status=StepStatus.SUCCESS,
        attempts=1,
        result={"n": 1},
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    data = runs.run_status(run)
    assert data["id"] == run.pk
    assert data["workflow"] == "wf"
    assert data["status"] == "pending"
    assert data["params"] == {"k": 1}
    assert data["started_at"] is None
    assert data["steps"]["a"]["result"] == {"n": 1}
    assert data["steps"]["a"]["finished_at"].endswith("+00:00")
    assert data["steps"]["b"] == {
        "status": "pending",
        "attempts": 0,
        "started_at": None,
        "finished_at": None,
        "result": None,
        "error": None,
    }
