"""Named queries for runs and step runs."""

from django.db import models

from workflows.states import RUN_FINAL, STEP_FINAL


class WorkflowRunQuerySet(models.QuerySet):
    def in_flight(self):
        """Return runs that are not final yet."""
        return self.exclude(status__in=RUN_FINAL)

    def final(self):
        return self.filter(status__in=RUN_FINAL)


class StepRunQuerySet(models.QuerySet):
    def final(self):
        return self.filter(status__in=STEP_FINAL)

    def not_final(self):
        return self.exclude(status__in=STEP_FINAL)
