"""django-dagflow's engine: workflows stored as DAGs of steps, run by Celery."""

from workflows.registry import StepContext, registry, step

__version__ = "0.1.0"

__all__ = ["StepContext", "__version__", "registry", "step"]
