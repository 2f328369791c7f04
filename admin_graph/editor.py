"""EditorViewsMixin: the graph editor page and its JSON save endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path


class EditorViewsMixin:
    """Add the graph editor views to a Workflow ModelAdmin.

    get_urls() puts ``<object_id>/editor/`` and ``<object_id>/editor/save/``
    before the admin's catch-all patterns.
    """

    def get_urls(self):
        opts = self.opts
        prefix = f"{opts.app_label}_{opts.model_name}"
        extra = [
            path(
                "<path:object_id>/editor/",
                self.admin_site.admin_view(self.editor_view),
                name=f"{prefix}_editor",
            ),
            path(
                "<path:object_id>/editor/save/",
                self.admin_site.admin_view(self.editor_save_view),
                name=f"{prefix}_editor_save",
            ),
        ]
        return extra + super().get_urls()

    def editor_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Render the graph editor (filled in shortly)."""
        return HttpResponse("editor")

    def editor_save_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Save the graph (filled in shortly)."""
        return JsonResponse({"ok": False, "errors": ["not implemented"]}, status=501)
