"""Bytes the broker carries per run, from Redis's own statistics (INFO stats).

Shapes: a chain and a fan-out/fan-in of noop steps, at 100 and 1,000 steps,
published in segments (the default) and, for contrast, as one canvas. Also the
wall time of a 200-step chain. Writes bench/results/broker_bytes.{json,md}.
Needs Redis on 127.0.0.1:6379. One command: `python -m bench.broker_bytes`.
"""

from __future__ import annotations

import os
import time

import redis

from bench.common import migrate, wait, worker, write
from tests.factories import chain_shape, fan_shape, make_workflow
from workflows import runs

SHAPES = {
    "chain": chain_shape,
    "fan_out_fan_in": lambda n: fan_shape(n - 2),
    "two_chains": lambda n: (
        chain_shape(n // 2) + " " + chain_shape(n // 2).replace("s", "t")
    ),
}
COLUMNS = [
    "publishing",
    "shape",
    "steps",
    "status",
    "seconds",
    "bytes_in",
    "bytes_out",
    "bytes_per_step",
]


def stats(client) -> tuple[int, int]:
    info = client.info("stats")
    return info["total_net_input_bytes"], info["total_net_output_bytes"]


def measure(client, shape: str, size: int) -> dict:
    workflow = make_workflow(SHAPES[shape](size), "noop", slug=f"{shape}-{size}")
    before = stats(client)
    started = time.monotonic()
    run = wait(runs.start_run(workflow))
    seconds = time.monotonic() - started
    time.sleep(1.0)  # let result writes and acks land
    after = stats(client)
    into, out = after[0] - before[0], after[1] - before[1]
    return {
        "shape": shape,
        "steps": run.step_runs.count(),
        "status": run.status,
        "seconds": round(seconds, 2),
        "bytes_in": into,
        "bytes_out": out,
        "bytes_per_step": round((into + out) / run.step_runs.count()),
    }


def main() -> None:
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    migrate()
    rows = []
    for segment_max in (20, 100_000):
        os.environ["DAGFLOW_SEGMENT_MAX_STEPS"] = str(segment_max)
        label = f"segments of {segment_max}" if segment_max < 1000 else "one canvas"
        with worker(concurrency=2):
            for shape in SHAPES:
                for size in (100, 200, 1000):
                    if (
                        segment_max > 1000
                        and shape != "fan_out_fan_in"
                        and size == 1000
                    ):
                        continue  # as one canvas: recursion limits, minutes of work
                    row = measure(client, shape, size)
                    row["publishing"] = label
                    rows.append(row)
                    print(row, flush=True)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [
        "| "
        + " | ".join(
            f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in COLUMNS
        )
        + " |"
        for r in rows
    ]
    write("broker_bytes", {"rows": rows}, lines)


if __name__ == "__main__":
    main()
