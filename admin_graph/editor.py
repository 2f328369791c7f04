"""EditorViewsMixin: the graph editor page and its JSON save endpoint.

The page draws and edits the workflow in the browser; the endpoint hands the
whole graph to :func:`workflows.spec.save_steps`, which validates it with the
engine's own rules and writes it in one transaction. The editor therefore can
never store what the engine would refuse.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from admin_graph.mixins import admin_paths
from workflows.exceptions import CycleError, InvalidWorkflow, StaleWorkflow
from workflows.registry import registry
from workflows.spec import save_steps, workflow_steps

#: Largest request body the save endpoint reads; a graph of thousands of steps
#: fits well below it, anything larger is refused before it is parsed.
MAX_PAYLOAD_BYTES = 1_000_000


def step_types_data() -> list[dict[str, Any]]:
    """Return the registered step types as the editor's palette needs them."""
    return [
        {
            "name": t.name,
            "label": t.label,
            "description": t.description,
            "params_schema": t.params_schema,
            "defaults": t.default_params(),
            "retries": t.retries,
            "retry_delay": t.retry_delay,
            "timeout": t.timeout,
        }
        for t in registry
    ]


def layout_errors(layout: Any) -> list[str]:
    """Return why *layout* is not ``{key: {"x": number, "y": number}}``."""
    if not isinstance(layout, dict):
        return [_("layout must be an object of node positions")]
    errors = []
    for key, pos in layout.items():
        ok = isinstance(pos, dict) and all(
            isinstance(pos.get(axis), int | float)
            and not isinstance(pos.get(axis), bool)
            and math.isfinite(pos[axis])
            for axis in ("x", "y")
        )
        if not ok:
            message = _("layout of step %(key)r must be {x: number, y: number}")
            errors.append(message % {"key": key})
    return errors


class EditorViewsMixin:
    """Add the graph editor views to a Workflow ModelAdmin.

    get_urls() puts ``<object_id>/editor/`` and ``<object_id>/editor/save/``
    before the admin's catch-all patterns. The page needs the view permission;
    the save endpoint needs the change permission and a CSRF token.
    """

    editor_template = "admin/workflows/workflow/editor.html"
    editor_max_payload = MAX_PAYLOAD_BYTES

    def get_urls(self):
        routes = [
            ("<path:object_id>/editor/", self.editor_view, "editor"),
            ("<path:object_id>/editor/save/", self.editor_save_view, "editor_save"),
        ]
        return admin_paths(self, routes) + super().get_urls()

    def _admin_url(self, verb: str, *args: Any) -> str | None:
        opts = self.opts
        name = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{verb}"
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            return None

    def editor_data(self, request: HttpRequest, workflow) -> dict[str, Any]:
        """Return what the editor's script starts from (passed with json_script)."""
        return {
            "workflow": {
                "id": workflow.pk,
                "slug": workflow.slug,
                "name": str(workflow),
            },
            "steps": workflow_steps(workflow),
            "layout": workflow.layout or {},
            "version": workflow.version,
            "types": step_types_data(),
            "canChange": self.has_change_permission(request, workflow),
            "saveUrl": self._admin_url("editor_save", workflow.pk),
            "maxPayload": self.editor_max_payload,
        }

    def editor_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Render the graph editor of one workflow (read-only without change perm)."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        data = self.editor_data(request, obj)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": _("Edit graph: %(name)s") % {"name": obj}
            if data["canChange"]
            else _("Graph: %(name)s") % {"name": obj},
            "editor_data": data,
            "can_change": data["canChange"],
            "change_url": self._admin_url("change", obj.pk),
            "run_url": self._admin_url("run", obj.pk)
            if request.user.has_perm(f"{self.opts.app_label}.run_workflow")
            else None,
            "has_view_permission": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.editor_template, context)

    def editor_save_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replace the workflow's steps and layout by the posted graph, all or nothing.

        Body: ``{"version": n, "steps": [spec, ...], "layout": {key: {x, y}}}``.
        Answers ``{"ok": true, "version": new}``, or ``{"ok": false, "errors":
        [...]}`` with 400 (invalid), 403 (no permission), 404, 405 (not POST),
        409 (someone else saved since *version*) or 413 (body too large).
        """
        if request.method != "POST":
            return _refuse(405, [_("Save with a POST request.")])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return _refuse(404, [_("This workflow does not exist (any more).")])
        if not self.has_change_permission(request, obj):
            return _refuse(
                403, [_("You do not have permission to change this workflow.")]
            )
        limit = self.editor_max_payload
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return _too_large(limit)
        body = request.body
        if len(body) > limit:
            return _too_large(limit)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _refuse(400, [_("The request body is not valid JSON.")])
        errors = []
        if not isinstance(payload, dict):
            return _refuse(400, [_("The request body must be a JSON object.")])
        version = payload.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            errors.append(
                _("'version' is required: the version the editor started from.")
            )
        if "steps" not in payload:
            errors.append(_("'steps' is required: the list of steps."))
        elif not isinstance(payload["steps"], list):
            errors.append(_("'steps' must be a list of steps."))
        layout = payload.get("layout", {})
        errors.extend(layout_errors(layout))
        if errors:
            return _refuse(400, errors)
        steps = payload["steps"]
        keys = {s.get("key") for s in steps if isinstance(s, dict)}
        # Positions of steps that no longer exist are dropped, not refused:
        # they are harmless leftovers of the editor's history.
        layout = {k: {"x": v["x"], "y": v["y"]} for k, v in layout.items() if k in keys}
        try:
            with transaction.atomic():
                save_steps(obj, steps, expected_version=version, layout=layout)
                obj.refresh_from_db()
                self.log_change(
                    request,
                    obj,
                    _("Changed the graph in the editor: %(n)d steps (version %(v)d).")
                    % {"n": len(steps), "v": obj.version},
                )
        except StaleWorkflow:
            return _refuse(
                409,
                [
                    _(
                        "Someone else saved this workflow since you opened the "
                        "editor; your changes were not saved. Reload the page to "
                        "see their version, then apply your changes again."
                    )
                ],
                stale=True,
            )
        except CycleError as exc:
            return _refuse(400, exc.errors, cycle=exc.cycle)
        except InvalidWorkflow as exc:
            return _refuse(400, exc.errors)
        return JsonResponse({"ok": True, "version": obj.version})


def _refuse(status: int, errors: list[str], **extra: Any) -> JsonResponse:
    return JsonResponse(
        {"ok": False, "errors": [str(e) for e in errors], **extra}, status=status
    )


def _too_large(limit: int) -> JsonResponse:
    return _refuse(
        413,
        [
            _("The graph is too large to save: the limit is %(kb)d kB.")
            % {"kb": limit // 1000}
        ],
    )
