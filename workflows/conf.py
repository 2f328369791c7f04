"""One lazy settings object: ``settings.DAGFLOW`` over DEFAULTS, read at call time."""

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Retries, retry delay (seconds) and timeout (seconds) of a step whose type and
    # step definition say nothing.
    "DEFAULT_RETRIES": 0,
    "DEFAULT_RETRY_DELAY": 10.0,
    "DEFAULT_TIMEOUT": None,
    # Queue of step messages whose type names none (None: Celery's default queue).
    "DEFAULT_QUEUE": None,
    # Management commands the built-in `management_command` step may run: staff
    # pick steps in the admin, so a command must be allowed by a developer first.
    "ALLOWED_COMMANDS": [],
    # Queue of the small control messages that compile and publish canvases.
    "CONTROL_QUEUE": None,
    # A step result larger than this (as JSON) fails the step instead of being stored.
    "RESULT_MAX_BYTES": 1_000_000,
    # The captured log of a step is cut to its last LOG_MAX_CHARS characters.
    "LOG_MAX_CHARS": 200_000,
    # At most this many steps are published at once; the rest follows from the
    # database when the segment before it ends, so a run's bytes stay linear.
    "SEGMENT_MAX_STEPS": 20,
    # A running step refreshes its heartbeat this often (seconds); a redelivered
    # message may take over a step whose heartbeat is older than STALE_AFTER.
    "HEARTBEAT_INTERVAL": 10.0,
    "STALE_AFTER": 60.0,
}


class AppSettings:
    """Read ``DAGFLOW`` keys lazily so that ``override_settings`` works in tests."""

    def __init__(self) -> None:
        self._cached: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown DAGFLOW setting: {name!r}")
        value = getattr(django_settings, "DAGFLOW", {}).get(name, DEFAULTS[name])
        setattr(self, name, value)
        self._cached.add(name)
        return value

    def reload(self) -> None:
        """Forget cached values; the next access reads the settings again."""
        for name in self._cached:
            delattr(self, name)
        self._cached.clear()


app_settings = AppSettings()


@receiver(setting_changed)
def _reload_app_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == "DAGFLOW":
        app_settings.reload()
