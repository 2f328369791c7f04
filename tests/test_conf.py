"""The lazy DAGFLOW settings object and the system checks over it."""

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from workflows.checks import check_settings
from workflows.conf import DEFAULTS, AppSettings, app_settings

# One value per key that differs from both the default and the test settings.
OVERRIDES = {
    "DEFAULT_RETRIES": 4,
    "DEFAULT_RETRY_DELAY": 7.5,
    "DEFAULT_TIMEOUT": 120.0,
    "DEFAULT_QUEUE": "steps",
    "ALLOWED_COMMANDS": ["clearsessions"],
    "CONTROL_QUEUE": "control",
    "RESULT_MAX_BYTES": 1234,
    "LOG_MAX_CHARS": 99,
    "SEGMENT_MAX_STEPS": 7,
    "HEARTBEAT_INTERVAL": 3.0,
    "STALE_AFTER": 300.0,
}


def test_every_key_has_an_override_case():
    assert set(OVERRIDES) == set(DEFAULTS)


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_default_when_the_key_is_absent(key):
    with override_settings(DAGFLOW={}):
        assert getattr(app_settings, key) == DEFAULTS[key]
    with override_settings():
        del django_settings.DAGFLOW
        assert getattr(app_settings, key) == DEFAULTS[key]


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_override_then_revert(key):
    configured = django_settings.DAGFLOW.get(key, DEFAULTS[key])
    assert getattr(app_settings, key) == configured  # cached from now on
    with override_settings(DAGFLOW={**django_settings.DAGFLOW, key: OVERRIDES[key]}):
        assert getattr(app_settings, key) == OVERRIDES[key]
    assert getattr(app_settings, key) == configured


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_override_with_the_settings_fixture(settings, key):
    getattr(app_settings, key)
    settings.DAGFLOW = {key: OVERRIDES[key]}
    assert getattr(app_settings, key) == OVERRIDES[key]


def test_settings_fixture_reverted_after_the_test_above():
    for key in DEFAULTS:
        assert getattr(app_settings, key) == django_settings.DAGFLOW.get(
            key, DEFAULTS[key]
        )


def test_test_settings_are_read():
    assert app_settings.DEFAULT_RETRY_DELAY == 0.2
    assert app_settings.ALLOWED_COMMANDS == ["check", "testapp_hello"]


def test_unknown_key_raises_attribute_error():
    with pytest.raises(AttributeError, match="Unknown DAGFLOW setting: 'NOPE'"):
        app_settings.NOPE  # noqa: B018
    assert not hasattr(app_settings, "ALSO_NOPE")


def test_reload_forgets_cached_values():
    local = AppSettings()
    assert local.LOG_MAX_CHARS == 200_000
    assert local._cached == {"LOG_MAX_CHARS"}
    local.reload()
    assert local._cached == set()
    assert "LOG_MAX_CHARS" not in local.__dict__
    assert local.LOG_MAX_CHARS == 200_000


def test_other_settings_changes_keep_the_cache():
    assert app_settings.LOG_MAX_CHARS == 200_000
    with override_settings(USE_TZ=True):
        assert "LOG_MAX_CHARS" in app_settings.__dict__


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_checks_pass_on_the_test_settings():
    assert check_settings() == []


def test_not_a_dict_is_e001():
    with override_settings(DAGFLOW=["DEFAULT_QUEUE"]):
        assert ids(check_settings()) == ["workflows.E001"]


def test_unknown_keys_are_e002():
    with override_settings(DAGFLOW={"DEFAULT_QUEU": "x", "OTHER": 1}):
        messages = check_settings()
    assert ids(messages) == ["workflows.E002", "workflows.E002"]
    assert "'DEFAULT_QUEU'" in messages[0].msg
    assert "DEFAULT_QUEUE" in messages[0].hint
    assert "'OTHER'" in messages[1].msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SEGMENT_MAX_STEPS", 0),
        ("SEGMENT_MAX_STEPS", -5),
        ("SEGMENT_MAX_STEPS", True),
        ("SEGMENT_MAX_STEPS", "40"),
        ("SEGMENT_MAX_STEPS", 4.5),
        ("RESULT_MAX_BYTES", 0),
        ("RESULT_MAX_BYTES", None),
        ("LOG_MAX_CHARS", -1),
        ("DEFAULT_RETRIES", -1),
        ("DEFAULT_RETRIES", "3"),
        ("DEFAULT_RETRY_DELAY", -0.5),
        ("DEFAULT_RETRY_DELAY", "10"),
        ("DEFAULT_TIMEOUT", 0),
        ("DEFAULT_TIMEOUT", "60"),
        ("DEFAULT_QUEUE", 5),
        ("CONTROL_QUEUE", ["q"]),
        ("ALLOWED_COMMANDS", "check"),
        ("ALLOWED_COMMANDS", ["check", 3]),
        ("HEARTBEAT_INTERVAL", 0),
        ("HEARTBEAT_INTERVAL", "10"),
        ("STALE_AFTER", "60"),
        ("STALE_AFTER", None),
    ],
)
def test_bad_values_are_e003(key, value):
    with override_settings(DAGFLOW={key: value}):
        messages = check_settings()
    assert "workflows.E003" in ids(messages)
    assert all(f"'{key}'" in m.msg for m in messages if m.id == "workflows.E003")


@pytest.mark.parametrize(
    "config",
    [
        {"DEFAULT_TIMEOUT": None, "DEFAULT_QUEUE": None, "CONTROL_QUEUE": None},
        {"DEFAULT_TIMEOUT": 5, "DEFAULT_QUEUE": "q", "CONTROL_QUEUE": "c"},
        {"DEFAULT_RETRIES": 0, "DEFAULT_RETRY_DELAY": 0, "ALLOWED_COMMANDS": []},
        {"SEGMENT_MAX_STEPS": 1, "RESULT_MAX_BYTES": 1, "LOG_MAX_CHARS": 1},
    ],
)
def test_good_values_pass(config):
    with override_settings(DAGFLOW=config):
        assert check_settings() == []


@pytest.mark.parametrize(
    ("interval", "stale", "warned"),
    [(10, 20, True), (10, 15, True), (10, 21, False), (1.0, 10.0, False)],
)
def test_stale_after_close_to_the_heartbeat_is_w001(interval, stale, warned):
    with override_settings(
        DAGFLOW={"HEARTBEAT_INTERVAL": interval, "STALE_AFTER": stale}
    ):
        assert ("workflows.W001" in ids(check_settings())) is warned


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({"visibility_timeout": 600}, True),
        ({"visibility_timeout": 3599}, True),
        ({"visibility_timeout": 3600}, False),
        ({"visibility_timeout": 43200}, False),
        ({}, False),
        (None, False),
    ],
)
def test_short_visibility_timeout_is_w002(options, warned):
    with override_settings(CELERY_BROKER_TRANSPORT_OPTIONS=options):
        assert ("workflows.W002" in ids(check_settings())) is warned


def test_bad_visibility_timeout_does_not_crash_the_check():
    with override_settings(CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": "x"}):
        assert "workflows.E003" in ids(check_settings())
