"""What every benchmark needs: Django set up, a real worker, runs waited for."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("DAGFLOW_TEST_BROKER", "redis")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from tests.celery_app import app as celery_app  # noqa: E402,F401  (the sending app)
from tests.celery_app import worker_command  # noqa: E402


def migrate() -> None:
    call_command("migrate", verbosity=0)


@contextlib.contextmanager
def worker(concurrency: int = 2, env: dict | None = None):
    """Run a celery worker on the bench settings for the duration of the block."""
    log = settings.RUN_DIR / f"bench-worker-{os.getpid()}.log"
    log.unlink(missing_ok=True)
    process = subprocess.Popen(
        worker_command(str(log), concurrency, loglevel="warning"),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    time.sleep(4)  # warning level prints no "ready" line; give it time to connect
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def wait(run, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in ("success", "failed", "cancelled"):
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run.pk} still {run.status}")


def write(name: str, payload: dict, lines: list[str]) -> None:
    """Write the figures as JSON and as a short Markdown table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "python": sys.version.split()[0],
        "django": django.__version__,
        **payload,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
