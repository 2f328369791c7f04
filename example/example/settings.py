"""Settings of the example project; the database and broker come from the environment.

With nothing set, it runs on one machine with no server: a SQLite file and
the embedded ``dagflowfs://`` broker (kombu's filesystem transport, written
atomically) under ``example/var/`` (created on demand, ignored by git).
Environment variables:

``DATABASE_URL``          any dj-database-url URL, e.g. ``postgres://user@host/db``
``CELERY_BROKER_URL``     e.g. ``redis://127.0.0.1:6379/0`` (default: filesystem)
``CELERY_RESULT_BACKEND`` default: the Redis URL with Redis, else ``django-db``
``CELERY_QUEUE``          default: ``dagflow-example``
``EXAMPLE_VAR_DIR``       where the default database, broker folders and logs go
``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG``, ``DJANGO_ALLOWED_HOSTS``
"""

import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BASE_DIR.parent
# A fresh clone runs without `pip install -e .`: the apps are found next door.
# Appended, so an installed django-dagflow still wins.
if str(REPO_DIR) not in sys.path:
    sys.path.append(str(REPO_DIR))

VAR_DIR = Path(os.environ.get("EXAMPLE_VAR_DIR") or BASE_DIR / "var").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

# For the local demo only: set DJANGO_SECRET_KEY anywhere else.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "example-only-insecure-key-do-not-deploy"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

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
    "etl",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"
WSGI_APPLICATION = "example.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and every worker process write to the same file: WAL lets
    # readers run beside a writer, IMMEDIATE takes the write lock when a
    # transaction begins (no deadlocking lock upgrades) and the timeout makes a
    # writer wait for its turn instead of raising "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

_VALIDATORS = "django.contrib.auth.password_validation."
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": _VALIDATORS + name}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Celery: every CELERY_* setting here is read by example/celery.py.
# "localhost" only silences kombu's "No hostname was supplied" warning.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "dagflowfs://localhost//"
if CELERY_BROKER_URL.startswith(("dagflowfs://", "filesystem://")):
    # The embedded broker (workflows/embedded_broker.py: kombu's filesystem
    # transport, written atomically): messages are files in a folder that the
    # workers poll, so one machine needs no server at all.
    BROKER_DIR = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Exchange bindings; kombu's default is a "control" folder in the cwd.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    _default_backend = "django-db"
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis redelivers a message not acknowledged within visibility_timeout;
    # with late acks that must exceed the longest step plus its retry delays.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 12 * 60 * 60}
    _default_backend = CELERY_BROKER_URL
else:
    _default_backend = "django-db"
# Chords need a backend that can join: django-celery-results ("django-db")
# counts a chord's finished members in a row of the Django database.
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or _default_backend
# A queue of its own, so a worker of another project on the same Redis never
# takes this project's messages (workers consume the default queue).
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE") or "dagflow-example"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

DAGFLOW = {
    # The built-in `management_command` step may run only these; staff cannot
    # name any other command from the admin.
    "ALLOWED_COMMANDS": ["penguin_search"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"workflows": {"handlers": ["console"], "level": "WARNING"}},
}
