"""Runs through a real Celery worker process, on Redis or the embedded broker.

Every test counts executions (the ``count`` step writes a line per call) or
attempts, not only final states: a canvas that runs a step twice must fail here.
"""

import time

import pytest

from tests.conftest import executions, wait_for_run, wait_for_step
from tests.factories import chain_shape, make_workflow, parse_edges
from workflows import runs
from workflows.compiler import advance_signature, step_signature_factory
from workflows.models import StepRun
from workflows.states import RunStatus, StepStatus

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def statuses(run) -> dict[str, str]:
    return dict(run.step_runs.values_list("key", "status"))


def count_workflow(shape, count_dir, overrides=None, sleep=0, **options):
    params = {"dir": str(count_dir), "sleep": sleep}
    return make_workflow(shape, "count", params=params, overrides=overrides, **options)


def test_diamond_passes_results_downstream(worker):
    workflow = make_workflow(
        "a>b a>c b>d c>d",
        "add",
        overrides={
            "a": {"params": {"value": 1}},
            "b": {"params": {"value": 10}},
            "c": {"params": {"value": 100}},
            "d": {"params": {"value": 1000}},
        },
    )
    run = wait_for_run(runs.start_run(workflow))
    assert run.status == RunStatus.SUCCESS
    results = dict(run.step_runs.values_list("key", "result"))
    assert results == {"a": 1, "b": 11, "c": 101, "d": 1112}
    assert run.started_at and run.finished_at


@pytest.mark.parametrize(
    "shape",
    [
        "a>b>c>d",
        "a>b a>c b>d c>d",
        "a>c a>d b>d",
        "a>b>c>f a>d>e>f f>g x>y",
        "a>b a>c b>d c>d d>e d>f e>g f>g",
        " ".join(f"a>m{i}>z" for i in range(12)),
        # above SEGMENT_MAX_STEPS (20): pieces joined through the database
        " ".join(f"a>m{i}>z" for i in range(45)),
        chain_shape(25)
        + " "
        + chain_shape(25).replace("s", "t")
        + " s0024>end t0024>end",
    ],
    ids=[
        "chain",
        "diamond",
        "n_shape",
        "nested",
        "two_diamonds",
        "fan12",
        "fan45",
        "two_long_branches",
    ],
)
def test_every_step_runs_once_after_its_upstream(worker, count_dir, shape):
    workflow = count_workflow(shape, count_dir)
    run = wait_for_run(runs.start_run(workflow))
    assert run.status == RunStatus.SUCCESS
    keys, after = parse_edges(shape)
    rows = {s.key: s for s in run.step_runs.all()}
    for key in keys:
        assert executions(count_dir, run.pk, key) == 1, key
        assert rows[key].attempts == 1
        for upstream in after[key]:
            assert rows[upstream].finished_at <= rows[key].started_at


def test_long_chain_is_published_in_segments(worker, count_dir):
    shape = chain_shape(90)  # above SEGMENT_MAX_STEPS (20): five segments
    workflow = count_workflow(shape, count_dir)
    run = wait_for_run(runs.start_run(workflow), timeout=120)
    assert run.status == RunStatus.SUCCESS
    assert run.segments.count() == 5
    keys, _ = parse_edges(shape)
    assert [executions(count_dir, run.pk, k) for k in keys] == [1] * 90


def test_failure_stops_downstream_but_not_independent_branches(worker):
    workflow = make_workflow(
        "a>b>d a>c>e x>y",
        "noop",
        overrides={"b": {"type": "fail", "params": {"message": "boom"}}},
    )
    run = wait_for_run(runs.start_run(workflow))
    assert run.status == RunStatus.FAILED
    assert statuses(run) == {
        "a": "success",
        "b": "failed",
        "c": "success",
        "d": "upstream_failed",
        "e": "success",
        "x": "success",
        "y": "success",
    }
    failed = run.step_runs.get(key="b")
    assert "boom" in failed.error and "RuntimeError" in failed.traceback


