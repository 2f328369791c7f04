"""GraphViewsMixin: get_urls() adds <pk>/graph/ and <pk>/graph.json to a ModelAdmin."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _


def admin_paths(model_admin, routes: list[tuple[str, Callable, str]]) -> list:
    """Return URL patterns of *routes* ``(route, view, verb)`` for *model_admin*.

    Each view is wrapped in ``admin_view`` (login, staff, CSRF-safe caching) and
    named ``<app_label>_<model_name>_<verb>``, the admin's own convention.
    """
    opts = model_admin.opts
    return [
        path(
            route,
            model_admin.admin_site.admin_view(view),
            name=f"{opts.app_label}_{opts.model_name}_{verb}",
        )
        for route, view, verb in routes
    ]


class GraphViewsMixin:
    """Add a graph page and its JSON to a ModelAdmin that defines ``get_graph()``.

    ``get_graph(request, obj)`` returns the dict of ``admin_graph.graph`` with
    a ``dot`` key; both views check the view permission on the object.
    """

    graph_template = None

    def get_urls(self):
        routes = [
            ("<path:object_id>/graph/", self.graph_view, "graph"),
            ("<path:object_id>/graph.json", self.graph_json_view, "graph_json"),
        ]
        return admin_paths(self, routes) + super().get_urls()

    def get_graph(self, request, obj) -> dict:
        """Return ``{"nodes", "edges", "dot"}`` for *obj*."""
        raise NotImplementedError

    def get_viewable_object(self, request, object_id):
        """Return the object *object_id*, or raise Http404 / PermissionDenied."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(
                _("%(name)s with ID %(key)r does not exist.")
                % {"name": self.opts.verbose_name, "key": object_id}
            )
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj

    def graph_view(self, request, object_id):
        """Render the graph of one object on a page of its own."""
        obj = self.get_viewable_object(request, object_id)
        opts = self.opts
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "original": obj,
            "title": _("Graph of %(object)s") % {"object": obj},
            "graph": self.get_graph(request, obj),
            **self.graph_context(request, obj),
        }
        return TemplateResponse(
            request,
            self.graph_template
            or [
                f"admin/{opts.app_label}/{opts.model_name}/graph.html",
                "admin/admin_graph/graph.html",
            ],
            context,
        )

    def graph_context(self, request, obj) -> dict:
        """Return extra context for the graph page (none by default)."""
        return {}

    def graph_json_view(self, request, object_id):
        """Return the graph of one object as JSON: nodes, edges and DOT."""
        obj = self.get_viewable_object(request, object_id)
        return JsonResponse(self.get_graph(request, obj))
