"""The ModelAdmins of workflows' models: compose, run, watch and rerun in the admin."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.db.models import Count, Q
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from admin_graph import graph as graphs
from admin_graph.editor import EditorViewsMixin
from admin_graph.forms import (
    ConfirmRunForm,
    RunActionForm,
    RunParamsForm,
    StepForm,
    StepFormSet,
    WorkflowForm,
    step_types_data,
)
from admin_graph.mixins import GraphViewsMixin, admin_paths
from workflows import runs
from workflows.dag import downstream_of, snapshot_graph
from workflows.exceptions import InvalidParams, InvalidWorkflow, RunStateError
from workflows.models import Step, StepAttempt, StepRun, Workflow, WorkflowRun
from workflows.registry import registry
from workflows.spec import save_steps, workflow_steps
from workflows.states import RUN_FINAL, STEP_FINAL, STEP_RERUNNABLE, StepStatus


def format_duration(value: timedelta | None) -> str:
    """Return *value* as staff read it: "850 ms", "4.2 s", "3 min 05 s"."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def status_badge(status: str, label: str) -> str:
    """Return the coloured badge of a run or step *status*."""
    return format_html('<span class="dagflow-badge state-{}">{}</span>', status, label)


def pretty_json(value) -> str:
    """Return *value* as indented JSON in a <pre>, escaped."""
    return format_html(
        '<pre class="dagflow-json">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
    )


def type_labels() -> dict[str, str]:
    """Return the label of every registered step type, by name."""
    return {t.name: t.label for t in registry}


def running_time(obj) -> str:
    """Return how long *obj* (a run or step run) ran, or runs so far."""
    if not obj.started_at:
        return "—"
    return format_duration((obj.finished_at or timezone.now()) - obj.started_at)


class StepInline(admin.StackedInline):
    model = Step
    form = StepForm
    formset = StepFormSet
    extra = 0
    fieldsets = [
        (None, {"fields": [("key", "label", "step_type"), "params", "after"]}),
        (
            gettext_lazy("Retries and timeout"),
            {
                "fields": [("retries", "retry_delay", "timeout")],
                "classes": ["collapse"],
            },
        ),
    ]


