"""The example project; loads the Celery app so that shared tasks use it."""

from example.celery import app as celery_app

__all__ = ("celery_app",)
