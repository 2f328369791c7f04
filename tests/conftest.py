"""Shared fixtures: a real Celery worker process on the test database, and helpers."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from celery import canvas
from django.conf import settings
from django.db import connection

from tests.celery_app import app as celery_app
from tests.celery_app import worker_command

ROOT = Path(__file__).resolve().parent.parent


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _worker_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker):
    """Start one real ``celery worker`` process (prefork, 2 children) for the session.

    It runs the tests' Celery app on the same test database and broker as the
    test process. Tests that use it need ``transactional_db`` (or live_server),
    so that what they write is committed and visible to the worker.
    """
    if settings.BROKER == "redis" and not _redis_answers():
        if os.environ.get("DAGFLOW_REQUIRE_REDIS"):
            pytest.fail(f"Redis does not answer at {settings.REDIS_URL}")
        pytest.skip(f"Redis does not answer at {settings.REDIS_URL}")
    log = settings.RUN_DIR / "worker.log"
    env = {
        **os.environ,
        "DAGFLOW_WORKER_DATABASE_URL": _worker_database_url(),
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        worker_command(str(log)),
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and " ready." in log.read_text(errors="replace"):
            break
        if process.poll() is not None:
            pytest.fail(f"celery worker exited with {process.returncode}; see {log}")
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"celery worker did not start in 60 s; see {log}")
    yield process
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def sent(monkeypatch) -> list:
    """Record every signature that would be sent, instead of sending it (unit tests)."""
    calls: list = []

    def record(self, *args, **kwargs):
        calls.append(self)

    for cls in (canvas.Signature, canvas._chain, canvas._chord, canvas.group):
        monkeypatch.setattr(cls, "apply_async", record)
    return calls


@pytest.fixture
def count_dir(tmp_path) -> Path:
    """A folder where the ``count`` test step writes one line per execution."""
    tmp_path.chmod(0o777)
    return tmp_path


def executions(count_dir: Path, run_id: int, key: str) -> int:
    """Return how many times step *key* of run *run_id* executed."""
    path = count_dir / f"{run_id}-{key}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for_run(run, timeout: float = 60, statuses=None):
    """Poll the database until *run* is final (or in *statuses*); return it."""
    from workflows.states import RUN_FINAL

    wanted = set(statuses or RUN_FINAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in wanted:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run.pk} still {run.status} after {timeout} s")


def wait_for_step(run, key: str, statuses, timeout: float = 60):
    """Poll until step *key* of *run* is in *statuses*; return the StepRun."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step_run = run.step_runs.get(key=key)
        if step_run.status in statuses:
            return step_run
        time.sleep(0.05)
    raise AssertionError(f"step {key} of run {run.pk} still {step_run.status}")


__all__ = ["celery_app", "executions", "wait_for_run", "wait_for_step"]
