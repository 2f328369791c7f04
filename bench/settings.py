"""Benchmark settings: the test settings on a non-test database, tunable by env."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DAGFLOW, RUN_DIR

DATABASES["default"]["NAME"] = os.environ.get(  # noqa: F405
    "DAGFLOW_BENCH_DB", str(RUN_DIR / "bench.sqlite3")
) if DATABASES["default"]["ENGINE"].endswith("sqlite3") else DATABASES["default"]["NAME"]  # noqa: F405
DAGFLOW = {
    **DAGFLOW,
    "SEGMENT_MAX_STEPS": int(os.environ.get("DAGFLOW_SEGMENT_MAX_STEPS", "20")),
}
