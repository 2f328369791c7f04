"""Pure: a snapshot's DAG (or a subset of it) to Celery canvases, in bounded segments.

The DAG is first decomposed into a tree of blocks: a :class:`Series` runs its parts
one after another, a :class:`Parallel` runs them at once. A series-parallel DAG
decomposes exactly, so no step waits for a step it does not depend on. Any other
DAG (the N-shape ``A->C, A->D, B->D``) is cut where it cannot be split, at the
sources of the undecomposable part: correct, with the least code, at the price of
some extra waiting that ``bench/makespan.py`` measures.

The tree is then cut into segments of at most ``SEGMENT_MAX_STEPS`` steps. Each
segment is published on its own and ends with a tiny ``advance_run`` task that
publishes the segments waiting for it, from the database, because Celery embeds
the rest of a chain (and a chord's body) in every message: published whole, a
long run's messages grow quadratically.

Nothing here touches the ORM or sends anything; signatures are built by task
name, so this module does not even import the tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import networkx as nx
from celery import chain, chord, group
from celery.canvas import Signature

RUN_STEP = "workflows.run_step"
ADVANCE_RUN = "workflows.advance_run"
JOIN = "workflows.join"


@dataclass(frozen=True)
class Step:
    key: str


@dataclass(frozen=True)
class Series:
    parts: tuple[Block, ...]


@dataclass(frozen=True)
class Parallel:
    parts: tuple[Block, ...]


Block = Step | Series | Parallel


def decompose(graph: nx.DiGraph, keys: Iterable[str] | None = None) -> Block | None:
    """Return the block tree of *graph* restricted to *keys* (all steps if None).

    Edges to steps outside *keys* are ignored: those steps are already done
    (a rerun keeps the successful ones). Returns None for an empty subset.
    """
    sub = graph.subgraph(graph.nodes if keys is None else keys)
    order = list(nx.lexicographical_topological_sort(sub))
    if not order:
        return None
    index = {key: i for i, key in enumerate(order)}
    ancestors: list[int] = [0] * len(order)
    for i, key in enumerate(order):
        bits = 0
        for upstream in sub.predecessors(key):
            j = index[upstream]
            bits |= ancestors[j] | (1 << j)
        ancestors[i] = bits
    return _Decomposer(sub, order, index, ancestors).block((1 << len(order)) - 1)


class _Decomposer:
    """Recursive split of a node set (a bit mask over the topological order)."""

    def __init__(self, graph, order, index, ancestors) -> None:
        self.graph = graph
        self.order = order
        self.index = index
        self.ancestors = ancestors

    def members(self, mask: int) -> list[int]:
        out = []
        while mask:
            low = mask & -mask
            out.append(low.bit_length() - 1)
            mask ^= low
        return out

    def block(self, mask: int) -> Block:
        nodes = self.members(mask)
        if len(nodes) == 1:
            return Step(self.order[nodes[0]])
        components = self.components(nodes)
        if len(components) > 1:
            return Parallel(tuple(self.series_block(c) for c in components))
        return self.series_block(mask)

    def series_block(self, mask: int) -> Block:
        parts: list[Block] = []
        while mask:
            head = self.series_cut(mask)
            rest = mask & ~head
            if not rest:
                nodes = self.members(mask)
                if len(nodes) == 1:
                    parts.append(Step(self.order[nodes[0]]))
                    break
                components = self.components(nodes)
                if len(components) > 1:
                    parts.append(Parallel(tuple(self.block(c) for c in components)))
                    break
                # Not series-parallel here: wait for the sources, then go on.
                head = self.sources(mask)
                rest = mask & ~head
            parts.append(self.block(head))
            mask = rest
        return _flatten_series(parts)

    def sources(self, mask: int) -> int:
        bits = 0
        for i in self.members(mask):
            if not self.ancestors[i] & mask:
                bits |= 1 << i
        return bits

    def series_cut(self, mask: int) -> int:
        """Return the smallest head H (H then mask-H is exact), or mask if none.

        H is exact when every step after it depends on every step in it; the
        valid heads are nested, so growing from the sources finds the smallest.
        """
        head = self.sources(mask)
        changed = True
        while changed:
            changed = False
            for i in self.members(mask & ~head):
                needed = self.ancestors[i] & mask
                if needed & head != head:
                    head |= needed | (1 << i)
                    changed = True
        return head

    def components(self, nodes: list[int]) -> list[int]:
        keys = [self.order[i] for i in nodes]
        comps = nx.weakly_connected_components(self.graph.subgraph(keys))
        masks = []
        for comp in comps:
            bits = 0
            for key in comp:
                bits |= 1 << self.index[key]
            masks.append(bits)
        return sorted(masks, key=lambda m: (m & -m).bit_length())


def _flatten_series(parts: list[Block]) -> Block:
    flat: list[Block] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Series) else (part,))
    return flat[0] if len(flat) == 1 else Series(tuple(flat))


def step_count(block: Block) -> int:
    """Return the number of steps in *block*."""
    if isinstance(block, Step):
        return 1
    return sum(step_count(p) for p in block.parts)


@dataclass(frozen=True)
class Segment:
    """A piece of the plan published on its own, once the segments *after* ended."""

    block: Block
    after: tuple[int, ...] = ()


def plan_segments(block: Block | None, max_steps: int) -> list[Segment]:
    """Cut *block* into segments of at most *max_steps* steps.

    Consecutive small parts of a series share a segment, and so do small members
    of a parallel block; a big part is cut in turn. Each segment names the
    segments that must end before it is published: the join of a parallel block
    cut in pieces is made by the database, not by a chord embedding the rest.
    """
    segments: list[Segment] = []
    if block is not None:
        _cut(block, (), max_steps, segments)
    return segments


def _cut(
    block: Block, after: tuple[int, ...], max_steps: int, out: list[Segment]
) -> tuple[int, ...]:
    """Append the segments of *block* to *out*; return the ones that end it."""
    if isinstance(block, Step) or step_count(block) <= max_steps:
        out.append(Segment(block, after))
        return (len(out) - 1,)
    batch: list[Block] = []
    size = 0
    exits: list[int] = []
    parallel = isinstance(block, Parallel)

    def flush() -> None:
        nonlocal after, size
        if not batch:
            return
        if parallel:
            piece = batch[0] if len(batch) == 1 else Parallel(tuple(batch))
            exits.extend(_cut(piece, after, max_steps, out))
        else:
            after = _cut(_flatten_series(batch), after, max_steps, out)
        batch.clear()
        size = 0

    for part in block.parts:
        count = step_count(part)
        if size + count > max_steps:
            flush()
        if count > max_steps:
            if parallel:
                exits.extend(_cut(part, after, max_steps, out))
            else:
                after = _cut(part, after, max_steps, out)
            continue
        batch.append(part)
        size += count
    flush()
    return tuple(exits) if parallel else after


def block_to_data(block: Block) -> list | str:
    """Return *block* as JSON: a key, ``["s", ...]`` or ``["p", ...]``."""
    if isinstance(block, Step):
        return block.key
    tag = "s" if isinstance(block, Series) else "p"
    return [tag, *(block_to_data(p) for p in block.parts)]


def block_from_data(data: list | str) -> Block:
    """Return the block that :func:`block_to_data` turned into *data*."""
    if isinstance(data, str):
        return Step(data)
    kind = Series if data[0] == "s" else Parallel
    return kind(tuple(block_from_data(p) for p in data[1:]))


StepSignature = Callable[[str], Signature]


def step_signature_factory(
    run_id: int,
    generation: int,
    task_ids: dict[str, str],
    queues: dict[str, str | None],
) -> StepSignature:
    """Return a function giving the (immutable) run_step signature of a key."""

    def make(key: str) -> Signature:
        options = {"task_id": task_ids[key]} if task_ids.get(key) else {}
        if queues.get(key):
            options["queue"] = queues[key]
        return Signature(
            RUN_STEP, args=(run_id, key, generation), options=options, immutable=True
        )

    return make


START = -1


def advance_signature(
    run_id: int, generation: int, index: int, queue: str | None = None
) -> Signature:
    """Return the message saying segment *index* ended (START: the run starts)."""
    options = {"queue": queue} if queue else {}
    return Signature(
        ADVANCE_RUN, args=(run_id, generation, index), options=options, immutable=True
    )


def to_canvas(
    block: Block, make_step: StepSignature, then: Signature | None = None
) -> Signature:
    """Return the canvas running *block*, then *then*.

    A parallel block followed by anything is an explicit chord; a parallel block
    at the end of a chord member gets a no-op join as its body, so no group is
    ever upgraded implicitly and no two groups stand in a row.
    """
    parts = list(block.parts) if isinstance(block, Series) else [block]
    return _sequence(parts, make_step, then)


def _sequence(
    parts: list[Block], make_step: StepSignature, then: Signature | None
) -> Signature:
    items: list[Signature] = []
    for i, part in enumerate(parts):
        if isinstance(part, Step):
            items.append(make_step(part.key))
            continue
        if isinstance(part, Series):  # only reachable for unflattened input
            items.append(_sequence(list(part.parts), make_step, None))
            continue
        rest = parts[i + 1 :]
        body = _sequence(rest, make_step, then) if rest else then
        if body is None:
            body = Signature(JOIN, immutable=True)
        header = group([to_canvas(member, make_step) for member in part.parts])
        items.append(chord(header, body))
        break
    else:
        if then is not None:
            items.append(then)
    return items[0] if len(items) == 1 else chain(*items)
