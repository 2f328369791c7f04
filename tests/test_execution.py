"""``execution.execute_step`` called in-process on runs set up by hand.

No worker and no broker: runs are started inside
``django_capture_on_commit_callbacks`` (so their first message is never sent),
and ``apply_async`` is replaced by a recorder, because a step that ends may
re-send a deferred step.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_workflow
from workflows import execution, runs
from workflows.compiler import RUN_STEP
from workflows.exceptions import StepTimeout
from workflows.models import StepRun, WorkflowRun
from workflows.registry import StepType, registry
from workflows.states import RunStatus, StepStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quiet_heartbeat(settings):
    """Keep the heartbeat thread off the database: steps here end in well under it."""
    settings.DAGFLOW = {**settings.DAGFLOW, "HEARTBEAT_INTERVAL": 60.0}


@pytest.fixture(autouse=True)
def nothing_is_sent(sent) -> list:
    """Record, never send, every signature (the ``sent`` fixture of conftest)."""
    return sent


@pytest.fixture
def start(django_capture_on_commit_callbacks):
    """Return a function that starts a run of a shape; nothing is dispatched."""

    def start(shape, step_type="noop", params=None, run_params=None, **options):
        workflow = make_workflow(shape, step_type, params=params or {}, **options)
        with django_capture_on_commit_callbacks() as callbacks:
            run = runs.start_run(workflow, run_params)
        assert len(callbacks) == 1  # captured, never executed
        return run

    return start


@pytest.fixture
def temporary_type(monkeypatch):
    """Register a step type for one test only."""

    def register(name, function, **options):
        step_type = StepType(name=name, function=function, label=name, **options)
        monkeypatch.setitem(registry._registry, name, step_type)

    return register


def execute(run, key, generation=None) -> str:
    generation = run.generation if generation is None else generation
    return execution.execute_step(run.pk, key, generation)


def row(run, key) -> StepRun:
    return StepRun.objects.get(run=run, key=key)


def history(run, key) -> list[tuple[int, str]]:
    return list(row(run, key).history.values_list("number", "status"))


def test_success_stores_result_and_attempt(start, sent):
    run = start("a>b", "add", params={"value": 5})
    assert execute(run, "a") == "success"
    a = row(run, "a")
    assert a.status == StepStatus.SUCCESS
    assert a.result == 5
    assert a.attempts == 1
    assert a.worker == execution.worker_name()
    assert a.started_at <= a.finished_at
    assert (a.error, a.traceback) == ("", "")
    assert history(run, "a") == [(1, "success")]
    attempt = a.history.get()
    assert attempt.worker == a.worker and attempt.finished_at is not None
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    assert execute(run, "b") == "success"
    assert row(run, "b").result == 10  # its value plus a's result
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS  # the last step ends the run
    assert run.finished_at is not None
    assert sent == []


def test_inputs_and_run_params_reach_the_function(start, temporary_type):
    seen = {}

    def spy(params, inputs, context):
        seen.update(
            params=params,
            inputs=inputs,
            run_params=context.run_params,
            key=context.step_key,
            attempt=context.attempt,
            run_id=context.run_id,
        )
        return "ok"

    temporary_type("spy", spy)
    run = start("a>c b>c", "echo", params={"p": 1}, run_params={"day": "mon"})
    StepRun.objects.filter(run=run, key="c").update(
        spec={**row(run, "c").spec, "type": "spy"}
    )
    execute(run, "a")
    execute(run, "b")
    assert execute(run, "c") == "success"
    echo = {"params": {"p": 1}, "inputs": {}}
    assert seen == {
        "params": {"p": 1},
        "inputs": {"a": echo, "b": echo},
        "run_params": {"day": "mon"},
        "key": "c",
        "attempt": 1,
        "run_id": run.pk,
    }


def test_stale_generation_does_nothing(start):
    run = start("a")
    assert execute(run, "a", generation=2) == "stale"
    assert execute(run, "a", generation=0) == "stale"
    a = row(run, "a")
    assert (a.status, a.attempts, a.history.count()) == ("pending", 0, 0)


def test_unknown_run_or_step_and_final_runs_do_nothing(start):
    run = start("a")
    assert execution.execute_step(run.pk + 1000, "a", 1) == "stale"
    assert execute(run, "ghost") == "stale"
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    assert execute(run, "a") == "stale"
    assert row(run, "a").attempts == 0


def test_a_second_delivery_after_success_does_nothing(start):
    run = start("a>b", "echo")
    assert execute(run, "a") == "success"
    finished = row(run, "a").finished_at
    assert execute(run, "a") == "skipped"  # the run goes on: the claim refuses
    a = row(run, "a")
    assert a.attempts == 1
    assert a.finished_at == finished
    assert history(run, "a") == [(1, "success")]
    assert execute(run, "b") == "success"
    assert execute(run, "a") == "stale"  # the run ended
    assert execute(run, "b") == "stale"
    assert row(run, "a").attempts == row(run, "b").attempts == 1


def test_cancelled_run_makes_in_flight_messages_stale(start):
    run = start("a>b")
    runs.cancel(run)
    assert execute(run, "a", generation=1) == "stale"
    assert row(run, "a").status == StepStatus.CANCELLED


@pytest.mark.parametrize("failure", [StepStatus.FAILED, StepStatus.UPSTREAM_FAILED])
def test_upstream_failed_marks_the_step_and_its_downstream(start, failure):
    run = start("a>b>c x")
    StepRun.objects.filter(run=run, key="a").update(status=failure)
    assert execute(run, "b") == "upstream_failed"
    b = row(run, "b")
    assert b.status == StepStatus.UPSTREAM_FAILED
    assert b.error == "Not run: an upstream step failed."
    assert b.attempts == 0 and b.history.count() == 0
    assert execute(run, "c") == "upstream_failed"
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    assert execute(run, "x") == "success"  # an independent branch goes on
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_upstream_cancelled_cancels_the_step(start):
    run = start("a>c b>c")
    StepRun.objects.filter(run=run, key="a").update(status=StepStatus.CANCELLED)
    StepRun.objects.filter(run=run, key="b").update(status=StepStatus.FAILED)
    assert execute(run, "c") == "cancelled"
    c = row(run, "c")
    assert c.status == StepStatus.CANCELLED
    assert c.error == "Not run: an upstream step was cancelled."


@pytest.mark.parametrize(
    "upstream",
    [StepStatus.PENDING, StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.RETRYING],
)
def test_upstream_not_final_defers_the_step(start, sent, upstream):
    run = start("a>b")
    StepRun.objects.filter(run=run, key="a").update(status=upstream)
    assert execute(run, "b") == "deferred"
    b = row(run, "b")
    assert b.deferred is True
    assert b.status == StepStatus.PENDING
    assert b.attempts == 0
    assert sent == []


def test_the_last_upstream_to_end_resends_a_deferred_step(start, sent):
    run = start("a>c b>c")
    assert execute(run, "c") == "deferred"
    assert execute(run, "a") == "success"
    assert sent == []  # b has not ended: c must wait
    assert row(run, "c").deferred is True
    assert execute(run, "b") == "success"
    assert [(s["task"], s.args) for s in sent] == [(RUN_STEP, (run.pk, "c", 1))]
    assert sent[0].immutable
    assert row(run, "c").deferred is False
    assert execute(run, "c") == "success"
    assert len(sent) == 1


def test_the_run_ends_only_with_its_last_step(start):
    run = start("a b")
    execute(run, "a")
    assert WorkflowRun.objects.get(pk=run.pk).finished_at is None
    execute(run, "b")
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.SUCCESS


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def mark_running(run, key, worker, heartbeat_age=0.0, attempts=1):
    StepRun.objects.filter(run=run, key=key).update(
        status=StepStatus.RUNNING,
        worker=worker,
        attempts=attempts,
        started_at=timezone.now() - timedelta(seconds=heartbeat_age),
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age),
    )


def test_a_step_claimed_by_a_dead_process_on_this_host_is_taken_over(start):
    run = start("a", "echo")
    mark_running(run, "a", f"{socket.gethostname()}:{dead_pid()}")
    assert execute(run, "a") == "success"
    a = row(run, "a")
    assert a.worker == execution.worker_name()
    assert a.attempts == 2
    assert history(run, "a") == [(2, "success")]


def test_a_live_owner_with_a_fresh_heartbeat_keeps_its_step(start):
    run = start("a", "echo")
    owner = f"{socket.gethostname()}:{os.getppid()}"
    mark_running(run, "a", owner)
    assert execute(run, "a") == "skipped"
    a = row(run, "a")
    assert (a.status, a.worker, a.attempts) == ("running", owner, 1)
    assert a.history.count() == 0


def test_another_hosts_step_is_taken_over_only_when_its_heartbeat_is_stale(
    start, settings
):
    run = start("a b", "echo")
    mark_running(run, "a", "elsewhere:123", heartbeat_age=5)
    mark_running(run, "b", "elsewhere:123", heartbeat_age=15)
    # tests/settings.py: STALE_AFTER = 10 seconds
    assert execute(run, "a") == "skipped"
    assert execute(run, "b") == "success"
    assert row(run, "a").worker == "elsewhere:123"
    assert row(run, "b").worker == execution.worker_name()


def test_a_result_that_is_not_json_fails_the_step(start):
    run = start("a>b", "unjsonable")
    assert execute(run, "a") == "failed"
    a = row(run, "a")
    assert a.status == StepStatus.FAILED
    assert a.result is None
    assert "cannot be stored as JSON" in a.error
    assert a.error.startswith("StepResultError: ")
    assert history(run, "a") == [(1, "failed")]
    assert execute(run, "b") == "upstream_failed"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_result_with_nan_fails_the_step(start, temporary_type, value):
    temporary_type("nan", lambda p, i, c: {"x": value})
    run = start("a", "nan")
    assert execute(run, "a") == "failed"
    assert "cannot be stored as JSON" in row(run, "a").error


def test_a_result_over_result_max_bytes_fails_the_step(start, settings):
    settings.DAGFLOW = {**settings.DAGFLOW, "RESULT_MAX_BYTES": 100}
    run = start("small big", "echo")
    StepRun.objects.filter(run=run, key="big").update(
        spec={**row(run, "big").spec, "params": {"text": "x" * 200}}
    )
    assert execute(run, "small") == "success"
    assert execute(run, "big") == "failed"
    big = row(run, "big")
    assert big.result is None
    assert "RESULT_MAX_BYTES" in big.error
    assert "the limit (DAGFLOW['RESULT_MAX_BYTES']) is 100" in big.error


def test_an_unregistered_type_fails_the_step(start):
    run = start("a>b")
    StepRun.objects.filter(run=run, key="a").update(
        spec={**row(run, "a").spec, "type": "uninstalled"}
    )
    assert execute(run, "a") == "failed"
    a = row(run, "a")
    assert a.status == StepStatus.FAILED
    assert "Unknown step type 'uninstalled'" in a.error
    assert execute(run, "b") == "upstream_failed"


@pytest.mark.parametrize(
    ("times", "retries", "outcome", "attempts"),
    [
        (None, 0, "failed", 1),
        (None, 2, "failed", 3),
        (0, 0, "success", 1),
        (1, 1, "success", 2),
        (2, 2, "success", 3),
        (2, 1, "failed", 2),
    ],
)
def test_fail_step_times(start, times, retries, outcome, attempts):
    params = {"message": "drill"}
    if times is not None:
        params["times"] = times
    run = start("a", "fail", params=params, retries=retries, retry_delay=0)
    assert execute(run, "a") == outcome
    a = row(run, "a")
    assert a.status == outcome
    assert a.attempts == attempts
    expected = ["failed"] * (attempts - 1) + [outcome]
    assert [s for _n, s in history(run, "a")] == expected
    assert [n for n, _s in history(run, "a")] == list(range(1, attempts + 1))
    if outcome == "failed":
        assert a.error == "RuntimeError: drill"
        assert "RuntimeError: drill" in a.traceback
    else:
        assert a.error == ""
        if times:
            assert f"attempt {attempts} > times={times}" in a.log


def test_timeout_in_the_main_thread_raises_step_timeout(start):
    assert threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGALRM)
    run = start("a", "sleep", params={"seconds": 30}, timeout=0.2)
    assert execute(run, "a") == "failed"
    a = row(run, "a")
    assert a.error == "Timed out after 0.2 seconds."
    assert a.traceback == ""
    assert signal.getsignal(signal.SIGALRM) is handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_call_raises_step_timeout_directly():
    def slow(params, inputs, context):
        threading.Event().wait(30)

    with (
        execution._Guard() as guard,
        pytest.raises(StepTimeout, match=r"^Timed out after 0\.1 seconds\.$"),
    ):
        execution._call(slow, {}, {}, None, guard, 0.1)
    with execution._Guard() as guard:
        assert execution._call(lambda p, i, c: 7, {}, {}, None, guard, 5) == 7
        assert execution._call(lambda p, i, c: 8, {}, {}, None, guard, None) == 8


def test_guard_interrupts_a_running_step_when_cancelled():
    def slow(params, inputs, context):
        threading.Timer(0.1, guard.cancel).start()
        threading.Event().wait(30)

    with (
        execution._Guard() as guard,
        pytest.raises(execution.StepCancelled),
    ):
        execution._call(slow, {}, {}, None, guard, None)


def test_a_step_cancelled_while_it_runs_keeps_cancelled(start, temporary_type):
    def cancel_my_run(params, inputs, context):
        runs.cancel(WorkflowRun.objects.get(pk=context.run_id))
        return "late"

    temporary_type("cancel_my_run", cancel_my_run)
    run = start("a>b", "cancel_my_run")
    assert execute(run, "a") == "discarded"
    a = row(run, "a")
    assert a.status == StepStatus.CANCELLED
    assert a.result is None
    assert history(run, "a") == [(1, "success")]  # the function did return
    assert row(run, "b").status == StepStatus.CANCELLED


def test_context_log_is_kept_and_cut(start, temporary_type, settings):
    settings.DAGFLOW = {**settings.DAGFLOW, "LOG_MAX_CHARS": 10}

    def chatty(params, inputs, context):
        context.log("first line")
        context.log("0123456789")
        return None

    temporary_type("chatty", chatty)
    run = start("a", "chatty")
    assert execute(run, "a") == "success"
    assert row(run, "a").log == "[…]\n0123456789"
    assert row(run, "a").history.get().log == "[…]\n0123456789"


def test_management_command_step_keeps_its_output(start):
    run = start(
        "hello",
        "management_command",
        params={"command": "testapp_hello", "args": ["unit"]},
    )
    assert execute(run, "hello") == "success"
    hello = row(run, "hello")
    assert hello.result == {"command": "testapp_hello", "args": ["unit"]}
    assert "hello unit" in hello.log


def test_management_command_not_allowed_fails(start):
    run = start("a", "management_command", params={"command": "flush"})
    assert execute(run, "a") == "failed"
    assert "ALLOWED_COMMANDS" in row(run, "a").error


def test_success_queues_the_next_steps_whose_upstream_all_succeeded(start):
    run = start("a>c b>c a>d")
    assert execute(run, "a") == "success"
    assert row(run, "d").status == StepStatus.QUEUED  # a was its only upstream
    assert row(run, "c").status == StepStatus.PENDING  # still waits for b
    assert execute(run, "b") == "success"
    assert row(run, "c").status == StepStatus.QUEUED


def test_taking_over_closes_the_lost_attempt(start):
    run = start("a", "echo")
    lost = f"{socket.gethostname()}:{dead_pid()}"
    mark_running(run, "a", lost)
    StepRun.objects.get(run=run, key="a").history.create(
        number=1, status=StepStatus.RUNNING, worker=lost, started_at=timezone.now()
    )
    assert execute(run, "a") == "success"
    assert history(run, "a") == [(1, "failed"), (2, "success")]
    assert "was lost" in row(run, "a").history.get(number=1).error


def test_a_lost_claim_on_a_running_step_looks_again_later(start, sent, settings):
    run = start("a", "echo")
    mark_running(run, "a", "elsewhere:123", heartbeat_age=1)
    assert execute(run, "a") == "skipped"
    (watch,) = sent
    assert watch.task == RUN_STEP and watch.args == (run.pk, "a", run.generation)
    sent.clear()
    StepRun.objects.filter(run=run, key="a").update(status=StepStatus.SUCCESS)
    assert execute(run, "a") == "skipped"
    assert sent == []  # an ended step is not watched


@pytest.mark.parametrize(
    "raised", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()], ids=repr
)
def test_base_exceptions_in_a_step_fail_it(start, temporary_type, raised):
    def boom(params, inputs, context):
        raise raised

    temporary_type("boom", boom)
    run = start("a>b", "boom")
    assert execute(run, "a") == "failed"
    assert row(run, "a").error.startswith(type(raised).__name__)
    assert execute(run, "b") == "upstream_failed"


def test_nul_characters_never_reach_the_database(start, temporary_type):
    def nul(params, inputs, context):
        context.log("before\x00after")
        if params.get("raise"):
            raise RuntimeError("bad\x00byte")
        return {"text": "a\x00b"}

    temporary_type("nul", nul)
    run = start("a b", "nul", overrides={"b": {"params": {"raise": True}}})
    assert execute(run, "a") == "failed"
    assert "NUL" in row(run, "a").error
    assert "before\\x00after" in row(run, "a").log
    assert execute(run, "b") == "failed"
    assert "bad\\x00byte" in row(run, "b").error


def test_a_step_that_swallows_its_timeout_still_times_out(start, temporary_type):
    def swallow(params, inputs, context):
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            with contextlib.suppress(BaseException):  # the worst a step can do
                time.sleep(0.02)
        return "late"

    temporary_type("swallow", swallow)
    run = start("a", "swallow", timeout=0.2)
    assert execute(run, "a") == "failed"
    assert row(run, "a").error == "Timed out after 0.2 seconds."


def test_result_size_is_counted_in_utf8_bytes(start, temporary_type, settings):
    settings.DAGFLOW = {**settings.DAGFLOW, "RESULT_MAX_BYTES": 1000}
    temporary_type("accents", lambda p, i, c: "é" * 450)  # 902 bytes, 2,702 escaped
    run = start("a", "accents")
    assert execute(run, "a") == "success"
