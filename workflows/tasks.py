"""The Celery tasks: thin wrappers over ``execution`` and ``runs``.

Task names are explicit and stable so that renaming a module never strands
queued messages. Every task is safe to receive twice.
"""

from celery import shared_task

from workflows import execution, runs


@shared_task(
    name="workflows.run_step",
    acks_late=True,
    reject_on_worker_lost=True,
)
def run_step(run_id: int, key: str, generation: int) -> str:
    """Execute one step; never raises, so the canvas always moves on."""
    return execution.execute_step(run_id, key, generation)


@shared_task(name="workflows.advance_run", acks_late=True, reject_on_worker_lost=True)
def advance_run(run_id: int, generation: int, index: int) -> str:
    """Publish the next segment of a run, or settle the run after the last one."""
    return runs.advance(run_id, generation, index)


@shared_task(name="workflows.join")
def join() -> None:
    """Do nothing: the explicit body of a chord that ends a parallel branch."""
