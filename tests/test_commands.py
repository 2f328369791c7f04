"""The ``workflow_*`` management commands: output, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from tests.conftest import _worker_database_url, wait_for_run
from workflows.models import Step, StepRun, Workflow, WorkflowRun
from workflows.runs import run_status, start_run
from workflows.spec import export_workflow, import_workflow
from workflows.states import RunStatus, StepStatus

ROOT = Path(__file__).resolve().parent.parent

FULL_SPEC = {
    "slug": "full",
    "name": "Full workflow",
    "description": "Every field the format has.\nOn two lines, with ünicode.",
    "params_schema": {
        "type": "object",
        "properties": {"limit": {"type": "integer", "minimum": 1}},
        "required": ["limit"],
    },
    "layout": {"extract": {"x": 10, "y": 20}, "load": {"x": 200.5, "y": 20}},
    "steps": [
        {
            "key": "extract",
            "type": "echo",
            "params": {"source": "a.csv", "nested": {"list": [1, 2, None]}},
            "after": [],
            "label": "Extract rows",
            "retries": 3,
            "retry_delay": 1.5,
            "timeout": 30.0,
        },
        {"key": "count", "type": "add", "params": {"value": 2}, "after": ["extract"]},
        {
            "key": "nap",
            "type": "sleep",
            "params": {"seconds": 0.01},
            "after": ["extract"],
            "retries": 0,
            "retry_delay": 0.0,
        },
        {
            "key": "load",
            "type": "noop",
            "params": {},
            "after": ["count", "nap"],
            "label": "Load",
            "timeout": 0.5,
        },
    ],
}


def run(name: str, *args, **options) -> tuple[str, str]:
    """Call command *name*; return its (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def refused(name: str, *args, **options) -> str:
    """Call command *name*, expect a CommandError, return its one-line message."""
    with pytest.raises(CommandError) as info:
        run(name, *args, **options)
    message = str(info.value)
    assert "\n" not in message
    return message


def write_json(tmp_path: Path, data, name: str = "wf.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def step_rows(workflow: Workflow) -> list[tuple]:
    """Every stored field of the steps of *workflow*, upstream keys included."""
    return [
        (
            s.key,
            s.step_type,
            s.params,
            s.label,
            s.retries,
            s.retry_delay,
            s.timeout,
            s.position,
            sorted(u.key for u in s.upstream.all()),
        )
        for s in Step.objects.filter(workflow=workflow).order_by("position")
    ]


@pytest.fixture
def simple(db) -> Workflow:
    return import_workflow(
        {
            "slug": "simple",
            "name": "Simple",
            "params_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
            },
            "steps": [
                {"key": "a", "type": "noop"},
                {"key": "b", "type": "echo", "after": ["a"]},
                {"key": "c", "type": "noop", "after": ["b"]},
            ],
        }
    )


def ended(run: WorkflowRun, statuses: dict[str, str]) -> WorkflowRun:
    """Put *run* in the state a worker would leave it in (for the no-worker tests)."""
    now = timezone.now()
    for key, status in statuses.items():
        StepRun.objects.filter(run=run, key=key).update(
            status=status, attempts=1, started_at=now, finished_at=now
        )
    final = (
        RunStatus.FAILED
        if {StepStatus.FAILED, StepStatus.UPSTREAM_FAILED} & set(statuses.values())
        else RunStatus.SUCCESS
    )
    WorkflowRun.objects.filter(pk=run.pk).update(
        status=final, started_at=now, finished_at=now
    )
    run.refresh_from_db()
    return run


# --- workflow_import ---------------------------------------------------------


def test_import_creates_then_updates(db, tmp_path):
    path = write_json(tmp_path, FULL_SPEC)
    out, _ = run("workflow_import", str(path))
    assert out.strip() == "Created workflow 'full' (4 steps, version 2)."
    workflow = Workflow.objects.get(slug="full")
    assert workflow.name == "Full workflow"
    assert workflow.params_schema == FULL_SPEC["params_schema"]

    changed = {**FULL_SPEC, "name": "Renamed", "steps": FULL_SPEC["steps"][:1]}
    out, _ = run("workflow_import", str(write_json(tmp_path, changed)))
    assert out.strip() == "Updated workflow 'full' (1 step, version 3)."
    workflow.refresh_from_db()
    assert workflow.name == "Renamed"
    assert list(workflow.steps.values_list("key", flat=True)) == ["extract"]


def test_import_reads_stdin(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(FULL_SPEC)))
    out, _ = run("workflow_import", "-")
    assert "Created workflow 'full'" in out
    assert Workflow.objects.filter(slug="full").exists()


