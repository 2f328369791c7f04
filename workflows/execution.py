"""Execute one step of a run, idempotently: the body of the ``run_step`` task.

The database decides everything: whether this message may run the step at all
(its generation is current and it wins the claim), whether the upstream steps
succeeded, and where the outcome goes. Nothing raises into the canvas, so a
chord always completes and the steps after a failure settle themselves.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import timedelta

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F, Q
from django.utils import timezone

from workflows.conf import app_settings
from workflows.dag import json_errors
from workflows.exceptions import StepResultError, StepTimeout
from workflows.models import StepAttempt, StepRun, WorkflowRun
from workflows.registry import NotRegistered, StepContext, registry
from workflows.states import RUN_FINAL, STEP_FINAL, StepStatus

logger = logging.getLogger("workflows.execution")

OPEN = (StepStatus.PENDING, StepStatus.QUEUED)
ACTIVE = (StepStatus.RUNNING, StepStatus.RETRYING)


def worker_name() -> str:
    """Return ``host:pid`` of this process, as stored on the steps it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def execute_step(run_id: int, key: str, generation: int) -> str:
    """Run step *key* of run *run_id* if this message may; return what happened."""
    outcome = _execute(run_id, key, generation)
    if outcome in SETTLED:
        _after_step(run_id, key, generation, outcome)
    return outcome


SETTLED = {"success", "failed", "upstream_failed", "cancelled"}


def _execute(run_id: int, key: str, generation: int) -> str:
    run = (
        WorkflowRun.objects.filter(pk=run_id)
        .only("generation", "status", "params")
        .first()
    )
    if run is None or run.generation != generation or run.status in RUN_FINAL:
        return "stale"
    step_run = StepRun.objects.filter(run_id=run_id, key=key).first()
    if step_run is None:
        return "stale"
    upstream = _upstream(step_run)
    if _any_open(upstream):
        # The canvas moved on early (a duplicate delivery won a claim). Leave a
        # mark; the last upstream step to end sends this step again. Then look
        # once more, in case it ended between the two queries.
        _open_steps(run_id, key, generation).update(deferred=True)
        upstream = _upstream(step_run)
        if _any_open(upstream) or not _open_steps(run_id, key, generation).filter(
            deferred=True
        ).update(deferred=False):
            return "deferred"
    blocked = _blocked_status(upstream)
    if blocked:
        settled = _open_steps(run_id, key, generation).update(
            status=blocked,
            finished_at=timezone.now(),
            error="Not run: an upstream step was cancelled."
            if blocked == StepStatus.CANCELLED
            else "Not run: an upstream step failed.",
        )
        return str(blocked) if settled else "skipped"
    me = worker_name()
    if not _claim(step_run, generation, me):
        _watch(step_run, generation)
        return "skipped"
    inputs = {k: upstream[k].result for k in step_run.spec.get("after", [])}
    guard = _Guard()
    try:
        with guard, _heartbeat(step_run.pk, me, guard):  # also through retry delays
            return _attempts(step_run, run, inputs, me, guard)
    except StepCancelled:
        return "discarded"


def _upstream(step_run: StepRun) -> dict[str, StepRun]:
    after = step_run.spec.get("after", [])
    rows = StepRun.objects.filter(run_id=step_run.run_id, key__in=after)
    return {u.key: u for u in rows.only("key", "status", "result")}


def _any_open(upstream: dict[str, StepRun]) -> bool:
    return any(u.status not in STEP_FINAL for u in upstream.values())


def _after_step(run_id: int, key: str, generation: int, outcome: str) -> None:
    """Queue or send what follows the step; end the run after its last step."""
    from workflows import runs
    from workflows.compiler import step_signature_factory

    if outcome == "success":
        spec = StepRun.objects.filter(run_id=run_id, key=key).values("spec").first()
        runs.mark_queued(run_id, (spec or {}).get("spec", {}).get("next", []))

    deferred = list(
        StepRun.objects.filter(
            run_id=run_id, deferred=True, run__generation=generation
        ).only("key", "spec", "task_id")
    )
    for step_run in deferred:
        after = step_run.spec.get("after", [])
        if StepRun.objects.filter(run_id=run_id, key__in=after).not_final().exists():
            continue
        if StepRun.objects.filter(pk=step_run.pk, deferred=True).update(deferred=False):
            make = step_signature_factory(
                run_id, generation, {}, {step_run.key: step_run.spec.get("queue")}
            )
            make(step_run.key).apply_async()
    if not StepRun.objects.filter(run_id=run_id).not_final().exists():
        runs.finalize(run_id, generation)


def _open_steps(run_id: int, key: str, generation: int):
    return StepRun.objects.filter(
        run_id=run_id,
        key=key,
        status__in=OPEN,
        run__generation=generation,
    )


