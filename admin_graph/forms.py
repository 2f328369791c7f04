"""Admin forms: the step inline (validated by the engine as a whole) and run forms."""

from __future__ import annotations

import copy
import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _
from django_jsonform.forms.fields import JSONFormField
from django_jsonform.widgets import JSONFormWidget

from workflows.dag import validate_params, validate_steps
from workflows.exceptions import CycleError, InvalidParams, InvalidWorkflow
from workflows.models import Step, Workflow
from workflows.registry import NotRegistered, registry


def form_schema(schema: dict | None) -> dict:
    """Return *schema* in a shape django-jsonform can draw.

    An object schema without ``properties`` (any params accepted) becomes an
    object whose keys staff may add; everything else is passed unchanged.
    """
    schema = copy.deepcopy(schema) if schema else {"type": "object"}
    if schema.get("type") == "object" and not schema.get("properties"):
        schema.setdefault("properties", {})
        if schema.get("additionalProperties") is not False:
            schema["additionalProperties"] = True
    return schema


def step_types_data() -> dict:
    """Return every registered step type for the page's JavaScript."""
    return {
        t.name: {
            "label": t.label,
            "description": t.description,
            "schema": form_schema(t.params_schema),
            "defaults": t.default_params(),
        }
        for t in registry
    }


class EngineJSONFormField(JSONFormField):
    """A django-jsonform field that only parses JSON: the engine validates the schema.

    django-jsonform validates with its own implementation; the engine's
    ``validate_params`` is the one that decides, so its messages are the ones
    staff see.
    """

    def validate(self, value):
        forms.JSONField.validate(self, value)

    def run_validators(self, value):
        forms.JSONField.run_validators(self, value)


class StepTypeSelect(forms.Select):
    """A select of step types whose options carry the type's description."""

    def create_option(
        self, name, value, label, selected, index, subindex=None, attrs=None
    ):
        option = super().create_option(
            name, value, label, selected, index, subindex, attrs
        )
        if value in registry:
            option["attrs"]["title"] = registry.get(value).description
        return option


class StepForm(forms.ModelForm):
    """One step of the inline; params are drawn from the chosen type's schema."""

    step_type = forms.ChoiceField(label=_("Step type"), widget=StepTypeSelect)
    params = EngineJSONFormField(
        label=_("Params"), required=False, schema={"type": "object"}
    )
    after = forms.MultipleChoiceField(
        label=_("Runs after"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "Steps of this workflow that must succeed first. Save a new step "
            "before other steps can depend on it."
        ),
    )

    class Meta:
        model = Step
        fields = [
            "key",
            "label",
            "step_type",
            "params",
            "retries",
            "retry_delay",
            "timeout",
        ]

    def __init__(self, *args, sibling_keys: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "---------"), *registry.choices()]
        current = self.instance.step_type if self.instance.pk else ""
        if current and current not in registry:
            # Keep an unregistered type selectable so the engine names it in its error.
            choices.append(
                (current, _("%(name)s (not registered)") % {"name": current})
            )
        self.fields["step_type"].choices = choices
        self.fields["step_type"].widget.attrs["class"] = "dagflow-step-type"
        own = self.instance.key if self.instance.pk else None
        self.fields["after"].choices = [(k, k) for k in sibling_keys or [] if k != own]
        if self.instance.pk:
            self.initial["after"] = [u.key for u in self.instance.upstream.all()]
        type_name = self._chosen_type()
        try:
            schema = registry.get(type_name).params_schema
        except NotRegistered:
            schema = {"type": "object"}
        widget = self.fields["params"].widget
        widget.schema = form_schema(schema)
        widget.attrs["data-dagflow-params"] = "1"

    def _chosen_type(self) -> str:
        if self.is_bound:
            return self.data.get(self.add_prefix("step_type"), "") or ""
        return self.instance.step_type or self.initial.get("step_type", "")

    def clean_params(self):
        return self.cleaned_data.get("params") or {}

    def to_spec(self) -> dict:
        """Return this form's step in the engine's spec format."""
        data = self.cleaned_data
        spec = {
            "key": data.get("key") or "",
            "type": data.get("step_type") or "",
            "params": data.get("params") or {},
            "after": list(data.get("after") or []),
        }
        if data.get("label"):
            spec["label"] = data["label"]
        for name in ("retries", "retry_delay", "timeout"):
            if data.get(name) is not None:
                spec[name] = data[name]
        return spec