def test_import_missing_file(db, tmp_path):
    message = refused("workflow_import", str(tmp_path / "nope.json"))
    assert (
        message == f"Cannot read {tmp_path / 'nope.json'}: No such file or directory."
    )


def test_import_directory(db, tmp_path):
    assert refused("workflow_import", str(tmp_path)).startswith(
        f"Cannot read {tmp_path}"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "is not valid JSON: Expecting property name"),
        (b"", "is not valid JSON: Expecting value: line 1 column 1"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
    ],
)
def test_import_unreadable_content(db, tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    message = refused("workflow_import", str(path))
    assert message.startswith(str(path))
    assert expected in message


def test_import_invalid_json_on_stdin(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("[1,"))
    assert refused("workflow_import", "-").startswith(
        "standard input is not valid JSON:"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2], "a workflow must be a JSON object"),
        ({"name": "no slug", "steps": []}, "slug is required"),
        (
            {
                "slug": "cyc",
                "steps": [
                    {"key": "a", "type": "noop", "after": ["b"]},
                    {"key": "b", "type": "noop", "after": ["a"]},
                ],
            },
            "cycle: a -> b -> a",
        ),
        (
            {
                "slug": "selfloop",
                "steps": [{"key": "a", "type": "noop", "after": ["a"]}],
            },
            "a",
        ),
        (
            {"slug": "unk", "steps": [{"key": "a", "type": "no_such_type"}]},
            "no_such_type",
        ),
        (
            {"slug": "dup", "steps": [{"key": "a", "type": "noop"}] * 2},
            "a",
        ),
        (
            {"slug": "miss", "steps": [{"key": "a", "type": "noop", "after": ["zz"]}]},
            "zz",
        ),
        (
            {
                "slug": "badp",
                "steps": [{"key": "a", "type": "sleep", "params": {"seconds": "long"}}],
            },
            "seconds",
        ),
        ({"slug": "sch", "params_schema": {"type": 12}, "steps": []}, "params_schema"),
    ],
)
def test_import_invalid_workflow_saves_nothing(db, tmp_path, data, expected):
    message = refused("workflow_import", str(write_json(tmp_path, data)))
    assert message.startswith(f"Invalid workflow in {tmp_path / 'wf.json'}: ")
    assert expected in message
    assert not Workflow.objects.exists()


def test_import_refused_update_keeps_the_old_workflow(simple, tmp_path):
    before = step_rows(simple)
    broken = {
        "slug": "simple",
        "name": "Broken",
        "steps": [{"key": "x", "type": "noop", "after": ["x"]}],
    }
    refused("workflow_import", str(write_json(tmp_path, broken)))
    simple.refresh_from_db()
    assert simple.name == "Simple"
    assert step_rows(simple) == before


# --- workflow_export ---------------------------------------------------------


def test_export_prints_the_imported_spec(db):
    import_workflow(FULL_SPEC)
    out, _ = run("workflow_export", "full")
    assert out.startswith('{\n  "slug": "full",')  # indent 2
    assert json.loads(out) == FULL_SPEC


def test_export_import_round_trip_is_lossless(db, tmp_path):
    original = import_workflow(FULL_SPEC)
    path = tmp_path / "full.json"
    out, _ = run("workflow_export", "full", output=str(path))
    assert out.strip() == f"Exported workflow 'full' to {path}."
    exported = json.loads(path.read_text(encoding="utf-8"))

    # Into a fresh database (the original deleted) ...
    rows_before = step_rows(original)
    fields = ("name", "description", "params_schema", "layout")
    before = {f: getattr(original, f) for f in fields}
    original.delete()
    run("workflow_import", str(path))
    again = Workflow.objects.get(slug="full")
    assert {f: getattr(again, f) for f in fields} == before
    assert step_rows(again) == rows_before

    # ... and over itself: nothing changes but the version.
    run("workflow_import", str(path))
    out, _ = run("workflow_export", "full")
    assert json.loads(out) == exported == FULL_SPEC

    # Under another slug: the same steps, field for field.
    run("workflow_import", str(write_json(tmp_path, {**exported, "slug": "copy"})))
    assert step_rows(Workflow.objects.get(slug="copy")) == rows_before


