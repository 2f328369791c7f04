"""The errors the engine raises; every message names the thing at fault."""


class WorkflowError(Exception):
    """Base class of every error raised by django-dagflow."""


class InvalidWorkflow(WorkflowError):
    """Refuse a workflow definition; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str] | str, code: str = "invalid") -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.code = code
        super().__init__("; ".join(self.errors))


class CycleError(InvalidWorkflow):
    """Refuse a dependency cycle; ``cycle`` holds the step keys on it, in order."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]])
        super().__init__(f"cycle: {path}", code="cycle")


class UnknownStepType(InvalidWorkflow):
    """Refuse a step whose type is not registered."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="unknown_type")


class InvalidParams(WorkflowError):
    """Refuse params (of a step or of a run) that fail their JSON schema."""


class RunStateError(WorkflowError):
    """Refuse an action that makes no sense in the run's current state."""


class StepResultError(WorkflowError):
    """Refuse a step result that cannot be stored as JSON."""


class StepTimeout(BaseException):
    """Raised inside a step that ran past its timeout.

    A BaseException, so that a step's own ``except Exception`` cannot swallow
    it and run on past its timeout.
    """


class StaleWorkflow(WorkflowError):
    """Refuse a save based on a version of the workflow that someone replaced."""
