"""The example's Celery app, laid out as in Celery's "First steps with Django".

Run a worker from inside ``example/`` with the same environment variables as
the web process: ``celery -A example worker -l info``.
"""

import os

from celery import Celery

import workflows.embedded_broker  # noqa: F401  (dagflowfs://, before any connection)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

app = Celery("example")
# Every Celery setting lives in Django's settings with a CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