def test_retries_inside_a_chord_then_succeed(worker, count_dir):
    workflow = count_workflow(
        "a>b a>c b>d c>d",
        count_dir,
        overrides={
            "b": {
                "type": "fail",
                "params": {"message": "flaky", "times": 2},
                "retries": 2,
                "retry_delay": 0.2,
            }
        },
    )
    run = wait_for_run(runs.start_run(workflow))
    assert run.status == RunStatus.SUCCESS
    flaky = run.step_runs.get(key="b")
    assert flaky.attempts == 3
    assert list(flaky.history.values_list("number", "status")) == [
        (1, "failed"),
        (2, "failed"),
        (3, "success"),
    ]
    assert executions(count_dir, run.pk, "d") == 1


def test_retries_exhausted_fail_the_step(worker):
    workflow = make_workflow(
        "a>b",
        "fail",
        overrides={
            "a": {"params": {"message": "always"}, "retries": 1, "retry_delay": 0}
        },
        params={"message": "never reached"},
    )
    run = wait_for_run(runs.start_run(workflow))
    assert statuses(run) == {"a": "failed", "b": "upstream_failed"}
    assert run.step_runs.get(key="a").attempts == 2


def test_timeout_fails_the_step_saying_so(worker):
    workflow = make_workflow("a>b", "sleep", params={"seconds": 5}, timeout=0.5)
    run = wait_for_run(runs.start_run(workflow))
    step_a = run.step_runs.get(key="a")
    assert step_a.status == StepStatus.FAILED
    assert "Timed out after 0.5 seconds" in step_a.error
    assert (step_a.finished_at - step_a.started_at).total_seconds() < 4


def test_unjsonable_result_fails_the_step(worker):
    workflow = make_workflow("a", "unjsonable")
    run = wait_for_run(runs.start_run(workflow))
    step_a = run.step_runs.get(key="a")
    assert step_a.status == StepStatus.FAILED
    assert "cannot be stored as JSON" in step_a.error
    assert step_a.result is None


def test_rerun_failed_steps_keeps_successful_results(worker, count_dir):
    workflow = count_workflow(
        "a>b>d a>c>d",
        count_dir,
        overrides={"b": {"type": "fail", "params": {"message": "once", "times": 1}}},
    )
    run = wait_for_run(runs.start_run(workflow))
    assert run.status == RunStatus.FAILED
    assert statuses(run)["d"] == "upstream_failed"
    run = wait_for_run(runs.rerun(run, failed=True))
    assert run.status == RunStatus.SUCCESS
    assert run.step_runs.get(key="b").attempts == 2
    assert run.step_runs.get(key="b").history.count() == 2
    assert executions(count_dir, run.pk, "a") == 1
    assert executions(count_dir, run.pk, "c") == 1
    assert executions(count_dir, run.pk, "d") == 1


def test_rerun_from_a_step_runs_it_and_its_downstream(worker, count_dir):
    workflow = count_workflow("a>b>c a>d", count_dir)
    run = wait_for_run(runs.start_run(workflow))
    run = wait_for_run(runs.rerun(run, from_key="b"))
    assert run.status == RunStatus.SUCCESS
    counts = {k: executions(count_dir, run.pk, k) for k in "abcd"}
    assert counts == {"a": 1, "b": 2, "c": 2, "d": 1}
    assert run.step_runs.get(key="c").attempts == 2