@admin.register(Workflow)
class WorkflowAdmin(EditorViewsMixin, GraphViewsMixin, admin.ModelAdmin):
    form = WorkflowForm
    inlines = [StepInline]
    list_display = ["name", "slug", "step_count", "version", "updated_at"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["version"]
    fields = [
        "name",
        "slug",
        "description",
        "params_schema",
        "version",
        "loaded_version",
    ]
    actions = ["run_selected"]

    class Media:
        css = {"all": ["admin_graph/css/graph.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_step_count=Count("steps"))

    @admin.display(description=gettext_lazy("steps"), ordering="_step_count")
    def step_count(self, obj):
        return obj._step_count

    # Permissions -------------------------------------------------------

    def has_run_permission(self, request, obj=None) -> bool:
        """Return whether the user may start runs (workflows.run_workflow)."""
        return request.user.has_perm(f"{self.opts.app_label}.run_workflow")

    # URLs ----------------------------------------------------------------

    def get_urls(self):
        routes = [
            ("step-types/", self.step_types_view, "step_types"),
            ("<path:object_id>/run/", self.run_view, "run"),
        ]
        return admin_paths(self, routes) + super().get_urls()

    # Saving --------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if change:
            # The version is raised by save_steps() alone, atomically.
            obj.save(
                update_fields=[
                    "name",
                    "slug",
                    "description",
                    "params_schema",
                    "updated_at",
                ]
            )
        else:
            obj.save()

    def save_related(self, request, form, formsets, change):
        form.save_m2m()
        for formset in formsets:
            if isinstance(formset, StepFormSet):
                self.save_steps(request, form, formset, change)
            else:
                self.save_formset(request, form, formset, change=change)

    def save_steps(self, request, form, formset, change):
        """Store the inline's steps with the engine's one atomic save (version + 1)."""
        expected = form.cleaned_data.get("loaded_version") if change else None
        save_steps(form.instance, formset.specs, expected_version=expected)
        # What construct_change_message() reads after a formset.save().
        formset.new_objects = [
            f.instance for f in formset.kept_forms() if not f.instance.pk
        ]
        formset.changed_objects = [
            (f.instance, f.changed_data)
            for f in formset.kept_forms()
            if f.instance.pk and f.has_changed()
        ]
        formset.deleted_objects = [
            f.instance for f in formset.initial_forms if formset._should_delete_form(f)
        ]

    # Pages ---------------------------------------------------------------

    def get_graph(self, request, obj) -> dict:
        data = graphs.steps_graph(workflow_steps(obj), type_labels())
        data["dot"] = graphs.to_dot(data, obj.slug)
        data["version"] = obj.version
        return data

    def graph_context(self, request, obj) -> dict:
        return {"can_run": self.has_run_permission(request, obj)}

    def render_change_form(
        self, request, context, add=False, change=False, form_url="", obj=None
    ):
        context["step_types"] = step_types_data()
        context["can_run"] = self.has_run_permission(request, obj)
        if obj is not None and obj.pk:
            context["graph"] = self.get_graph(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def step_types_view(self, request):
        """List the registered step types with their descriptions and params schemas."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        types = [
            {
                "name": t.name,
                "label": t.label,
                "description": t.description,
                "schema": json.dumps(t.params_schema, indent=2, ensure_ascii=False),
                "defaults": {
                    "retries": t.retries,
                    "retry_delay": t.retry_delay,
                    "timeout": t.timeout,
                    "queue": t.queue,
                },
            }
            for t in registry
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Step types"),
            "step_types": types,
        }
        return TemplateResponse(
            request, "admin/workflows/workflow/step_types.html", context
        )

    def run_view(self, request, object_id):
        """Ask for the run params, confirm them, then start one run.

        The ``request_id`` made when the form is first shown travels through
        the confirmation, so a double submit returns the run already started.
        """
        workflow = self.get_viewable_object(request, object_id)
        if not self.has_run_permission(request, workflow):
            raise PermissionDenied
        form = confirm = None
        if request.method == "POST" and "confirm" in request.POST:
            confirm = ConfirmRunForm(request.POST)
            if confirm.is_valid():
                response = self._start(request, workflow, confirm.cleaned_data)
                if response is not None:
                    return response
            form = RunParamsForm(
                workflow=workflow,
                initial={
                    "request_id": uuid.uuid4().hex,
                    "params": confirm.cleaned_data.get("params_json", {}),
                },
            )
            confirm = None
        elif request.method == "POST":
            form = RunParamsForm(request.POST, workflow=workflow)
            if form.is_valid():
                confirm = ConfirmRunForm(
                    initial={
                        "request_id": form.cleaned_data["request_id"],
                        "params_json": json.dumps(form.cleaned_data["params"]),
                    }
                )
        else:
            form = RunParamsForm(
                workflow=workflow,
                initial={"request_id": uuid.uuid4().hex, "params": {}},
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": workflow,
            "title": _("Run %(workflow)s") % {"workflow": workflow},
            "form": form,
            "confirm": confirm,
            "params_preview": (
                json.dumps(json.loads(confirm.initial["params_json"]), indent=2)
                if confirm
                else ""
            ),
            "media": self.media + (form.media if form else confirm.media),
        }
        return TemplateResponse(request, "admin/workflows/workflow/run.html", context)

    def _start(self, request, workflow, data):
        request_id = data["request_id"]
        again = WorkflowRun.objects.filter(request_id=request_id).exists()
        try:
            run = runs.start_run(
                workflow, data["params_json"], request.user, request_id=request_id
            )
        except IntegrityError:
            # Two submits raced past the engine's look-up; the first one won.
            run = WorkflowRun.objects.get(request_id=request_id)
            again = True
        except (InvalidParams, InvalidWorkflow) as exc:
            messages.error(
                request, _("The run was not started: %(error)s") % {"error": exc}
            )
            return None
        if again:
            messages.warning(
                request,
                _("This form was already submitted: run #%(id)s is the run it started.")
                % {"id": run.pk},
            )
        else:
            self.log_change(
                request, workflow, _("Started run #%(id)s.") % {"id": run.pk}
            )
            messages.success(request, _("Run #%(id)s started.") % {"id": run.pk})
        return HttpResponseRedirect(
            reverse("admin:workflows_workflowrun_change", args=[run.pk])
        )

    @admin.action(
        description=gettext_lazy("Run the selected workflow"),
        permissions=["run"],
    )
    def run_selected(self, request, queryset):
        """Open the run page of the one selected workflow."""
        workflows = list(queryset[:2])
        if len(workflows) != 1:
            self.message_user(
                request,
                _("Select exactly one workflow to run."),
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(
            reverse("admin:workflows_workflow_run", args=[workflows[0].pk])
        )


class RunProgressMixin:
    """Annotate step counts so change lists show progress in one query."""

    def annotate_progress(self, queryset):
        return queryset.annotate(
            _total=Count("step_runs"),
            _finished=Count("step_runs", filter=Q(step_runs__status__in=STEP_FINAL)),
        )


LIVE_FIELDS = {"started_at", "finished_at", "duration"}

#: The headings of the rerun confirmation, one group of steps per status, in
#: this order: a step that did not run because an upstream step failed is not
#: itself a failed step.
STEP_RERUNNABLE_TITLES = {
    StepStatus.FAILED: gettext_lazy("Failed"),
    StepStatus.UPSTREAM_FAILED: gettext_lazy("Not run because an upstream step failed"),
    StepStatus.CANCELLED: gettext_lazy("Cancelled"),
}
STEP_RERUNNABLE_ORDER = tuple(STEP_RERUNNABLE_TITLES)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(RunProgressMixin, GraphViewsMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "status_badge",
        "progress",
        "workflow",
        "started_by",
        "started_at",
        "duration",
    ]
    list_filter = ["status", "workflow"]
    list_select_related = ["workflow", "started_by"]
    date_hierarchy = "created_at"
    search_fields = ["=id", "workflow__slug", "workflow__name"]
    # Status and progress are shown live above the fields, with the graph.
    fields = [
        "workflow",
        "params_display",
        "started_by",
        "created_at",
        "started_at",
        "finished_at",
        "duration",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": ["admin_graph/css/graph.css"]}

    def get_fields(self, request, obj=None):
        # Times that change while the run goes would be stale on a page that
        # updates only its live part: show them once the run has ended.
        if obj is not None and obj.status not in RUN_FINAL:
            return [f for f in self.fields if f not in LIVE_FIELDS]
        return self.fields

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("workflow", "started_by")
        return self.annotate_progress(qs)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Runs change only through workflows.runs (start, rerun, cancel).
        return False

    def has_rerun_permission(self, request, obj=None) -> bool:
        """Return whether the user may rerun steps (workflows.rerun_workflowrun)."""
        return request.user.has_perm(f"{self.opts.app_label}.rerun_workflowrun")

    def has_cancel_permission(self, request, obj=None) -> bool:
        """Return whether the user may cancel runs (workflows.cancel_workflowrun)."""
        return request.user.has_perm(f"{self.opts.app_label}.cancel_workflowrun")

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, obj):
        total, finished = obj._total, obj._finished
        percent = round(100 * finished / total) if total else 0
        return format_html(
            '<span class="dagflow-progress" title="{} / {}">'
            '<span class="dagflow-progress-bar state-{}" style="width: {}%"></span>'
            '</span> <span class="dagflow-progress-text">{} / {}</span>',
            finished,
            total,
            obj.status,
            percent,
            finished,
            total,
        )

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj):
        return running_time(obj)

    @admin.display(description=gettext_lazy("params"))
    def params_display(self, obj):
        return pretty_json(obj.params)

    # URLs ----------------------------------------------------------------

    def get_urls(self):
        routes = [
            ("<path:object_id>/status.json", self.status_view, "status"),
            ("<path:object_id>/rerun/", self.rerun_view, "rerun"),
            ("<path:object_id>/cancel/", self.cancel_view, "cancel"),
        ]
        return admin_paths(self, routes) + super().get_urls()

    # Graph and status ----------------------------------------------------

    def step_rows(self, run) -> list[dict]:
        """Return the run's step runs in one query: what the page and the JSON need."""
        return list(
            StepRun.objects.filter(run=run).values(
                "pk", "key", "status", "attempts", "started_at", "finished_at"
            )
        )

    def run_status_data(self, request, run, rows) -> dict:
        """Return the small JSON the run page polls: the run and each step's state."""
        url = None
        if request.user.has_perm("workflows.view_steprun"):
            url = reverse("admin:workflows_steprun_change", args=[0]).replace(
                "/0/", "/{id}/"
            )
        steps = {
            r["key"]: {
                "status": r["status"],
                "attempts": r["attempts"],
                "started_at": r["started_at"].isoformat() if r["started_at"] else None,
                "finished_at": r["finished_at"].isoformat()
                if r["finished_at"]
                else None,
                "url": url and url.replace("{id}", str(r["pk"])),
            }
            for r in rows
        }
        finished = sum(1 for r in rows if r["status"] in STEP_FINAL)
        final = run.status in RUN_FINAL
        duration = None
        if run.started_at:
            duration = format_duration(
                (run.finished_at or timezone.now()) - run.started_at
            )
        return {
            "id": run.pk,
            "status": run.status,
            "status_label": run.get_status_display(),
            "final": final,
            # "Rerun failed steps" has something to do only on an ended run
            # with a failed, upstream-failed or cancelled step.
            "rerunnable": final and any(r["status"] in STEP_RERUNNABLE for r in rows),
            "finished": finished,
            "total": len(rows),
            "duration": duration,
            "now": timezone.now().isoformat(),
            "steps": steps,
        }

    def get_graph(self, request, obj) -> dict:
        rows = self.step_rows(obj)
        data = graphs.run_graph(obj.snapshot, {r["key"]: r["status"] for r in rows})
        data["dot"] = graphs.to_dot(data, obj.snapshot.get("slug") or "run")
        data["run"] = self.run_status_data(request, obj, rows)
        data["status_url"] = reverse(
            "admin:workflows_workflowrun_status", args=[obj.pk]
        )
        return data

    def graph_context(self, request, obj) -> dict:
        return self.action_context(request, obj)

    def action_context(self, request, obj) -> dict:
        return {
            "can_rerun": self.has_rerun_permission(request, obj),
            "can_cancel": self.has_cancel_permission(request, obj),
            "states": [{"value": s.value, "label": s.label} for s in StepStatus],
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra_context = dict(extra_context or {})
        if obj is not None and self.has_view_permission(request, obj):
            extra_context["graph"] = self.get_graph(request, obj)
            extra_context.update(self.action_context(request, obj))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_object(self, request, object_id, from_field=None):
        # change_view() and the admin both look the run up; keep it to one query.
        cache = request.__dict__.setdefault("_dagflow_runs", {})
        if (object_id, from_field) not in cache:
            cache[object_id, from_field] = super().get_object(
                request, object_id, from_field
            )
        return cache[object_id, from_field]

    def status_view(self, request, object_id):
        """Return the run's state and each step's, for the page to poll."""
        run = self.get_viewable_object(request, object_id)
        return JsonResponse(self.run_status_data(request, run, self.step_rows(run)))

    # Actions ---------------------------------------------------------------

    def rerun_view(self, request, object_id):
        """Confirm, then rerun the failed steps, or one step and everything after it."""
        run = self.get_viewable_object(request, object_id)
        if not self.has_rerun_permission(request, run):
            raise PermissionDenied
        step = request.POST.get("step") or request.GET.get("step") or ""
        steps = run.snapshot.get("steps", {})
        if step and step not in steps:
            messages.error(
                request,
                _("Run #%(id)s has no step %(step)r.") % {"id": run.pk, "step": step},
            )
            return self._back(run)
        if step:
            keys = sorted(downstream_of(snapshot_graph(run.snapshot), [step]))
            title = _("Rerun from step %(step)s") % {"step": step}
            groups = []
        else:
            failed = StepRun.objects.filter(run=run, status__in=STEP_RERUNNABLE)
            by_status = dict.fromkeys(STEP_RERUNNABLE_ORDER, ())
            for status, key in failed.order_by("key").values_list("status", "key"):
                by_status[status] = (*by_status[status], key)
            keys = sorted(k for group in by_status.values() for k in group)
            if not keys and request.method != "POST":
                # The button is hidden on such runs, but the URL can still be
                # opened. A POST goes on: a changed generation is reported
                # first, and runs.rerun() refuses a run with nothing to rerun.
                messages.error(
                    request,
                    _("Run #%(id)s has no failed or cancelled step to rerun.")
                    % {"id": run.pk},
                )
                return self._back(run)
            title = _("Rerun failed steps")
            groups = [
                (STEP_RERUNNABLE_TITLES[status], group)
                for status, group in by_status.items()
                if group
            ]

        def act():
            runs.rerun(run, failed=not step, from_key=step or None, user=request.user)
            return (
                _("Rerunning step %(step)s and the steps after it.") % {"step": step}
                if step
                else _("Rerunning the failed steps and the steps after them.")
            )

        return self._confirm_action(
            request,
            run,
            title,
            act,
            keys=keys,
            groups=groups,
            step=step,
            action="rerun",
        )

    def cancel_view(self, request, object_id):
        """Confirm, then cancel the run: every step not yet final ends cancelled."""
        run = self.get_viewable_object(request, object_id)
        if not self.has_cancel_permission(request, run):
            raise PermissionDenied

        def act():
            runs.cancel(run, user=request.user)
            return _("Run #%(id)s cancelled.") % {"id": run.pk}

        return self._confirm_action(request, run, _("Cancel run"), act, action="cancel")

    def _confirm_action(
        self, request, run, title, act, *, action, keys=(), groups=(), step=""
    ):
        """Show a confirmation page; on its POST, act once on the generation shown."""
        if request.method == "POST":
            form = RunActionForm(request.POST)
            if form.is_valid():
                if form.cleaned_data["generation"] != run.generation:
                    messages.error(
                        request,
                        _(
                            "Run #%(id)s changed since you opened the confirmation "
                            "(someone else may have acted on it); nothing was done. "
                            "Check its state and try again."
                        )
                        % {"id": run.pk},
                    )
                    return self._back(run)
                try:
                    message = act()
                except RunStateError as exc:
                    messages.error(request, str(exc))
                else:
                    self.log_change(request, run, message)
                    messages.success(request, message)
                return self._back(run)
        else:
            form = RunActionForm(initial={"generation": run.generation, "step": step})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": run,
            "title": title,
            "action": action,
            "form": form,
            "keys": keys,
            "groups": groups,
            "step": step,
        }
        return TemplateResponse(
            request, "admin/workflows/workflowrun/confirm_action.html", context
        )

    def _back(self, run):
        return HttpResponseRedirect(
            reverse("admin:workflows_workflowrun_change", args=[run.pk])
        )


class StepAttemptInline(admin.TabularInline):
    model = StepAttempt
    fields = [
        "number",
        "status",
        "worker",
        "started_at",
        "finished_at",
        "duration",
        "error",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = gettext_lazy("attempts")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj):
        if obj.started_at and obj.finished_at:
            return format_duration(obj.finished_at - obj.started_at)
        return "—"


@admin.register(StepRun)
class StepRunAdmin(admin.ModelAdmin):
    list_display = ["key", "run", "status_badge", "attempts", "started_at", "duration"]
    list_filter = ["status"]
    list_select_related = ["run"]
    search_fields = ["key", "=run__id"]
    inlines = [StepAttemptInline]
    fields = [
        "run_link",
        "key",
        "status_badge",
        "attempts",
        "worker",
        "started_at",
        "finished_at",
        "duration",
        "params_display",
        "inputs_display",
        "result_display",
        "error",
        "traceback_display",
        "log_display",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": ["admin_graph/css/graph.css"]}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("run"))
    def run_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:workflows_workflowrun_change", args=[obj.run_id]),
            obj.run,
        )

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj):
        return running_time(obj)

    @admin.display(description=gettext_lazy("params"))
    def params_display(self, obj):
        return pretty_json(obj.spec.get("params", {}))

    @admin.display(description=gettext_lazy("inputs (results of upstream steps)"))
    def inputs_display(self, obj):
        after = obj.spec.get("after") or []
        inputs = dict(
            StepRun.objects.filter(run_id=obj.run_id, key__in=after).values_list(
                "key", "result"
            )
        )
        return pretty_json(inputs)

    @admin.display(description=gettext_lazy("result"))
    def result_display(self, obj):
        return pretty_json(obj.result)

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_display(self, obj):
        return format_html('<pre class="dagflow-pre">{}</pre>', obj.traceback or "—")

    @admin.display(description=gettext_lazy("log"))
    def log_display(self, obj):
        return format_html('<pre class="dagflow-pre">{}</pre>', obj.log or "—")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["can_rerun"] = request.user.has_perm(
            "workflows.rerun_workflowrun"
        )
        return super().change_view(request, object_id, form_url, extra_context)
