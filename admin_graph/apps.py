"""AdminGraphConfig; a check that workflows precedes it in INSTALLED_APPS."""

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.translation import gettext_lazy as _


def check_app_order(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Report admin_graph installed without workflows, or before it.

    admin_graph registers the ModelAdmins of workflows' models and overrides
    templates under ``admin/workflows/``; listed first, it would be set up
    before the models it administers.
    """
    apps = [a.split(".apps.")[0] for a in settings.INSTALLED_APPS]
    if "workflows" not in apps:
        return [
            checks.Error(
                "admin_graph needs 'workflows' in INSTALLED_APPS.",
                hint="Add 'workflows' to INSTALLED_APPS, before 'admin_graph'.",
                id="admin_graph.E001",
            )
        ]
    if apps.index("workflows") > apps.index("admin_graph"):
        return [
            checks.Error(
                "'workflows' must come before 'admin_graph' in INSTALLED_APPS.",
                hint="Move 'admin_graph' after 'workflows'.",
                id="admin_graph.E002",
            )
        ]
    return []


class AdminGraphConfig(AppConfig):
    name = "admin_graph"
    verbose_name = _("Workflow graphs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_app_order)
