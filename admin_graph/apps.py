"""AdminGraphConfig."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AdminGraphConfig(AppConfig):
    name = "admin_graph"
    verbose_name = _("Workflow graphs")
    default_auto_field = "django.db.models.BigAutoField"