def _blocked_status(upstream: dict[str, StepRun]) -> str | None:
    statuses = {u.status for u in upstream.values()}
    if StepStatus.CANCELLED in statuses:
        return StepStatus.CANCELLED
    if statuses & {StepStatus.FAILED, StepStatus.UPSTREAM_FAILED}:
        return StepStatus.UPSTREAM_FAILED
    return None


def _claim(step_run: StepRun, generation: int, me: str) -> bool:
    """Take the step with one conditional UPDATE; False if another delivery has it.

    A step marked running may be taken over only when its process is known to
    be gone: same host and a dead pid, or a heartbeat older than STALE_AFTER.
    """
    now = timezone.now()
    mine = Q(status__in=OPEN)
    takeover = step_run.status in ACTIVE and _owner_is_gone(step_run, now)
    if takeover:
        mine = Q(status__in=ACTIVE, worker=step_run.worker)
    claimed = StepRun.objects.filter(
        mine, pk=step_run.pk, run__generation=generation
    ).update(
        status=StepStatus.RUNNING,
        worker=me,
        heartbeat_at=now,
        started_at=step_run.started_at or now,
        attempts=F("attempts") + 1,
    )
    if claimed and takeover:
        StepAttempt.objects.filter(
            step_run=step_run, status=StepStatus.RUNNING, worker=step_run.worker
        ).update(
            status=StepStatus.FAILED,
            finished_at=now,
            error=f"The worker process running it ({step_run.worker}) was lost.",
        )
    if claimed:
        step_run.refresh_from_db()
    return bool(claimed)


def _owner_is_gone(step_run: StepRun, now) -> bool:
    host, _, pid = step_run.worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return True
    limit = now - timedelta(seconds=app_settings.STALE_AFTER)
    return step_run.heartbeat_at is None or step_run.heartbeat_at < limit


