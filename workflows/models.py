"""Workflows and their steps; runs and their step runs with every attempt."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from workflows.querysets import StepRunQuerySet, WorkflowRunQuerySet
from workflows.states import RunStatus, StepStatus

key_validator = RegexValidator(
    r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z",
    _("Use letters, digits, '_', '-' or '.'; start with a letter, digit or '_'."),
    code="invalid_key",
)


class Workflow(models.Model):
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    params_schema = models.JSONField(
        _("run params schema"),
        null=True,
        blank=True,
        help_text=_("JSON schema of the params a run of this workflow accepts."),
    )
    layout = models.JSONField(
        _("layout"),
        default=dict,
        blank=True,
        help_text=_("Node positions kept by the graph editor, keyed by step key."),
    )
    version = models.PositiveIntegerField(
        _("version"),
        default=1,
        help_text=_(
            "Raised by every save; a save based on an older version is refused."
        ),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name", "slug"]
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        permissions = [("run_workflow", _("Can start runs of a workflow"))]

    def __str__(self) -> str:
        return self.name or self.slug


class Step(models.Model):
    workflow = models.ForeignKey(
        Workflow, models.CASCADE, related_name="steps", verbose_name=_("workflow")
    )
    key = models.CharField(
        _("key"),
        max_length=100,
        validators=[key_validator],
        help_text=_(
            "Unique within the workflow; downstream steps find its result by it."
        ),
    )
    label = models.CharField(_("label"), max_length=200, blank=True)
    step_type = models.CharField(_("step type"), max_length=100)
    params = models.JSONField(_("params"), default=dict, blank=True)
    upstream = models.ManyToManyField(
        "self",
        symmetrical=False,
        related_name="downstream",
        blank=True,
        verbose_name=_("runs after"),
        help_text=_("Steps of the same workflow that must succeed before this one."),
    )
    retries = models.PositiveIntegerField(
        _("retries"),
        null=True,
        blank=True,
        help_text=_("Extra attempts after a failure; empty: the step type's default."),
    )
    retry_delay = models.FloatField(
        _("retry delay"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Seconds between attempts; empty: the step type's default."),
    )
    timeout = models.FloatField(
        _("timeout"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text=_("Seconds an attempt may take; empty: the step type's default."),
    )
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["workflow", "position", "key"]
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "key"], name="workflows_step_key_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(retry_delay__isnull=True)
                | models.Q(retry_delay__gte=0),
                name="workflows_step_retry_delay_gte_0",
            ),
            models.CheckConstraint(
                condition=models.Q(timeout__isnull=True) | models.Q(timeout__gt=0),
                name="workflows_step_timeout_gt_0",
            ),
        ]

    def __str__(self) -> str:
        return self.label or self.key


class WorkflowRun(models.Model):
    workflow = models.ForeignKey(
        Workflow, models.PROTECT, related_name="runs", verbose_name=_("workflow")
    )
    snapshot = models.JSONField(
        _("snapshot"),
        help_text=_("The workflow as it was when the run started; the run follows it."),
    )
    params = models.JSONField(_("params"), default=dict, blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=RunStatus.choices,
        default=RunStatus.PENDING,
        db_index=True,
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    generation = models.PositiveIntegerField(
        _("generation"),
        default=0,
        help_text=_(
            "Raised by every dispatch (start, rerun, resume, cancel); messages of an "
            "older generation do nothing."
        ),
    )
    dispatch_keys = models.JSONField(
        _("dispatched steps"),
        default=list,
        blank=True,
        help_text=_("Keys of the steps the current generation runs."),
    )

    request_id = models.CharField(
        _("request id"),
        max_length=64,
        null=True,
        blank=True,
        unique=True,
        help_text=_(
            "Set by the form that started the run, so a double submit starts one."
        ),
    )

    objects = WorkflowRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("workflow run")
        verbose_name_plural = _("workflow runs")
        permissions = [
            ("rerun_workflowrun", _("Can rerun steps of a workflow run")),
            ("cancel_workflowrun", _("Can cancel a workflow run")),
        ]

    def __str__(self) -> str:
        return f"{self.snapshot.get('slug', self.workflow_id)} #{self.pk}"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class StepRun(models.Model):
    run = models.ForeignKey(
        WorkflowRun, models.CASCADE, related_name="step_runs", verbose_name=_("run")
    )
    key = models.CharField(_("key"), max_length=100)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=StepStatus.choices,
        default=StepStatus.PENDING,
        db_index=True,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    task_id = models.CharField(_("Celery task id"), max_length=255, blank=True)
    worker = models.CharField(
        _("worker"),
        max_length=255,
        blank=True,
        help_text=_("host:pid of the process running the step."),
    )
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)
    deferred = models.BooleanField(
        _("deferred"),
        default=False,
        help_text=_(
            "Its message came before its upstream steps ended; the last of them "
            "to end sends it again."
        ),
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    spec = models.JSONField(
        _("definition"),
        default=dict,
        help_text=_("The step as the run's snapshot defines it, options resolved."),
    )
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    log = models.TextField(_("log"), blank=True)

    objects = StepRunQuerySet.as_manager()

    class Meta:
        ordering = ["run", "id"]
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "key"], name="workflows_steprun_key_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class StepAttempt(models.Model):
    """One execution of a step function: the history that reruns keep."""

    step_run = models.ForeignKey(
        StepRun, models.CASCADE, related_name="history", verbose_name=_("step run")
    )
    number = models.PositiveIntegerField(_("attempt"))
    status = models.CharField(_("status"), max_length=20, choices=StepStatus.choices)
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    log = models.TextField(_("log"), blank=True)

    class Meta:
        ordering = ["step_run", "number"]
        verbose_name = _("step attempt")
        verbose_name_plural = _("step attempts")
        constraints = [
            models.UniqueConstraint(
                fields=["step_run", "number"], name="workflows_stepattempt_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_run.key} attempt {self.number} ({self.status})"


class DispatchSegment(models.Model):
    """One published piece of a run's canvas; the next is sent when it ends."""

    run = models.ForeignKey(
        WorkflowRun, models.CASCADE, related_name="segments", verbose_name=_("run")
    )
    generation = models.PositiveIntegerField(_("generation"))
    index = models.PositiveIntegerField(_("index"))
    block = models.JSONField(_("block"))
    after = models.JSONField(
        _("after"),
        default=list,
        help_text=_("Indexes of the segments that must end before this one is sent."),
    )
    published = models.BooleanField(_("published"), default=False)
    finished = models.BooleanField(_("finished"), default=False)

    class Meta:
        ordering = ["run", "generation", "index"]
        verbose_name = _("dispatch segment")
        verbose_name_plural = _("dispatch segments")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "generation", "index"],
                name="workflows_dispatchsegment_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} generation {self.generation} segment {self.index}"