def test_export_round_trip_of_a_minimal_workflow(simple, tmp_path):
    out, _ = run("workflow_export", "simple")
    data = json.loads(out)
    assert "layout" not in data
    simple.delete()
    run("workflow_import", str(write_json(tmp_path, data)))
    assert export_workflow(Workflow.objects.get(slug="simple")) == data


def test_export_unknown_slug(db):
    assert refused("workflow_export", "nope") == "No workflow with slug 'nope'."


def test_export_unwritable_output(simple, tmp_path):
    target = tmp_path / "missing-dir" / "out.json"
    message = refused("workflow_export", "simple", output=str(target))
    assert message == f"Cannot write {target}: No such file or directory."


# --- workflow_run (no worker: the message is sent on commit, never here) -----


def test_run_prints_the_run_id(simple):
    out, err = run("workflow_run", "simple", params='{"n": 3}')
    new = WorkflowRun.objects.get()
    assert out == f"{new.pk}\n"
    assert err == ""
    assert new.params == {"n": 3}
    assert new.status == RunStatus.PENDING
    assert sorted(new.step_runs.values_list("key", flat=True)) == ["a", "b", "c"]


def test_run_without_params(simple):
    run("workflow_run", "simple")
    assert WorkflowRun.objects.get().params == {}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nope"], "No workflow with slug 'nope'."),
        (["simple", "--params", "{bad"], "--params is not valid JSON: Expecting"),
        (["simple", "--params", "[1]"], "--params must be a JSON object, not list."),
        (
            ["simple", "--params", '{"n": "three"}'],
            "Cannot start 'simple': run params invalid: n: 'three' is not of type",
        ),
        (["simple", "--timeout", "5"], "--timeout only applies together with --wait."),
        (["simple", "--wait", "--timeout", "soon"], "Expected a number of seconds"),
        (["simple", "--wait", "--timeout", "-1"], "Expected a positive number"),
        (["simple", "--wait", "--timeout", "nan"], "Expected a positive number"),
    ],
)
def test_run_refusals_start_nothing(simple, args, expected):
    assert refused("workflow_run", *args).startswith(expected)
    assert not WorkflowRun.objects.exists()


def test_run_refuses_an_invalid_stored_workflow(simple):
    Step.objects.filter(workflow=simple, key="a").update(step_type="vanished")
    message = refused("workflow_run", "simple")
    assert message.startswith("Cannot start 'simple': ")
    assert "vanished" in message


def test_run_wait_timeout(simple):
    # In a test transaction nothing is sent, so the run stays pending.
    started = time.monotonic()
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command(
            "workflow_run",
            "simple",
            wait=True,
            timeout="0.4",
            stdout=out,
            stderr=io.StringIO(),
        )
    assert 0.4 <= time.monotonic() - started < 5
    new = WorkflowRun.objects.get()
    assert str(info.value) == (
        f"Timed out after 0.4s waiting for run {new.pk} (still pending); "
        "it goes on in the workers."
    )
    assert json.loads(out.getvalue())["status"] == "pending"


# --- workflow_status ---------------------------------------------------------


def test_status_json_is_run_status(simple):
    new = ended(start_run(simple, {"n": 1}), {"a": "success", "b": "failed"})
    out, _ = run("workflow_status", str(new.pk), json=True)
    assert json.loads(out) == json.loads(json.dumps(run_status(new)))
    assert json.loads(out)["steps"]["b"]["status"] == "failed"


