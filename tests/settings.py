"""Settings of the test suite; the database and broker come from the environment.

DATABASE_URL (default: a SQLite file, so a real worker process can share it)
and DAGFLOW_TEST_BROKER (``redis`` or ``filesystem``) select the real parts.
"""

import os
import tempfile
from pathlib import Path

import dj_database_url

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
ALLOWED_HOSTS = ["*"]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_jsonform",
    "django_celery_results",
    "workflows",
    "admin_graph",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# One folder, queue and broker folder per test session, inherited by the worker
# process through the environment, so concurrent sessions never meet.
os.environ.setdefault("DAGFLOW_TEST_SESSION", f"s{os.getpid()}")
SESSION = os.environ["DAGFLOW_TEST_SESSION"]
RUN_DIR = (
    Path(os.environ.get("DAGFLOW_TEST_DIR", tempfile.gettempdir()))
    / "dagflow-tests"
    / SESSION
)
RUN_DIR.mkdir(parents=True, exist_ok=True)

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DAGFLOW_WORKER_DATABASE_URL")
        or os.environ.get("DATABASE_URL", f"sqlite:///{RUN_DIR / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The worker process shares the test database, so it must be a file
    # (TEST NAME), in WAL mode with a busy timeout for concurrent writers.
    DATABASES["default"]["TEST"] = {"NAME": str(RUN_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("DAGFLOW_TEST_PGNAME", f"test_dagflow_{SESSION}")
    }

BROKER = os.environ.get("DAGFLOW_TEST_BROKER", "redis")
REDIS_URL = os.environ.get("DAGFLOW_TEST_REDIS", "redis://127.0.0.1:6379/13")
if BROKER == "redis":
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    FS_DIR = RUN_DIR / "broker"
    for _folder in ("out", "processed", "control"):
        (FS_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "dagflowfs://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(FS_DIR / "out"),
        "data_folder_out": str(FS_DIR / "out"),
        "processed_folder": str(FS_DIR / "processed"),
        "control_folder": str(FS_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    CELERY_RESULT_BACKEND = "django-db"
CELERY_TASK_DEFAULT_QUEUE = f"dagflow-tests-{SESSION}"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_RESULT_EXTENDED = False

DAGFLOW = {
    "DEFAULT_RETRY_DELAY": 0.2,
    "HEARTBEAT_INTERVAL": 1.0,
    "STALE_AFTER": 10.0,
    "ALLOWED_COMMANDS": ["check", "testapp_hello"],
}
