"""The engine's AppConfig: discovers ``steps`` modules, registers the checks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = _("Workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workflows import (
            checks,  # noqa: F401  (registers the system checks)
            embedded_broker,  # noqa: F401  (registers the dagflowfs:// scheme)
            tasks,  # noqa: F401  (registers the Celery tasks)
        )
        from workflows.registry import registry

        registry.autodiscover()
