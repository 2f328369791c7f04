"""Benchmark settings: the test settings on a non-test database, tunable by env."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DAGFLOW, DATABASES, RUN_DIR

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["NAME"] = os.environ.get(
        "DAGFLOW_BENCH_DB", str(RUN_DIR / "bench.sqlite3")
    )
DAGFLOW = {
    **DAGFLOW,
    "SEGMENT_MAX_STEPS": int(os.environ.get("DAGFLOW_SEGMENT_MAX_STEPS", "20")),
}
