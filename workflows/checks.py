"""System checks: misconfiguration is reported at start-up, not mid-request."""

import math

from django.conf import settings
from django.core.checks import Error, Warning, register

from workflows.conf import DEFAULTS


def _is_number(value: object, *, minimum: float = 0, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if not math.isfinite(value):
        return False
    return value > minimum if strict else value >= minimum


# Why each key is refused, and the test its value must pass.
_RULES = {
    "SEGMENT_MAX_STEPS": ("a positive integer", lambda v: _is_int(v, 1)),
    "RESULT_MAX_BYTES": ("a positive integer", lambda v: _is_int(v, 1)),
    "LOG_MAX_CHARS": ("a positive integer", lambda v: _is_int(v, 1)),
    "DEFAULT_RETRIES": ("a whole number >= 0", lambda v: _is_int(v, 0)),
    "DEFAULT_RETRY_DELAY": ("a number >= 0", lambda v: _is_number(v)),
    "DEFAULT_TIMEOUT": (
        "None or a number above 0",
        lambda v: v is None or _is_number(v, strict=True),
    ),
    "HEARTBEAT_INTERVAL": ("a number above 0", lambda v: _is_number(v, strict=True)),
    "STALE_AFTER": ("a number above 0", lambda v: _is_number(v, strict=True)),
    "DEFAULT_QUEUE": (
        "None or a queue name",
        lambda v: v is None or isinstance(v, str),
    ),
    "CONTROL_QUEUE": (
        "None or a queue name",
        lambda v: v is None or isinstance(v, str),
    ),
    "ALLOWED_COMMANDS": (
        "a list of command names",
        lambda v: isinstance(v, list | tuple) and all(isinstance(c, str) for c in v),
    ),
}


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


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
    valid = {}
    for key, (wanted, test) in _RULES.items():
        value = config.get(key, DEFAULTS[key])
        valid[key] = test(value)
        if not valid[key]:
            messages.append(
                Error(f"DAGFLOW[{key!r}] must be {wanted}.", id="workflows.E003")
            )
    interval = config.get("HEARTBEAT_INTERVAL", DEFAULTS["HEARTBEAT_INTERVAL"])
    stale = config.get("STALE_AFTER", DEFAULTS["STALE_AFTER"])
    if valid["HEARTBEAT_INTERVAL"] and valid["STALE_AFTER"] and stale <= 2 * interval:
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
    if visibility is not None and not _is_number(visibility):
        messages.append(
            Error(
                "CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] must be a "
                "number of seconds.",
                id="workflows.E003",
            )
        )
    elif visibility is not None and visibility < 3600:
        messages.append(
            Warning(
                "The broker's visibility_timeout is under an hour: Redis redelivers "
                "a step that runs (or waits to retry) longer than that.",
                id="workflows.W002",
            )
        )
    return messages
