"""EtlConfig."""

from django.apps import AppConfig


class EtlConfig(AppConfig):
    name = "etl"
    verbose_name = "Penguins ETL (example)"
    default_auto_field = "django.db.models.BigAutoField"
