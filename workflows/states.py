"""Step and run states, which of them are final, and which a worker may claim."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class StepStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    RETRYING = "retrying", _("Retrying")
    SUCCESS = "success", _("Success")
    FAILED = "failed", _("Failed")
    UPSTREAM_FAILED = "upstream_failed", _("Upstream failed")
    CANCELLED = "cancelled", _("Cancelled")


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCESS = "success", _("Success")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


STEP_FINAL = frozenset(
    {
        StepStatus.SUCCESS,
        StepStatus.FAILED,
        StepStatus.UPSTREAM_FAILED,
        StepStatus.CANCELLED,
    }
)
# A worker may start a step only from these; anything else means another
# delivery got there first.
STEP_CLAIMABLE = frozenset({StepStatus.PENDING, StepStatus.QUEUED})
# A rerun of failed steps resets these (and everything downstream of them).
STEP_RERUNNABLE = frozenset(
    {StepStatus.FAILED, StepStatus.UPSTREAM_FAILED, StepStatus.CANCELLED}
)
RUN_FINAL = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})


def run_status_from_steps(statuses: list[str]) -> str:
    """Return the status a run has once every one of its steps is final."""
    if any(s == StepStatus.CANCELLED for s in statuses):
        return RunStatus.CANCELLED
    if any(s in (StepStatus.FAILED, StepStatus.UPSTREAM_FAILED) for s in statuses):
        return RunStatus.FAILED
    return RunStatus.SUCCESS