class StepFormSet(BaseInlineFormSet):
    """The step inline: validated as a whole by ``workflows.dag.validate_steps``.

    The engine's messages that name a step are shown on that step's form, the
    others (a cycle, for one) above the inline; nothing is saved while any
    remains. ``specs`` holds the validated steps for the save.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sibling_keys = (
            list(self.instance.steps.values_list("key", flat=True))
            if self.instance.pk
            else []
        )

    def get_queryset(self):
        return super().get_queryset().prefetch_related("upstream")

    def get_form_kwargs(self, index):
        kwargs = super().get_form_kwargs(index)
        kwargs["sibling_keys"] = self._sibling_keys
        return kwargs

    def kept_forms(self) -> list[StepForm]:
        """Return the forms describing a step after this save (not deleted/blank)."""
        return [
            f
            for f in self.forms
            if not self._should_delete_form(f) and (f.instance.pk or f.has_changed())
        ]

    def clean(self):
        super().clean()
        self.specs = []
        if any(self.errors):
            return
        forms_by_key = {}
        for form in self.kept_forms():
            spec = form.to_spec()
            self.specs.append(spec)
            forms_by_key.setdefault(spec["key"], form)
        try:
            validate_steps(self.specs)
        except CycleError as exc:
            for key in exc.cycle:
                if key in forms_by_key:
                    forms_by_key[key].add_error(
                        None,
                        ValidationError(
                            _("This step is on a cycle: %(cycle)s"),
                            code="cycle",
                            params={"cycle": exc.errors[0].removeprefix("cycle: ")},
                        ),
                    )
            raise ValidationError(exc.errors, code="cycle") from exc
        except InvalidWorkflow as exc:
            general = []
            for message in exc.errors:
                form = next(
                    (
                        f
                        for key, f in forms_by_key.items()
                        if message.startswith(f"step {key!r}:")
                    ),
                    None,
                )
                if form is None:
                    general.append(message)
                else:
                    form.add_error(
                        None,
                        ValidationError(
                            message.split(":", 1)[1].strip(), code=exc.code
                        ),
                    )
            if general:
                raise ValidationError(general, code=exc.code) from exc
            raise ValidationError(
                _("Correct the steps marked below."), code=exc.code
            ) from exc


class OptionalJSONField(forms.JSONField):
    """A JSON field that shows "no value" as an empty box, not the text ``null``.

    Django's JSONField renders None as ``null``; an empty box, which the field
    already reads back as None, says "no schema" to a person.
    """

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        return super().prepare_value(value)


PARAMS_SCHEMA_HELP = _(
    "Optional JSON schema of the params a run accepts; leave empty for none. "
    'Example: {"type": "object", "properties": {"day": {"type": "string"}}, '
    '"required": ["day"]}'
)


class WorkflowForm(forms.ModelForm):
    """The workflow's own fields, with the version it was loaded at."""

    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Workflow
        fields = ["name", "slug", "description", "params_schema"]
        field_classes = {"params_schema": OptionalJSONField}
        help_texts = {"params_schema": PARAMS_SCHEMA_HELP}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["loaded_version"].initial = self.instance.version

    def clean_params_schema(self):
        from workflows.spec import params_schema_errors

        schema = self.cleaned_data.get("params_schema")
        errors = params_schema_errors(schema)
        if errors:
            raise ValidationError(errors, code="invalid_schema")
        return schema

    def clean(self):
        cleaned = super().clean()
        loaded = cleaned.get("loaded_version")
        if self.instance.pk and loaded is not None:
            current = (
                Workflow.objects.filter(pk=self.instance.pk)
                .values_list("version", flat=True)
                .first()
            )
            if current != loaded:
                raise ValidationError(
                    _(
                        "Someone else saved this workflow (version %(current)s) since "
                        "you opened it (version %(loaded)s). Reload the page and "
                        "apply your changes again."
                    ),
                    code="stale",
                    params={"current": current, "loaded": loaded},
                )
        return cleaned


class RunParamsForm(forms.Form):
    """The params of a new run, drawn from the workflow's params schema.

    ``request_id`` is generated when the form is first shown; a second submit
    of the same page carries the same id, so it finds the run the first
    started instead of starting another.
    """

    request_id = forms.CharField(widget=forms.HiddenInput, max_length=64)
    params = EngineJSONFormField(label=_("run params"), required=False)

    def __init__(self, *args, workflow: Workflow, **kwargs):
        super().__init__(*args, **kwargs)
        self.workflow = workflow
        if workflow.params_schema:
            self.fields["params"].widget = JSONFormWidget(
                schema=form_schema(workflow.params_schema)
            )
        else:
            self.fields["params"].widget = forms.HiddenInput()
            self.fields["params"].initial = "{}"

    def clean_params(self):
        params = self.cleaned_data.get("params")
        params = {} if params in (None, "") else params
        try:
            validate_params(params, self.workflow.params_schema, what="run params")
        except InvalidParams as exc:
            raise ValidationError(str(exc), code="invalid_params") from exc
        return params


class ConfirmRunForm(forms.Form):
    """The confirmation of a run: the params as checked, carried as JSON."""

    request_id = forms.CharField(widget=forms.HiddenInput, max_length=64)
    params_json = forms.CharField(widget=forms.HiddenInput)

    def clean_params_json(self):
        try:
            return json.loads(self.cleaned_data["params_json"])
        except ValueError as exc:
            raise ValidationError(_("Invalid params."), code="invalid") from exc


class RunActionForm(forms.Form):
    """A confirmed action on a run, made against the generation the user saw."""

    generation = forms.IntegerField(widget=forms.HiddenInput)
    step = forms.CharField(widget=forms.HiddenInput, required=False)
