"""Run the whole suite the way `make test` promises; exit non-zero if any part fails.

1. migrations are up to date (makemigrations --check);
2. the suite, DeprecationWarnings as errors: integration tests on Redis when it
   answers (always when DAGFLOW_REQUIRE_REDIS is set), else on the embedded broker;
3. when step 2 used Redis, the integration tests once more on the embedded broker,
   which is what `make demo` uses.
Extra arguments go to every pytest call (e.g. `-x`, `-k diamond`).
"""

import os
import subprocess
import sys


def redis_answers() -> bool:
    try:
        import redis

        url = os.environ.get("DAGFLOW_TEST_REDIS", "redis://127.0.0.1:6379/13")
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except Exception:
        return False


def run(title: str, command: list[str], **env: str) -> int:
    print(f"\n=== {title} ===", flush=True)
    return subprocess.call(command, env={**os.environ, **env})


def main(args: list[str]) -> int:
    python = sys.executable
    pytest = [python, "-W", "error::DeprecationWarning", "-m", "pytest", *args]
    failures = 0
    failures += bool(
        run(
            "migrations up to date",
            [python, "-m", "django", "makemigrations", "--check", "--dry-run"],
            DJANGO_SETTINGS_MODULE="tests.settings",
        )
    )
    use_redis = redis_answers() or bool(os.environ.get("DAGFLOW_REQUIRE_REDIS"))
    broker = "redis" if use_redis else "filesystem"
    if not use_redis:
        print(
            "Redis does not answer: integration tests run on the embedded broker only."
        )
    failures += bool(
        run(f"suite (broker: {broker})", pytest, DAGFLOW_TEST_BROKER=broker)
    )
    if use_redis:
        failures += bool(
            run(
                "integration tests on the embedded broker",
                [*pytest, "tests/integration"],
                DAGFLOW_TEST_BROKER="filesystem",
            )
        )
    print("\nmake test:", "FAILED" if failures else "all parts passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
