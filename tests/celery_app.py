"""The Celery app the integration tests' worker runs: Django settings, CELERY_ keys."""

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

app = Celery("dagflow_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