def test_status_table(simple):
    new = start_run(simple, {"n": 1})
    new = ended(new, {"a": "success", "b": "failed", "c": "upstream_failed"})
    StepRun.objects.filter(run=new, key="a").update(result={"rows": list(range(50))})
    StepRun.objects.filter(run=new, key="b").update(
        attempts=3, error="ValueError: bad row 7\nTraceback line two"
    )
    out, _ = run("workflow_status", new.pk)
    lines = out.splitlines()
    assert lines[0] == f"Run {new.pk} of simple: failed"
    assert lines[1] == '  params:   {"n": 1}'
    for label in ("created:", "started:", "finished:"):
        assert any(line.strip().startswith(label) for line in lines[2:5])
    assert "1 success, 1 failed, 1 upstream_failed" in out
    header = next(i for i, line in enumerate(lines) if line.startswith("KEY"))
    assert lines[header].split() == [
        "KEY",
        "STATUS",
        "ATTEMPTS",
        "STARTED",
        "FINISHED",
        "RESULT",
        "ERROR",
    ]
    rows = {line.split()[0]: line for line in lines[header + 1 :]}
    assert set(rows) == {"a", "b", "c"}
    assert rows["a"].split()[1:3] == ["success", "1"]
    assert '{"rows": [0, 1, 2,' in rows["a"]
    assert rows["a"].rstrip().endswith("…")  # long results are cut short
    assert rows["b"].split()[1:3] == ["failed", "3"]
    assert rows["b"].endswith("ValueError: bad row 7")  # first line of the error
    assert "Traceback" not in out


def test_status_of_a_pending_run(simple):
    new = start_run(simple)
    out, _ = run("workflow_status", new.pk)
    assert out.splitlines()[0] == f"Run {new.pk} of simple: pending"
    assert "  started:  -" in out
    assert "3 pending" in out


@pytest.mark.parametrize("command", ["workflow_status", "workflow_cancel"])
def test_unknown_or_malformed_run_id(db, command):
    assert refused(command, "999") == "No run with id 999."
    assert refused(command, "abc") == "Run id must be a whole number, not 'abc'."


# --- workflow_rerun ----------------------------------------------------------


def test_rerun_failed(simple):
    new = ended(
        start_run(simple), {"a": "success", "b": "failed", "c": "upstream_failed"}
    )
    out, _ = run("workflow_rerun", str(new.pk), failed=True)
    assert out == f"{new.pk}\n"
    new.refresh_from_db()
    assert new.status == RunStatus.PENDING
    assert new.generation == 2
    assert new.dispatch_keys == ["b", "c"]
    assert new.step_runs.get(key="a").status == StepStatus.SUCCESS


def test_rerun_from_a_step(simple):
    new = ended(start_run(simple), {"a": "success", "b": "success", "c": "success"})
    run("workflow_rerun", str(new.pk), "--from", "b")
    new.refresh_from_db()
    assert new.dispatch_keys == ["b", "c"]
    assert new.status == RunStatus.PENDING


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "Error: one of the arguments --failed --from is required"),
        (["--failed", "--from", "a"], "Error: argument --from: not allowed with"),
        (["--from", ""], "Give exactly one of --failed or --from STEP_KEY."),
        (["--from", "zzz"], "Cannot rerun: Run {pk} has no step 'zzz'."),
        (["--failed"], "Cannot rerun: Run {pk} has no failed steps to rerun."),
        (
            ["--failed", "--timeout", "3"],
            "--timeout only applies together with --wait.",
        ),
    ],
)
def test_rerun_refusals(simple, args, expected):
    new = ended(start_run(simple), {"a": "success", "b": "success", "c": "success"})
    message = refused("workflow_rerun", str(new.pk), *args)
    assert message.startswith(expected.format(pk=new.pk))
    new.refresh_from_db()
    assert (new.status, new.generation) == (RunStatus.SUCCESS, 1)


def test_rerun_refuses_a_run_in_flight(simple):
    new = start_run(simple)
    assert refused("workflow_rerun", str(new.pk), failed=True) == (
        f"Cannot rerun: Run {new.pk} is pending; wait for it to end (or cancel it) "
        "before rerunning steps."
    )


def test_rerun_unknown_run(db):
    assert refused("workflow_rerun", "12345", failed=True) == "No run with id 12345."


# --- workflow_cancel ---------------------------------------------------------


def test_cancel(simple):
    new = start_run(simple)
    StepRun.objects.filter(run=new, key="a").update(status=StepStatus.SUCCESS)
    out, _ = run("workflow_cancel", str(new.pk))
    assert out.strip() == f"Cancelled run {new.pk} (2 steps cancelled)."
    new.refresh_from_db()
    assert new.status == RunStatus.CANCELLED
    statuses = dict(new.step_runs.values_list("key", "status"))
    assert statuses == {"a": "success", "b": "cancelled", "c": "cancelled"}

    assert refused("workflow_cancel", str(new.pk)) == (
        f"Cannot cancel: Run {new.pk} already ended (cancelled)."
    )


