"""System checks: misconfiguration is reported at start-up, not mid-request."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from workflows.conf import DEFAULTS


@register()
def check_settings(app_configs=None, **kwargs):
    """Report unknown DAGFLOW keys and values the engine cannot use."""
    messages = []
    config = getattr(settings, "DAGFLOW", {})
    if not isinstance(config, dict):
        return [Error("DAGFLOW must be a dict.", id="workflows.E001")]
    for key in sorted(set(config) - set(DEFAULTS)):
        messages.append(
            Error(
                f"Unknown DAGFLOW setting {key!r}.",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="workflows.E002",
            )
        )
    for key in ("SEGMENT_MAX_STEPS", "RESULT_MAX_BYTES", "LOG_MAX_CHARS"):
        value = config.get(key, DEFAULTS[key])
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            messages.append(
                Error(f"DAGFLOW[{key!r}] must be a positive integer.", id="workflows.E003")
            )
    interval = config.get("HEARTBEAT_INTERVAL", DEFAULTS["HEARTBEAT_INTERVAL"])
    stale = config.get("STALE_AFTER", DEFAULTS["STALE_AFTER"])
    if stale <= 2 * interval:
        messages.append(
            Warning(
                "DAGFLOW['STALE_AFTER'] should be well above twice "
                "HEARTBEAT_INTERVAL, or a busy step may be taken over while it runs.",
                id="workflows.W001",
            )
        )
    visibility = (getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}).get(
        "visibility_timeout"
    )
    if visibility is not None and visibility < 3600:
        messages.append(
            Warning(
                "The broker's visibility_timeout is under an hour: Redis redelivers "
                "a step that runs (or waits to retry) longer than that.",
                id="workflows.W002",
            )
        )
    return messages
