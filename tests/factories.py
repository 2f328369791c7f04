"""Build workflows from a compact notation: ``make_workflow("a>b a>c b>d c>d")``."""

from __future__ import annotations

from itertools import pairwise

from workflows.models import Workflow
from workflows.spec import import_workflow


def parse_edges(shape: str) -> tuple[list[str], dict[str, list[str]]]:
    """Return (keys in order of appearance, upstream keys of each key)."""
    keys: list[str] = []
    after: dict[str, list[str]] = {}
    for token in shape.split():
        names = token.split(">")
        for name in names:
            if name not in after:
                keys.append(name)
                after[name] = []
        for upstream, downstream in pairwise(names):
            after[downstream].append(upstream)
    return keys, after


def steps_for(shape: str, step_type: str = "noop", **options) -> list[dict]:
    """Return step specs for *shape*, each of *step_type* with *options*."""
    keys, after = parse_edges(shape)
    return [{"key": k, "type": step_type, "after": after[k], **options} for k in keys]


def make_workflow(
    shape: str,
    step_type: str = "noop",
    slug: str = "wf",
    overrides: dict[str, dict] | None = None,
    **options,
) -> Workflow:
    """Create (or replace) a workflow of *shape*; *overrides* change single steps."""
    steps = steps_for(shape, step_type, **options)
    for spec in steps:
        spec.update((overrides or {}).get(spec["key"], {}))
    return import_workflow({"slug": slug, "name": slug, "steps": steps})


def chain_shape(n: int) -> str:
    return ">".join(f"s{i:04d}" for i in range(n))


def fan_shape(width: int) -> str:
    return " ".join(f"start>m{i:04d}>end" for i in range(width))


SHAPES = {
    "chain": "a>b>c>d",
    "diamond": "a>b a>c b>d c>d",
    "fan_out_fan_in": "a>b a>c a>d a>e b>f c>f d>f e>f",
    "n_shape": "a>c a>d b>d",
    "two_diamonds": "a>b a>c b>d c>d d>e d>f e>g f>g",
    "nested": "a>b>c>f a>d>e>f f>g x>y",
}
