"""The Celery app the integration tests' worker runs: Django settings, CELERY_ keys."""

import os

import django
from celery import Celery

import workflows.embedded_broker  # noqa: F401  (dagflowfs://, before any connection)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

app = Celery("dagflow_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def worker_command(logfile: str, concurrency: int = 2, loglevel: str = "info") -> list:
    """Return the command line of a worker for this app on the session's queue."""
    import sys

    from django.conf import settings

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return [
        sys.executable,
        *f"-m celery -A tests.celery_app worker --pool prefork --concurrency "
        f"{concurrency} --loglevel {loglevel} --queues {queue} --hostname "
        f"{queue}@%h --without-gossip --without-mingle --without-heartbeat".split(),
        "--logfile",
        logfile,
    ]