def _alive(pid: int) -> bool:
    """Return whether process *pid* of this host still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a pool child that just died is a zombie until it is reaped
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _watch(step_run: StepRun, generation: int) -> None:
    """After a lost claim on a step that is running elsewhere, look again later.

    If its owner died in a way this delivery could not see (another host, a
    process not yet reaped), nothing else would ever send the step again; the
    delayed look takes it over once its heartbeat is stale, and does nothing
    if it has ended.
    """
    from workflows.compiler import step_signature_factory

    status = StepRun.objects.filter(pk=step_run.pk).values_list("status", flat=True)
    if status.first() in ACTIVE:
        make = step_signature_factory(
            step_run.run_id, generation, {}, {step_run.key: step_run.spec.get("queue")}
        )
        make(step_run.key).apply_async(countdown=app_settings.STALE_AFTER)


def _attempts(
    step_run: StepRun, run: WorkflowRun, inputs: dict, me: str, guard: _Guard
) -> str:
    spec = step_run.spec
    try:
        step_type = registry.get(spec["type"])
    except NotRegistered as exc:
        _finish(step_run, me, StepStatus.FAILED, error=str(exc))
        return "failed"
    retries = int(spec.get("retries") or 0)
    delay = float(spec.get("retry_delay") or 0)
    timeout = spec.get("timeout")
    while True:
        attempt = StepAttempt.objects.create(
            step_run=step_run,
            number=step_run.attempts,
            status=StepStatus.RUNNING,
            worker=me,
            started_at=timezone.now(),
        )
        context = StepContext(
            run_id=run.pk,
            step_key=step_run.key,
            attempt=step_run.attempts,
            run_params=run.params,
        )
        error = tb = ""
        try:
            value = _call(
                step_type.function, spec["params"], inputs, context, guard, timeout
            )
            stored = _storable(value)
        except StepTimeout as exc:
            error, tb = str(exc), ""
        except StepCancelled:
            attempt.status, attempt.finished_at = StepStatus.CANCELLED, timezone.now()
            attempt.error = "Cancelled while running."
            attempt.log = _cut("\n".join(context.lines))
            try:  # the signal may have cut a query short: never fail here
                attempt.save()
            except Exception:
                logger.exception(
                    "run %s step %s: attempt not saved", run.pk, step_run.key
                )
                connection.close()
            raise
        except BaseException as exc:  # sys.exit() in a step is a failure, too
            error, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
        error, tb = _text(error), _text(tb)
        log = _cut(_text("\n".join(context.lines)))
        attempt.finished_at = timezone.now()
        attempt.status = StepStatus.FAILED if error else StepStatus.SUCCESS
        attempt.error, attempt.traceback, attempt.log = error, tb, log
        attempt.save()
        if not error:
            try:
                done = _finish(step_run, me, StepStatus.SUCCESS, result=stored, log=log)
            except DatabaseError as exc:  # a value this database cannot store
                connection.close()
                error = _text(f"The result could not be stored: {exc}")
                done = _finish(step_run, me, StepStatus.FAILED, error=error, log=log)
                return "failed" if done else "discarded"
            return "success" if done else "discarded"
        if step_run.attempts > retries:
            done = _finish(
                step_run, me, StepStatus.FAILED, error=error, traceback=tb, log=log
            )
            return "failed" if done else "discarded"
        if not _mine(step_run, me).update(
            status=StepStatus.RETRYING, error=error, traceback=tb, log=log
        ):
            return "discarded"  # cancelled meanwhile
        time.sleep(delay)
        if not _mine(step_run, me, StepStatus.RETRYING).update(
            status=StepStatus.RUNNING,
            attempts=F("attempts") + 1,
            heartbeat_at=timezone.now(),
        ):
            return "discarded"
        step_run.refresh_from_db()


def _mine(step_run: StepRun, me: str, status: str = StepStatus.RUNNING):
    return StepRun.objects.filter(pk=step_run.pk, status=status, worker=me)


def _finish(step_run: StepRun, me: str, status: str, **fields) -> bool:
    """Write the outcome unless the step was cancelled or taken over meanwhile."""
    fields.setdefault("error", "")
    fields.setdefault("traceback", "")
    return bool(
        _mine(step_run, me).update(status=status, finished_at=timezone.now(), **fields)
    )


def _storable(value: object) -> object:
    """Return *value* if it can be stored as JSON, else raise StepResultError."""
    problems = json_errors(value, "the step's result")
    if problems:
        raise StepResultError(f"{problems[0]}; it cannot be stored as JSON.")
    text = json.dumps(value, ensure_ascii=False)
    size, limit = len(text.encode()), app_settings.RESULT_MAX_BYTES
    if size > limit:
        raise StepResultError(
            f"The step returned {size} bytes of JSON; the limit "
            f"(DAGFLOW['RESULT_MAX_BYTES']) is {limit}."
        )
    return json.loads(text)


def _text(text: str) -> str:
    """Return *text* storable in any database (PostgreSQL refuses NUL)."""
    return text.replace("\x00", "\\x00")


def _cut(text: str) -> str:
    limit = app_settings.LOG_MAX_CHARS
    return text if len(text) <= limit else "[…]\n" + text[-limit:]


class StepCancelled(BaseException):
    """Raised inside a running step whose run was cancelled.

    A BaseException, so that a step's own ``except Exception`` cannot swallow it.
    """


class _Guard:
    """SIGALRM in the main thread: the step's timeout, or its cancellation.

    Celery's prefork and solo pools run a task in a process's main thread, where
    one handler serves both: the timer of a timeout, and the heartbeat thread
    that finds the step cancelled and interrupts the function at once.
    """

    def __init__(self) -> None:
        self.main = threading.current_thread() is threading.main_thread()
        self.cancelled = False
        self.message = ""
        self._previous = None

    def __enter__(self) -> _Guard:
        if self.main:
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous or signal.SIG_DFL)

    def _alarm(self, signum, frame) -> None:
        if self.cancelled:
            raise StepCancelled()
        raise StepTimeout(self.message)

    def cancel(self) -> None:
        """Interrupt the step (called from the heartbeat thread)."""
        self.cancelled = True
        if self.main:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)


def _call(function, params, inputs, context: StepContext, guard: _Guard, timeout):
    """Call the step function, raising StepTimeout past *timeout* seconds.

    In a process's main thread a SIGALRM timer interrupts the function.
    Elsewhere (a threads pool) it runs in a helper thread that is abandoned
    when it overruns: Python cannot stop a thread.
    """
    if not timeout:
        return function(params, inputs, context)
    guard.message = f"Timed out after {timeout:g} seconds."
    if guard.main:
        deadline = time.monotonic() + float(timeout)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
        try:
            value = function(params, inputs, context)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if time.monotonic() > deadline:  # the function caught the StepTimeout
            raise StepTimeout(guard.message)
        return value
    box: dict = {}

    def target():
        try:
            box["value"] = function(params, inputs, context)
        except BaseException as exc:
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(float(timeout))
    if thread.is_alive():
        raise StepTimeout(guard.message)
    if "error" in box:
        raise box["error"]
    return box.get("value")


@contextmanager
def _heartbeat(step_run_id: int, me: str, guard: _Guard):
    """Refresh ``heartbeat_at`` while the step runs, from a side thread.

    When the step is no longer ours to run (cancelled, or taken over after a
    stale heartbeat), interrupt it rather than let it finish for nothing.
    """
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(app_settings.HEARTBEAT_INTERVAL):
                mine = StepRun.objects.filter(
                    pk=step_run_id, worker=me, status__in=ACTIVE
                )
                if mine.update(heartbeat_at=timezone.now()):
                    continue
                lost = StepRun.objects.filter(pk=step_run_id).exclude(
                    worker=me, status__in=STEP_FINAL - {StepStatus.CANCELLED}
                )
                if lost.exists() and not stop.is_set():
                    guard.cancel()
                return
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=beat, daemon=True, name="dagflow-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