# --- workflow_reconcile ------------------------------------------------------


def age(run: WorkflowRun, seconds: float) -> None:
    WorkflowRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_reconcile_resumes_stalled_runs_only(simple):
    stalled = start_run(simple)
    age(stalled, 1000)
    StepRun.objects.filter(run=stalled, key="a").update(
        status=StepStatus.SUCCESS, finished_at=timezone.now() - timedelta(hours=1)
    )
    StepRun.objects.filter(run=stalled, key="b").update(status=StepStatus.QUEUED)
    fresh = start_run(simple)
    moving = start_run(simple)
    age(moving, 1000)
    StepRun.objects.filter(run=moving, key="a").update(
        status=StepStatus.RUNNING, heartbeat_at=timezone.now()
    )
    done = ended(start_run(simple), {"a": "success", "b": "success", "c": "success"})
    age(done, 1000)

    out, _ = run("workflow_reconcile", older_than="600", dry_run=True)
    assert f"Would resume run {stalled.pk} (simple, pending" in out
    assert "1 stalled run(s); dry run, none resumed." in out
    for other in (fresh, moving, done):
        assert f"run {other.pk} " not in out
    stalled.refresh_from_db()
    assert stalled.generation == 1

    out, _ = run("workflow_reconcile", "--older-than", "600")
    assert f"Resumed run {stalled.pk} (simple, pending" in out
    assert "Resumed 1 of 1 stalled run(s)." in out
    stalled.refresh_from_db()
    assert stalled.generation == 2
    assert stalled.dispatch_keys == ["b", "c"]
    assert stalled.step_runs.get(key="b").status == StepStatus.PENDING
    assert stalled.step_runs.get(key="a").status == StepStatus.SUCCESS
    for other in (fresh, moving, done):
        generation = other.generation
        other.refresh_from_db()
        assert other.generation == generation


def test_reconcile_nothing_to_do(simple):
    start_run(simple)
    out, _ = run("workflow_reconcile")
    assert out.strip() == "No stalled runs (idle for 300s or more)."


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf"])
def test_reconcile_bad_older_than(db, value):
    assert "number of seconds" in refused("workflow_reconcile", older_than=value)


# --- the real command line: exit codes and one line on stderr ----------------


