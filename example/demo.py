#!/usr/bin/env python
"""Run the example end to end: database, admin user, workflow, worker, server, one run.

``make demo`` calls this. It works on a fresh clone with nothing running: the
defaults are a SQLite file and kombu's filesystem broker under ``example/var/``.
Export ``DATABASE_URL`` and ``CELERY_BROKER_URL`` (e.g. ``redis://...``) to use
real servers instead. ``--once`` stops after the run (exit 0 only on success);
otherwise the worker and the server keep running until Ctrl-C (SIGINT) or
SIGTERM, which stop them and exit 0. Further signals during that shutdown are
ignored, so it always completes: the worker gets up to 30 s to finish a task.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parent
REPO_DIR = EXAMPLE_DIR.parent
FIXTURE = EXAMPLE_DIR / "etl" / "fixtures" / "penguins_etl.json"
ADMIN_USER = ADMIN_PASSWORD = "admin"  # noqa: S105  (printed: local demo only)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port of the development server (default 8000; 0 or a taken port: "
        "any free one)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit after the run (0 only if it succeeded)",
    )
    parser.add_argument(
        "--params", default="{}", help="run params as JSON, e.g. '{\"min_year\": 2008}'"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for the run"
    )
    return parser.parse_args(argv)


def setup_django() -> None:
    """Configure Django with the example's settings (and its Celery app)."""
    for path in (str(EXAMPLE_DIR), str(REPO_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    # Forced, not defaulted: a DJANGO_SETTINGS_MODULE exported for another
    # project must not send the demo (and its worker) elsewhere.
    os.environ["DJANGO_SETTINGS_MODULE"] = "example.settings"
    import django

    django.setup()


def say(message: str = "") -> None:
    """Print one line of the demo's own output, at once.

    A closed stdout (``demo.py | head``) must not stop the shutdown of the
    worker and the server, so write errors are ignored.
    """
    with contextlib.suppress(OSError):
        print(message, flush=True)


def check_broker(url: str) -> None:
    """Fail fast, with a useful line, when a Redis broker does not answer.

    Without this, kombu would retry the connection for a long time in silence.
    """
    if not url.startswith(("redis://", "rediss://")):
        return
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise SystemExit(
            f"Redis at {url} does not answer ({exc}). Start it, or unset "
            "CELERY_BROKER_URL to use the embedded filesystem broker."
        ) from None


def prepare_database() -> None:
    """Migrate, create (or reset) the admin user, import the ETL workflow."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    db = settings.DATABASES["default"]
    say(f"Database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}")
    call_command("migrate", interactive=False, verbosity=0)
    user, created = get_user_model().objects.get_or_create(username=ADMIN_USER)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(ADMIN_PASSWORD)
    user.save()
    say(
        f"Admin user {ADMIN_USER} / {ADMIN_PASSWORD} "
        f"{'created' if created else 'reset'} (for this local demo only: never "
        "keep it on a reachable server)."
    )
    from workflows.spec import import_workflow

    with FIXTURE.open(encoding="utf-8") as handle:
        workflow = import_workflow(json.load(handle))
    say(
        f"Workflow {workflow.slug!r} imported ({workflow.steps.count()} steps), as "
        f"`python example/manage.py workflow_import {FIXTURE.relative_to(REPO_DIR)}` "
        "would."
    )


def free_port(wanted: int) -> tuple[int, bool]:
    """Return *wanted* if it is free, else a free port; and whether it moved."""
    if wanted:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", wanted))
                return wanted, False
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1], bool(wanted)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the demo dies without cleaning up.

    Without it, a demo killed with SIGKILL would leave a worker consuming the
    broker with a stale configuration. Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PDEATHSIG
    except (OSError, AttributeError):
        pass


class Processes:
    """The worker and the server: started in their own sessions, stopped in order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> Path:
        """Start *args* in example/, output to var/log/<name>.log; return the log."""
        log = self.log_dir / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_DIR), env.get("PYTHONPATH", "")) if p
        )
        with log.open("w", encoding="utf-8") as out:
            # A session of its own: Ctrl-C reaches only this script, which then
            # stops the worker (warm shutdown) and the server in order.
            self.procs[name] = subprocess.Popen(  # noqa: S603
                args,
                cwd=EXAMPLE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return log

    def dead(self) -> str | None:
        """Return the name of a process that exited, if any."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def tail(self, name: str, lines: int = 25) -> str:
        """Return the last *lines* of the log of *name*."""
        text = (self.log_dir / f"{name}.log").read_text(
            encoding="utf-8", errors="replace"
        )
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server, then the worker; SIGKILL their group after a grace period.

        SIGTERM goes to the main process only: Celery's warm shutdown lets the
        pool children finish their task, and a signal sent to them directly is
        reported as a lost worker.
        """
        for name, grace in (("server", 5), ("worker", 30)):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            say(f"Stopping the {name}...")
            try:
                proc.terminate()
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                say(f"The {name} did not stop within {grace} s; killing it.")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # leftovers of its group
                proc.wait()
            say(f"Stopped the {name}.")


def wait_for_run(run_id: int, processes: Processes, timeout: float):
    """Wait until the run ends, printing each step as it finishes; return the run."""
    from workflows.models import StepRun, WorkflowRun
    from workflows.states import RUN_FINAL, STEP_FINAL

    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        run = WorkflowRun.objects.get(pk=run_id)
        for step_run in StepRun.objects.filter(run_id=run_id, status__in=STEP_FINAL):
            if step_run.key not in seen:
                seen.add(step_run.key)
                say(f"  {step_run.key:<14} {step_run.status}")
        if run.status in RUN_FINAL:
            return run
        gone = processes.dead()
        if gone:
            say(f"The {gone} stopped unexpectedly; the end of its log:")
            say(processes.tail(gone))
            return run
        if time.monotonic() > deadline:
            say(f"The run did not end within {timeout:g} s; the worker's log ends:")
            say(processes.tail("worker"))
            return run
        time.sleep(0.2)


def print_summary(run) -> None:
    """Print each step (status, attempts, duration) and the report's key figures."""
    import networkx as nx

    from workflows.dag import snapshot_graph

    order = list(nx.lexicographical_topological_sort(snapshot_graph(run.snapshot)))
    steps = {s.key: s for s in run.step_runs.all()}
    total = (
        f" in {(run.finished_at - run.started_at).total_seconds():.1f} s"
        if run.finished_at and run.started_at
        else ""
    )
    say()
    say(f"Run {run.pk} of {run.snapshot.get('slug')}: {run.status}{total}")
    say(f"  {'step':<14} {'status':<16} {'attempts':>8}  duration")
    for key in order:
        s = steps[key]
        took = (
            f"{(s.finished_at - s.started_at).total_seconds():.2f} s"
            if s.started_at and s.finished_at
            else "-"
        )
        say(f"  {key:<14} {s.status:<16} {s.attempts:>8}  {took}")
        if s.error:
            say(f"      {s.error.splitlines()[0]}")
    report = steps.get("report")
    result = report.result if report and isinstance(report.result, dict) else None
    if not result:
        return
    say()
    say(
        f"Rows: {result['rows_read']} read, {result['rows_valid']} valid, "
        f"{result['rows_rejected']} rejected, {result['rows_skipped']} skipped; "
        f"{result['penguins_loaded']} penguins loaded, "
        f"{result['index_entries']} index entries."
    )
    validate = steps.get("validate")
    rejected = (validate.result or {}).get("rejected_rows", []) if validate else []
    for bad in rejected[:5]:
        say(
            f"  rejected line {bad['line']} ({bad['sample']}): "
            + "; ".join(bad["reasons"])
        )
    if len(rejected) > 5:
        say(f"  ... and {len(rejected) - 5} more (see the validate step's result)")
    say(
        f"  {'species':<12} {'count':>5} {'female':>6} {'male':>5} "
        f"{'mass g':>8} {'flipper mm':>10}"
    )
    for name, figures in result["species"].items():
        say(
            f"  {name:<12} {figures['count']:>5} {figures['female']:>6} "
            f"{figures['male']:>5} {figures['mean_body_mass_g'] or 0:>8.0f} "
            f"{figures['mean_flipper_length_mm'] or 0:>10.1f}"
        )
    islands = ", ".join(f"{k} {v}" for k, v in result["islands"].items())
    say(f"  islands: {islands}")


def wait_for_server(url: str, processes: Processes, timeout: float = 30) -> bool:
    """Return True once the server answers *url*, False if it died or never did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes.procs["server"].poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310  (our own server)
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            time.sleep(0.2)
    return False


def _shown(path: str) -> str:
    """Return *path* relative to the current directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _terminate(signum, frame):
    """Turn the first Ctrl-C or SIGTERM into a clean stop, and ignore the next.

    Ctrl-C in a terminal, or ``make`` forwarding SIGTERM, may deliver a second
    signal while the worker and the server are being stopped; raising again
    there would abandon the cleanup with a traceback.
    """
    _ignore_stop_signals()
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    args = parse_args(argv)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _terminate)
    try:
        run_params = json.loads(args.params)
    except ValueError as exc:
        raise SystemExit(f"--params is not JSON: {exc}") from None
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from workflows.dag import validate_params
    from workflows.exceptions import InvalidParams
    from workflows.models import Workflow
    from workflows.runs import start_run
    from workflows.states import RunStatus

    broker = settings.CELERY_BROKER_URL
    say(f"Broker: {broker}  Result backend: {settings.CELERY_RESULT_BACKEND}")
    check_broker(broker)
    prepare_database()
    workflow = Workflow.objects.get(slug="penguins-etl")
    try:
        if not isinstance(run_params, dict):
            raise InvalidParams("run params must be a JSON object")
        validate_params(run_params, workflow.params_schema, what="run params")
    except InvalidParams as exc:
        raise SystemExit(f"--params: {exc}") from None

    log_dir = Path(settings.VAR_DIR) / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    port, moved = free_port(args.port)
    if moved:
        say(f"Port {args.port} is taken; the server uses port {port} instead.")
    processes = Processes(log_dir)
    py = sys.executable
    try:
        log = processes.start(
            "worker",
            [
                py, "-m", "celery", "-A", "example", "worker", "--pool", "prefork",
                "-c", "2", "-l", "warning", "-n", f"demo-{os.getpid()}@%h",
                "--without-mingle", "--without-gossip",
            ],
        )  # fmt: skip
        say(f"Celery worker started (2 processes); log: {log}")
        log = processes.start(
            "server", [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        )
        say(f"Development server starting on 127.0.0.1:{port}; log: {log}")

        admin = get_user_model().objects.get(username=ADMIN_USER)
        run = start_run(workflow, run_params, admin)
        say(f"Run {run.pk} of {workflow.slug} started; steps as they finish:")
        run = wait_for_run(run.pk, processes, args.timeout)
        print_summary(run)
        ok = run.status == RunStatus.SUCCESS

        base = f"http://127.0.0.1:{port}"
        say()
        if wait_for_server(f"{base}/admin/login/", processes):
            say(f"Admin: {base}/admin/ (login {ADMIN_USER} / {ADMIN_PASSWORD})")
            say(f"This run: {base}/admin/workflows/workflowrun/{run.pk}/change/")
        else:
            say("The development server did not start; the end of its log:")
            say(processes.tail("server"))
            ok = False
        manage = f"{_shown(sys.executable)} {_shown(str(EXAMPLE_DIR / 'manage.py'))}"
        say(f"CLI: {manage} workflow_status {run.pk}")
        say(f"     {manage} penguin_search gentoo biscoe female")
        if args.once:
            return 0 if ok else 1
        say("Serving; press Ctrl-C to stop the worker and the server.")
        while True:
            time.sleep(1)
            gone = processes.dead()
            if gone:
                say(f"The {gone} stopped; the end of its log:")
                say(processes.tail(gone))
                return 1
    except KeyboardInterrupt:
        say()
        return 0
    finally:
        # Whether it ends normally or by a signal, the shutdown runs to its end.
        _ignore_stop_signals()
        processes.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # stopped before the worker and the server started
        say()
        say("Stopped.")
        sys.exit(0)