def test_cancel_ends_unfinished_steps_cancelled(worker, count_dir):
    workflow = count_workflow(
        "a>b>c",
        count_dir,
        overrides={"a": {"params": {"dir": str(count_dir), "sleep": 2}}},
    )
    run = runs.start_run(workflow)
    wait_for_step(run, "a", {StepStatus.RUNNING})
    runs.cancel(run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    wait_for_step(run, "a", {StepStatus.CANCELLED})
    time.sleep(3)  # a's function returns meanwhile; nothing may follow it
    assert statuses(run) == {"a": "cancelled", "b": "cancelled", "c": "cancelled"}
    assert executions(count_dir, run.pk, "b") == 0


def test_duplicate_delivery_never_runs_a_step_twice(worker, count_dir):
    workflow = count_workflow("a>b", count_dir)
    run = wait_for_run(runs.start_run(workflow))
    rows = {s.key: s for s in run.step_runs.all()}
    make = step_signature_factory(run.pk, run.generation, {}, {})
    # The same messages again, as a redelivery would bring them, then the end.
    (
        make("a") | make("b") | advance_signature(run.pk, run.generation, 99)
    ).apply_async()
    (make("a") | make("b")).apply_async()
    time.sleep(2)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    assert executions(count_dir, run.pk, "a") == 1
    assert executions(count_dir, run.pk, "b") == 1
    assert StepRun.objects.get(pk=rows["a"].pk).attempts == 1


def test_concurrent_duplicates_claim_once(worker, count_dir):
    workflow = count_workflow("a", count_dir, sleep=0.5)
    run = runs.start_run(workflow)
    make = step_signature_factory(run.pk, run.generation, {}, {})
    for _ in range(3):
        make("a").apply_async()
    run = wait_for_run(run)
    time.sleep(1.5)
    assert executions(count_dir, run.pk, "a") == 1
    assert run.step_runs.get(key="a").attempts == 1


def test_worker_killed_mid_step_loses_nothing(worker, tmp_path):
    marker = tmp_path / "killed"
    workflow = make_workflow(
        "a>b>c",
        "noop",
        overrides={"b": {"type": "suicide", "params": {"marker": str(marker)}}},
    )
    run = wait_for_run(runs.start_run(workflow), timeout=90)
    assert marker.exists(), "the step never killed its worker process"
    assert run.status == RunStatus.SUCCESS
    assert run.step_runs.get(key="b").result == "survived"
    assert run.step_runs.get(key="b").attempts == 2


def test_management_command_step_keeps_its_output(worker):
    workflow = make_workflow(
        "hello denied",
        "management_command",
        overrides={
            "hello": {"params": {"command": "testapp_hello", "args": ["world"]}},
            "denied": {"params": {"command": "flush", "args": ["--no-input"]}},
        },
    )
    run = wait_for_run(runs.start_run(workflow))
    hello = run.step_runs.get(key="hello")
    assert hello.status == StepStatus.SUCCESS
    assert "hello world" in hello.log
    denied = run.step_runs.get(key="denied")
    assert denied.status == StepStatus.FAILED
    assert "ALLOWED_COMMANDS" in denied.error


def test_cancel_interrupts_a_running_step_and_frees_its_worker(worker):
    workflow = make_workflow("long", "sleep", params={"seconds": 60})
    run = runs.start_run(workflow)
    wait_for_step(run, "long", {StepStatus.RUNNING})
    runs.cancel(run)
    attempt = StepRun.objects.get(run=run, key="long").history.get()
    deadline = time.monotonic() + 10  # HEARTBEAT_INTERVAL is 1 s in the tests
    while attempt.finished_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
        attempt.refresh_from_db()
    assert attempt.status == StepStatus.CANCELLED
    assert (attempt.finished_at - attempt.started_at).total_seconds() < 10
    after = wait_for_run(runs.start_run(make_workflow("a>b", slug="next")), timeout=20)
    assert after.status == RunStatus.SUCCESS


def test_sys_exit_in_a_step_fails_it_and_the_run_ends(worker):
    run = wait_for_run(runs.start_run(make_workflow("a>b c", "exit")), timeout=30)
    assert run.status == RunStatus.FAILED
    assert statuses(run) == {"a": "failed", "b": "upstream_failed", "c": "failed"}
    assert run.step_runs.get(key="a").error == "SystemExit: 3"
