"""Template tags of admin_graph's own admin pages."""

from __future__ import annotations

from typing import Any

import django
from django import template
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext as _

register = template.Library()


@register.inclusion_tag("admin_graph/breadcrumbs.html", takes_context=True)
def dagflow_breadcrumbs(
    context: template.Context,
    current: str,
    obj: Any = None,
    obj_url: str | None = None,
) -> dict[str, Any]:
    """Render the admin's breadcrumbs: Home > app > model > [obj] > *current*.

    The admin changed their markup in Django 6 (``<ol class="breadcrumbs">``
    of ``<li>``, where 5.2 has ``<div class="breadcrumbs">`` with ``&rsaquo;``) and
    each version's CSS styles only its own; this renders the one the running
    Django styles, so the package's pages look like the admin's.
    """
    opts = context["opts"]
    request = context.get("request")
    current_app = getattr(request, "current_app", None)

    def url(name: str, *args: Any, **kwargs: Any) -> str:
        return reverse(
            f"admin:{name}", args=args, kwargs=kwargs or None, current_app=current_app
        )

    crumbs = [
        (url("index"), _("Home")),
        (url("app_list", app_label=opts.app_label), opts.app_config.verbose_name),
        (
            url(f"{opts.app_label}_{opts.model_name}_changelist"),
            capfirst(opts.verbose_name_plural),
        ),
    ]
    if obj is not None:
        if not obj_url:
            obj_url = url(f"{opts.app_label}_{opts.model_name}_change", quote(obj.pk))
        crumbs.append((obj_url, Truncator(str(obj)).words(18, truncate=" …")))
    return {"crumbs": crumbs, "current": current, "ol": django.VERSION >= (6,)}
