"""Makespan of sleep-step DAGs against their critical path, through a real worker.

Each step sleeps SLEEP seconds; the critical path is the longest chain of steps
times SLEEP. Series-parallel shapes should finish close to it; shapes that are
not series-parallel pay for the synchronisation the compiler adds, which is
what this measures. Writes bench/results/makespan.{json,md}. Needs Redis.
One command: `python -m bench.makespan`.
"""

from __future__ import annotations

import random

import networkx as nx

from bench.common import migrate, wait, worker, write
from tests.factories import make_workflow, parse_edges
from workflows import runs

SLEEP = 0.3
CONCURRENCY = 8


def random_dag(seed: int, nodes: int = 10, density: float = 0.25) -> str:
    rng = random.Random(seed)
    edges = [
        f"n{i}>n{j}"
        for i in range(nodes)
        for j in range(i + 1, nodes)
        if rng.random() < density
    ]
    lonely = [
        f"n{i}"
        for i in range(nodes)
        if not any(f"n{i}>" in e or e.endswith(f">n{i}") for e in edges)
    ]
    return " ".join(edges + lonely)


SHAPES = {
    "chain_5": "a>b>c>d>e",
    "diamond": "a>b a>c b>d c>d",
    "fan_out_6": " ".join(f"a>m{i}>z" for i in range(6)),
    "two_diamonds": "a>b a>c b>d c>d d>e d>f e>g f>g",
    "nested": "a>b>c>f a>d>e>f f>g x>y",
    "n_shape": "a>c a>d b>d",
    "n_shape_long": "a>c>e a>d b>d>f",
    "w_shape": "a>d b>d b>e c>e",
    **{f"random_{seed}": random_dag(seed) for seed in range(4)},
}
# Non-series-parallel shapes with uneven steps (seconds per key; others SLEEP):
# here the compiler's extra waiting shows.
SKEWED = {
    "n_shape_skewed": ("a>c a>d b>d", {"b": 1.0, "c": 1.0}),
    "w_shape_skewed": ("a>d b>d b>e c>e", {"a": 1.0, "e": 1.0}),
}


def critical_path(shape: str, seconds: dict[str, float]) -> float:
    """Return the longest sum of step durations along a path of *shape*."""
    keys, after = parse_edges(shape)
    finish: dict[str, float] = {}
    graph = nx.DiGraph()
    graph.add_nodes_from(keys)
    graph.add_edges_from((u, k) for k in keys for u in after[k])
    for key in nx.topological_sort(graph):
        finish[key] = max((finish[u] for u in after[key]), default=0) + seconds.get(
            key, SLEEP
        )
    return max(finish.values())


def main() -> None:
    migrate()
    rows = []
    with worker(concurrency=CONCURRENCY):
        cases = {name: (shape, {}) for name, shape in SHAPES.items()} | SKEWED
        for name, (shape, seconds) in cases.items():
            overrides = {k: {"params": {"seconds": v}} for k, v in seconds.items()}
            workflow = make_workflow(
                shape,
                "sleep",
                slug=name,
                params={"seconds": SLEEP},
                overrides=overrides,
            )
            run = wait(runs.start_run(workflow))
            steps = list(run.step_runs.all())
            start = min(s.started_at for s in steps)
            end = max(s.finished_at for s in steps)
            makespan = (end - start).total_seconds()
            ideal = critical_path(shape, seconds)
            rows.append(
                {
                    "shape": name,
                    "steps": len(steps),
                    "status": run.status,
                    "critical_path_s": round(ideal, 2),
                    "makespan_s": round(makespan, 2),
                    "ratio": round(makespan / ideal, 2),
                }
            )
            print(rows[-1], flush=True)
    lines = [
        f"Sleep steps of {SLEEP} s, worker concurrency {CONCURRENCY}.",
        "",
        "| shape | steps | status | critical path s | makespan s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['shape']} | {r['steps']} | {r['status']} | {r['critical_path_s']} | "
        f"{r['makespan_s']} | {r['ratio']} |"
        for r in rows
    ]
    write("makespan", {"sleep": SLEEP, "concurrency": CONCURRENCY, "rows": rows}, lines)


if __name__ == "__main__":
    main()