def cli(*args: str, stdin: str | None = None, timeout: float = 120):
    """Run ``manage.py``-style *args* in a child process on the test database.

    The child imports the tests' Celery app first, as ``example/`` does through
    its package ``__init__``, so that runs it starts reach the test worker.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DAGFLOW_WORKER_DATABASE_URL": _worker_database_url(),
        "PYTHONPATH": str(ROOT),
    }
    launcher = (
        "import sys, tests.celery_app\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', *sys.argv[1:]])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", launcher, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result, code: int, text: str) -> None:
    assert result.returncode == code, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["workflow_import", "/nonexistent.json"], 1, "CommandError: Cannot read"),
        (["workflow_export", "nope"], 1, "No workflow with slug 'nope'."),
        (["workflow_status", "424242"], 1, "No run with id 424242."),
        (["workflow_cancel", "x"], 1, "Run id must be a whole number"),
        (["workflow_run", "nope"], 1, "No workflow with slug 'nope'."),
        (
            ["workflow_rerun", "1"],
            2,
            "one of the arguments --failed --from is required",
        ),
        (["workflow_status"], 2, "the following arguments are required: RUN_ID"),
        (["workflow_reconcile", "--older-than", "x"], 1, "number of seconds"),
    ],
)
def test_cli_bad_input(transactional_db, args, code, text):
    assert_one_line_error(cli(*args), code, text)


def test_cli_import_export_from_stdin(transactional_db):
    result = cli("workflow_import", "-", stdin=json.dumps(FULL_SPEC))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "Created workflow 'full' (4 steps, version 2).\n"
    result = cli("workflow_export", "full")
    assert result.returncode == 0
    assert json.loads(result.stdout) == FULL_SPEC

    result = cli(
        "workflow_import",
        "-",
        stdin='{"slug": "c", "steps": [{"key": "a", "type": "noop", "after": ["a"]}]}',
    )
    assert_one_line_error(result, 1, "Invalid workflow in standard input:")


# --- with a real worker ------------------------------------------------------


@pytest.fixture
def pipeline(transactional_db):
    return import_workflow(
        {
            "slug": "pipeline",
            "steps": [
                {"key": "one", "type": "add", "params": {"value": 1}},
                {"key": "two", "type": "add", "params": {"value": 2}, "after": ["one"]},
            ],
        }
    )


@pytest.fixture
def failing(transactional_db):
    return import_workflow(
        {
            "slug": "failing",
            "steps": [
                {"key": "ok", "type": "noop"},
                {
                    "key": "boom",
                    "type": "fail",
                    "params": {"message": "kaboom"},
                    "retries": 0,
                    "after": ["ok"],
                },
                {"key": "after", "type": "noop", "after": ["boom"]},
            ],
        }
    )


@pytest.mark.integration
def test_run_wait_success(worker, pipeline):
    out, err = run("workflow_run", "pipeline", wait=True, timeout="60")
    status = json.loads(out)
    new = WorkflowRun.objects.get()
    assert status["id"] == new.pk
    assert err == f"Waiting for run {new.pk}...\n"
    assert status["status"] == "success"
    assert status["steps"]["one"]["result"] == 1
    assert status["steps"]["two"]["result"] == 3


@pytest.mark.integration
def test_run_wait_failure_then_rerun(worker, failing):
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command(
            "workflow_run", "failing", "--wait", stdout=out, stderr=io.StringIO()
        )
    new = WorkflowRun.objects.get()
    assert str(info.value) == f"Run {new.pk} ended failed."
    status = json.loads(out.getvalue())
    assert status["status"] == "failed"
    assert status["steps"]["boom"]["error"].endswith("kaboom")
    assert status["steps"]["after"]["status"] == "upstream_failed"

    # The fail step fails every time, so the rerun fails again, and waits for it.
    with pytest.raises(CommandError, match=f"Run {new.pk} ended failed."):
        run("workflow_rerun", str(new.pk), failed=True, wait=True, timeout="60")
    new.refresh_from_db()
    assert new.generation == 2
    assert new.step_runs.get(key="boom").attempts == 2
    assert new.step_runs.get(key="ok").attempts == 1  # not executed again


@pytest.mark.integration
def test_cli_run_wait_exit_codes(worker, pipeline, failing):
    result = cli("workflow_run", "pipeline", "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "success"

    result = cli("workflow_run", "failing", "--wait", "--timeout", "60")
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "failed"
    assert result.stderr.strip().splitlines()[-1].startswith("CommandError: Run ")
    assert "Traceback" not in result.stderr

    result = cli("workflow_run", "pipeline")
    assert result.returncode == 0
    run_id = int(result.stdout)
    result = cli("workflow_status", str(run_id))
    assert result.returncode == 0
    assert result.stdout.startswith(f"Run {run_id} of pipeline: ")


@pytest.mark.integration
def test_reconcile_resumes_a_run_whose_message_was_lost(worker, pipeline, monkeypatch):
    with monkeypatch.context() as patch:
        # The broker "loses" the run's only message: it is never sent.
        patch.setattr(transaction, "on_commit", lambda *args, **kwargs: None)
        lost = start_run(pipeline)
    age(lost, 120)
    time.sleep(1.5)
    lost.refresh_from_db()
    assert lost.status == RunStatus.PENDING  # nothing moves by itself

    out, _ = run("workflow_reconcile", older_than="60")
    assert f"Resumed run {lost.pk} (pipeline, pending" in out
    final = wait_for_run(lost)
    assert final.status == RunStatus.SUCCESS
    assert final.step_runs.get(key="two").result == 3


def test_every_command_has_a_section_in_docs_cli():
    """docs/cli.md documents each command of both apps, with its exit codes."""
    import admin_graph
    import workflows

    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    sections = docs.split("\n## ")
    for app in (workflows, admin_graph):
        folder = Path(app.__file__).parent / "management" / "commands"
        for command in sorted(folder.glob("workflow_*.py")):
            name = command.stem
            section = next((s for s in sections if s.startswith(f"{name}\n")), None)
            assert section is not None, f"docs/cli.md has no section for {name}"
            assert "Exit:" in section, name
            assert f"manage.py {name}" in section, name
