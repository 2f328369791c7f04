"""The admin with the test client: views, form errors, permissions, confirmations."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from admin_graph.apps import check_app_order
from tests.factories import chain_shape, make_workflow
from workflows import runs
from workflows.models import Step, StepAttempt, StepRun, Workflow, WorkflowRun
from workflows.states import RunStatus, StepStatus

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(\"x\")</script> & 'quotes' \\N é"


def url(name, *args, query=""):
    return reverse(f"admin:workflows_{name}", args=args) + query


def inline_data(workflow: Workflow | None, steps: list[dict], **fields) -> dict:
    """Return the POST data of the workflow change form with *steps* in the inline."""
    existing = {s.key: s for s in workflow.steps.all()} if workflow else {}
    data = {
        "name": workflow.name if workflow else "Nightly",
        "slug": workflow.slug if workflow else "nightly",
        "description": "",
        "params_schema": "null",
        "loaded_version": workflow.version if workflow else "",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": str(
            sum(1 for s in steps if s.get("id") or s["key"] in existing)
        ),
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        **fields,
    }
    # Initial forms must come first, as the admin renders them.
    ordered = sorted(steps, key=lambda s: s["key"] not in existing)
    for i, spec in enumerate(ordered):
        prefix = f"steps-{i}-"
        row = existing.get(spec["key"])
        if row:
            data[prefix + "id"] = str(row.pk)
        if workflow:
            data[prefix + "workflow"] = str(workflow.pk)
        data[prefix + "key"] = spec.get("new_key", spec["key"])
        data[prefix + "label"] = spec.get("label", "")
        data[prefix + "step_type"] = spec.get("type", "noop")
        data[prefix + "params"] = json.dumps(spec.get("params", {}))
        data[prefix + "after"] = spec.get("after", [])
        for name in ("retries", "retry_delay", "timeout"):
            data[prefix + name] = spec.get(name, "")
        if spec.get("DELETE"):
            data[prefix + "DELETE"] = "on"
    return data


@pytest.fixture
def staff(django_user_model, client):
    """Return ``login(*perms)``: a logged-in staff client holding only *perms*."""

    def login(*perms, view=True):
        user = django_user_model.objects.create_user(
            f"staff{django_user_model.objects.count()}", password="pw", is_staff=True
        )
        codenames = list(perms)
        if view:
            codenames += ["view_workflow", "view_workflowrun", "view_steprun"]
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="workflows", codename__in=codenames
            )
        )
        client.force_login(user)
        return client

    return login


def finished_run(shape="a>b>c", failed=("b",), slug="wf"):
    """Return a final run of *shape*: *failed* failed, the rest after them upstream."""
    workflow = make_workflow(shape, slug=slug)
    run = runs.start_run(workflow)
    failed = set(failed)
    for step_run in run.step_runs.all():
        if step_run.key in failed:
            step_run.status = StepStatus.FAILED
        elif any(k in failed for k in step_run.spec["after"]):
            step_run.status = StepStatus.UPSTREAM_FAILED
        else:
            step_run.status = StepStatus.SUCCESS
        step_run.save()
    runs.finalize(run.pk)
    run.refresh_from_db()
    return run


# Composing --------------------------------------------------------------


def test_workflow_changelist_and_add_page(admin_client):
    make_workflow("a>b", slug="wf")
    response = admin_client.get(url("workflow_changelist"))
    assert response.status_code == 200
    assert b"Step types" in response.content
    response = admin_client.get(url("workflow_add"))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="dagflow-step-types"' in content
    assert "admin_graph/js/step_form.js" in content
    types = response.context["step_types"]
    assert types["sleep"]["schema"]["properties"]["seconds"]["type"] == "number"


def test_add_workflow_with_steps_saves_and_graph_shows(admin_client):
    data = inline_data(
        None,
        [
            {"key": "extract", "type": "sleep", "params": {"seconds": 0}},
            {"key": "transform", "type": "echo", "label": "Transform it"},
            {"key": "load", "type": "noop", "retries": "2", "timeout": "30"},
        ],
    )
    response = admin_client.post(url("workflow_add"), data)
    assert response.status_code == 302, response.context["errors"]
    workflow = Workflow.objects.get(slug="nightly")
    steps = {s.key: s for s in workflow.steps.all()}
    assert set(steps) == {"extract", "transform", "load"}
    assert steps["extract"].params == {"seconds": 0}
    assert steps["load"].retries == 2 and steps["load"].timeout == 30
    assert LogEntry.objects.filter(object_id=str(workflow.pk)).exists()

    # Dependencies among saved steps, then the graph on the change form.
    data = inline_data(
        workflow,
        [
            {"key": "extract", "type": "sleep", "params": {"seconds": 0}},
            {"key": "transform", "type": "echo", "after": ["extract"]},
            {"key": "load", "type": "noop", "after": ["transform"]},
        ],
    )
    version = workflow.version
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.version == version + 1
    load = workflow.steps.get(key="load")
    assert [u.key for u in load.upstream.all()] == ["transform"]

    response = admin_client.get(url("workflow_change", workflow.pk))
    graph = response.context["graph"]
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {
        ("extract", "transform"),
        ("transform", "load"),
    }
    assert "extract -> transform" in graph["dot"]
    assert 'id="dagflow-graph-data"' in response.content.decode()


def test_every_admin_save_raises_version_by_one(admin_client):
    workflow = make_workflow("a>b")
    for _ in range(3):
        version = Workflow.objects.get(pk=workflow.pk).version
        workflow.refresh_from_db()
        data = inline_data(workflow, [{"key": "a"}, {"key": "b", "after": ["a"]}])
        assert (
            admin_client.post(url("workflow_change", workflow.pk), data).status_code
            == 302
        )
        assert Workflow.objects.get(pk=workflow.pk).version == version + 1


def errors_of(response) -> str:
    """Return every error message on the change form, formsets included."""
    messages = [str(e) for e in response.context["errors"]]
    for formset in response.context["inline_admin_formsets"]:
        messages += [str(formset.formset.non_form_errors())]
        messages += [str(f.errors) for f in formset.formset.forms]
    return html.unescape("\n".join(messages))


def test_cycle_is_refused_with_its_steps_named_and_nothing_saved(admin_client):
    workflow = make_workflow("a>b>c")
    version = workflow.version
    data = inline_data(
        workflow,
        [
            {"key": "a", "after": ["c"]},
            {"key": "b", "after": ["a"]},
            {"key": "c", "after": ["b"]},
        ],
    )
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    errors = errors_of(response)
    assert "cycle: " in errors
    for key in "abc":
        assert key in errors.split("cycle: ", 1)[1]
    assert "This step is on a cycle" in errors
    workflow.refresh_from_db()
    assert workflow.version == version
    assert list(workflow.steps.get(key="a").upstream.all()) == []


def test_unknown_step_type_is_refused(admin_client):
    workflow = make_workflow("a>b")
    Step.objects.filter(workflow=workflow, key="b").update(step_type="vanished")
    response = admin_client.get(url("workflow_change", workflow.pk))
    assert b"vanished (not registered)" in response.content
    data = inline_data(
        workflow, [{"key": "a"}, {"key": "b", "type": "vanished", "after": ["a"]}]
    )
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    assert "Unknown step type 'vanished'" in errors_of(response)


def test_params_failing_the_schema_are_shown_on_the_step(admin_client):
    workflow = make_workflow("a>b")
    data = inline_data(
        workflow,
        [{"key": "a"}, {"key": "b", "type": "sleep", "params": {"seconds": "soon"}}],
    )
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    b_form = next(f for f in formset.forms if f.cleaned_data.get("key") == "b")
    assert "seconds: 'soon' is not of type 'number'" in " ".join(
        b_form.non_field_errors()
    )
    assert Workflow.objects.get(pk=workflow.pk).steps.get(key="b").step_type == "noop"


def test_duplicate_and_missing_keys_are_refused(admin_client):
    workflow = make_workflow("a>b")
    data = inline_data(workflow, [{"key": "a"}, {"key": "b", "new_key": "a"}])
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    # Django's own messages: 6.x names the field, 5.2 asks to correct the data
    assert re.search(r"Key already exists|duplicate data for key", errors_of(response))
    data = inline_data(
        workflow, [{"key": "a"}, {"key": "b"}, {"key": "new"}, {"key": "new"}]
    )
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert "duplicate data for key" in errors_of(response)
    data = inline_data(workflow, [{"key": "a"}, {"key": "b", "new_key": ""}])
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    assert "This field is required" in errors_of(response)
    assert sorted(workflow.steps.values_list("key", flat=True)) == ["a", "b"]


def test_deleting_a_step_that_others_depend_on_is_refused(admin_client):
    workflow = make_workflow("a>b")
    data = inline_data(
        workflow, [{"key": "a", "DELETE": True}, {"key": "b", "after": ["a"]}]
    )
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    assert "depends on missing step 'a'" in errors_of(response)


def test_stale_version_is_refused(admin_client):
    workflow = make_workflow("a>b")
    data = inline_data(workflow, [{"key": "a"}, {"key": "b"}])
    Workflow.objects.filter(pk=workflow.pk).update(version=workflow.version + 5)
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    assert "Someone else saved this workflow" in errors_of(response)


def test_no_run_params_schema_is_an_empty_box_and_empty_saves_none(admin_client):
    def textarea(response) -> str:
        content = response.content.decode()
        start = content.index('name="params_schema"')
        return content[start : content.index("</textarea>", start)]

    add = admin_client.get(url("workflow_add"))
    assert textarea(add).endswith(">\n")  # empty, not the text "null"
    assert "Example:" in add.content.decode()
    workflow = make_workflow("a")
    assert workflow.params_schema is None
    change = admin_client.get(url("workflow_change", workflow.pk))
    assert textarea(change).endswith(">\n")
    assert "null" not in textarea(change)

    schema = {"type": "object", "properties": {"day": {"type": "string"}}}
    data = inline_data(workflow, [{"key": "a"}], params_schema=json.dumps(schema))
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 302, errors_of(response)
    workflow.refresh_from_db()
    assert workflow.params_schema == schema
    change = admin_client.get(url("workflow_change", workflow.pk))
    assert "&quot;day&quot;" in textarea(change)

    # Emptied again: stored as None (SQL NULL), shown empty.
    data = inline_data(workflow, [{"key": "a"}], params_schema="")
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 302, errors_of(response)
    assert Workflow.objects.filter(pk=workflow.pk, params_schema__isnull=True).exists()
    change = admin_client.get(url("workflow_change", workflow.pk))
    assert textarea(change).endswith(">\n")


def test_invalid_run_params_schema_is_refused(admin_client):
    workflow = make_workflow("a")
    data = inline_data(workflow, [{"key": "a"}], params_schema='{"type": "nope"}')
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    assert response.status_code == 200
    assert "not a valid JSON schema" in errors_of(response)


def test_step_form_uses_the_chosen_types_schema(admin_client):
    workflow = make_workflow("a", step_type="sleep", params={"seconds": 1})
    response = admin_client.get(url("workflow_change", workflow.pk))
    form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert form.fields["params"].widget.get_schema()["properties"]["seconds"]
    # A bound form draws the schema of the type just posted.
    data = inline_data(
        workflow, [{"key": "a", "type": "fail", "params": {"message": 3}}]
    )
    response = admin_client.post(url("workflow_change", workflow.pk), data)
    form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert "message" in form.fields["params"].widget.get_schema()["properties"]


def test_hostile_labels_never_reach_the_page_as_markup(admin_client):
    workflow = make_workflow("a>b", overrides={"a": {"label": HOSTILE}})
    for page in (
        url("workflow_change", workflow.pk),
        url("workflow_graph", workflow.pk),
    ):
        content = admin_client.get(page).content.decode()
        assert "<script>alert" not in content
    run = runs.start_run(workflow)
    content = admin_client.get(url("workflowrun_change", run.pk)).content.decode()
    assert "<script>alert" not in content


# Graph and step types ---------------------------------------------------


def test_graph_page_and_json(admin_client):
    workflow = make_workflow("a>b a>c")
    response = admin_client.get(url("workflow_graph", workflow.pk))
    assert response.status_code == 200
    assert b"admin_graph/js/graph.js" in response.content
    data = admin_client.get(url("workflow_graph_json", workflow.pk)).json()
    assert {n["id"] for n in data["nodes"]} == {"a", "b", "c"}
    assert data["dot"].startswith("digraph")
    assert admin_client.get(url("workflow_graph", 999)).status_code == 404


def breadcrumbs_of(content: str) -> str:
    """Return the breadcrumbs element of an admin page, from its opening tag."""
    start = content.index('class="breadcrumbs"')
    start = content.rindex("<", 0, start)
    tag = content[start + 1 : content.index(" ", start)]
    return content[start : content.index(f"</{tag}>", start) + len(tag) + 3]


def test_own_pages_use_the_breadcrumbs_markup_of_the_admin(admin_client):
    workflow = make_workflow("a>b", slug="crumbs")
    run = finished_run("a>b", failed=("b",), slug="crumbs-run")
    reference = breadcrumbs_of(
        admin_client.get(url("workflow_change", workflow.pk)).content.decode()
    )
    # The element the admin's CSS styles: <ol> of <li> on Django 6, <div> on 5.2.
    opening = reference[: reference.index(">") + 1]
    pages = {
        url("workflow_graph", workflow.pk): ["crumbs", "Graph"],
        url("workflow_editor", workflow.pk): ["crumbs", "Edit graph"],
        url("workflow_step_types"): ["Workflows", "Step types"],
        url("workflow_run", workflow.pk): ["crumbs", "Run"],
        url("workflowrun_graph", run.pk): ["Workflow runs", "Graph"],
        url("workflowrun_rerun", run.pk): ["Workflow runs", "Rerun failed steps"],
        url("workflowrun_cancel", run.pk): ["Workflow runs", "Cancel run"],
    }
    for page, texts in pages.items():
        response = admin_client.get(page)
        assert response.status_code == 200, page
        crumbs = breadcrumbs_of(response.content.decode())
        assert crumbs.startswith(opening), (page, crumbs)
        assert ("<li" in crumbs) == ("<li" in reference), (page, crumbs)
        assert reverse("admin:index") in crumbs
        for text in texts:
            assert text in crumbs, (page, text, crumbs)


def test_step_types_page_lists_descriptions_and_schemas(admin_client):
    response = admin_client.get(url("workflow_step_types"))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Wait the given number of seconds" in content
    assert "&quot;seconds&quot;" in content
    assert 'id="type-management_command"' in content


def test_graph_views_need_the_view_permission(staff):
    workflow = make_workflow("a")
    client = staff(view=False)
    for name in ("workflow_graph", "workflow_graph_json", "workflow_run"):
        assert client.get(url(name, workflow.pk)).status_code == 403
    assert client.get(url("workflow_step_types")).status_code == 403


# Running -----------------------------------------------------------------


def test_run_form_confirmation_and_start(admin_client):
    workflow = make_workflow("a>b")
    workflow.params_schema = {
        "type": "object",
        "properties": {"day": {"type": "string"}},
        "required": ["day"],
    }
    workflow.save()
    response = admin_client.get(url("workflow_run", workflow.pk))
    assert response.status_code == 200
    request_id = response.context["form"].initial["request_id"]
    assert "data-django-jsonform" in response.content.decode()

    # Params failing the schema: the form again, with the engine's message.
    response = admin_client.post(
        url("workflow_run", workflow.pk),
        {"request_id": request_id, "params": json.dumps({"day": 3})},
    )
    assert response.status_code == 200
    assert "3 is not of type 'string'" in " ".join(
        response.context["form"].errors["params"]
    )

    response = admin_client.post(
        url("workflow_run", workflow.pk),
        {"request_id": request_id, "params": json.dumps({"day": "monday"})},
    )
    assert response.status_code == 200
    assert response.context["confirm"] is not None
    assert not WorkflowRun.objects.exists()

    confirm = {
        "request_id": request_id,
        "params_json": json.dumps({"day": "monday"}),
        "confirm": "yes",
    }
    response = admin_client.post(url("workflow_run", workflow.pk), confirm)
    run = WorkflowRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("workflowrun_change", run.pk)
    assert run.params == {"day": "monday"}
    assert run.request_id == request_id

    # The double click: the same form again finds the same run.
    response = admin_client.post(url("workflow_run", workflow.pk), confirm, follow=True)
    assert WorkflowRun.objects.count() == 1
    assert "already submitted" in response.content.decode()


def test_run_of_a_workflow_without_params_schema(admin_client):
    workflow = make_workflow("a")
    response = admin_client.get(url("workflow_run", workflow.pk))
    assert b"This workflow takes no params" in response.content
    request_id = response.context["form"].initial["request_id"]
    response = admin_client.post(
        url("workflow_run", workflow.pk), {"request_id": request_id, "params": "{}"}
    )
    assert response.context["confirm"] is not None


def test_run_button_and_action_need_run_permission(staff, admin_client):
    workflow = make_workflow("a")
    client = staff()
    content = client.get(url("workflow_change", workflow.pk)).content.decode()
    assert "dagflow-run-link" not in content
    assert client.get(url("workflow_run", workflow.pk)).status_code == 403
    response = client.get(url("workflow_changelist"))
    assert "run_selected" not in response.content.decode()

    client = staff("run_workflow")
    content = client.get(url("workflow_change", workflow.pk)).content.decode()
    assert "dagflow-run-link" in content
    assert client.get(url("workflow_run", workflow.pk)).status_code == 200
    response = client.post(
        url("workflow_changelist"),
        {"action": "run_selected", "_selected_action": [workflow.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == url("workflow_run", workflow.pk)


def test_run_action_wants_exactly_one_workflow(admin_client):
    first, second = make_workflow("a", slug="one"), make_workflow("a", slug="two")
    response = admin_client.post(
        url("workflow_changelist"),
        {"action": "run_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "Select exactly one workflow" in response.content.decode()


# Watching ----------------------------------------------------------------


def test_run_changelist_shows_badge_progress_and_filters(
    admin_client, django_assert_max_num_queries
):
    for slug in ("one", "two", "three"):
        finished_run("a>b>c", failed=("c",), slug=slug)
    with django_assert_max_num_queries(8):
        response = admin_client.get(url("workflowrun_changelist"))
    content = response.content.decode()
    assert response.status_code == 200
    assert 'class="dagflow-badge state-failed"' in content
    assert "3 / 3" in content
    assert "By status" in content or "status__exact" in content
    response = admin_client.get(
        url("workflowrun_changelist", query="?status__exact=running")
    )
    assert response.context["cl"].result_count == 0


def test_run_page_shows_graph_legend_and_status_json(admin_client):
    run = finished_run("a>b>c", failed=("b",))
    response = admin_client.get(url("workflowrun_change", run.pk))
    assert response.status_code == 200
    content = response.content.decode()
    assert "dagflow-legend" in content and "Upstream failed" in content
    graph = response.context["graph"]
    states = {n["id"]: n["state"] for n in graph["nodes"]}
    assert states == {"a": "success", "b": "failed", "c": "upstream_failed"}
    assert graph["run"]["final"] is True
    data = admin_client.get(url("workflowrun_status", run.pk)).json()
    assert data["status"] == "failed" and data["final"] is True
    assert data["finished"] == data["total"] == 3
    b = StepRun.objects.get(run=run, key="b")
    assert data["steps"]["b"]["url"] == url("steprun_change", b.pk)


def test_run_page_and_status_json_use_a_fixed_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    run = runs.start_run(make_workflow(chain_shape(300), slug="big"))
    with django_assert_max_num_queries(12):
        response = admin_client.get(url("workflowrun_change", run.pk))
    assert len(response.context["graph"]["nodes"]) == 300
    with django_assert_max_num_queries(5):
        data = admin_client.get(url("workflowrun_status", run.pk)).json()
    assert len(data["steps"]) == 300 and data["final"] is False
    with django_assert_max_num_queries(5):
        admin_client.get(url("workflowrun_graph_json", run.pk))


def test_step_run_page_shows_attempts_inputs_result_error_and_log(admin_client):
    run = finished_run("a>b>c", failed=("b",))
    a = StepRun.objects.get(run=run, key="a")
    a.result = {"rows": 3, "name": "<b>x</b>"}
    a.save()
    b = StepRun.objects.get(run=run, key="b")
    b.error = "RuntimeError: boom"
    b.traceback = "Traceback (most recent call last):\n  boom"
    b.log = "starting <now>"
    b.attempts = 2
    b.save()
    from django.utils import timezone

    for number in (1, 2):
        StepAttempt.objects.create(
            step_run=b,
            number=number,
            status="failed",
            started_at=timezone.now(),
            finished_at=timezone.now(),
            error="boom",
        )
    response = admin_client.get(url("steprun_change", b.pk))
    content = response.content.decode()
    assert response.status_code == 200
    assert "RuntimeError: boom" in content
    assert "Traceback (most recent call last)" in content
    assert "starting &lt;now&gt;" in content
    assert "&quot;rows&quot;: 3" in content  # inputs: a's result, as JSON
    assert "&lt;b&gt;x&lt;/b&gt;" in content
    assert content.count('class="field-number"') >= 2 or "attempts" in content.lower()
    assert "dagflow-rerun-from-link" in content
    assert admin_client.get(url("steprun_changelist")).status_code == 200


# Acting on a run -------------------------------------------------------


def test_rerun_failed_steps_confirmation_then_rerun(admin_client):
    run = finished_run("a>b>c", failed=("b",))
    response = admin_client.get(url("workflowrun_rerun", run.pk))
    assert response.status_code == 200
    assert response.context["keys"] == ["b", "c"]  # c: upstream failed
    assert run.generation == 1
    response = admin_client.post(
        url("workflowrun_rerun", run.pk), {"generation": run.generation}, follow=True
    )
    assert "Rerunning the failed steps" in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING and run.generation == 2
    statuses = dict(run.step_runs.values_list("key", "status"))
    assert statuses == {"a": "success", "b": "pending", "c": "pending"}
    # The same confirmation posted again (a second person, a double click): refused.
    response = admin_client.post(
        url("workflowrun_rerun", run.pk), {"generation": 1}, follow=True
    )
    assert "changed since you opened" in response.content.decode()
    run.refresh_from_db()
    assert run.generation == 2


def test_rerun_button_only_when_there_is_something_to_rerun(admin_client):
    hidden = 'data-dagflow-when="rerunnable" hidden'
    ok = finished_run("a>b", failed=(), slug="ok")
    assert ok.status == RunStatus.SUCCESS
    content = admin_client.get(url("workflowrun_change", ok.pk)).content.decode()
    assert hidden in content
    status = admin_client.get(url("workflowrun_status", ok.pk)).json()
    assert status["rerunnable"] is False
    # Opened or posted anyway: refused with a message, nothing rerun.
    response = admin_client.get(url("workflowrun_rerun", ok.pk), follow=True)
    assert "no failed or cancelled step to rerun" in response.content.decode()
    response = admin_client.post(
        url("workflowrun_rerun", ok.pk), {"generation": 1}, follow=True
    )
    assert "no failed steps to rerun" in response.content.decode()
    ok.refresh_from_db()
    assert (ok.generation, ok.status) == (1, RunStatus.SUCCESS)

    running = runs.start_run(make_workflow("a>b", slug="running"))
    content = admin_client.get(url("workflowrun_change", running.pk)).content.decode()
    assert hidden in content

    failed = finished_run("a>b", failed=("a",), slug="failed")
    content = admin_client.get(url("workflowrun_change", failed.pk)).content.decode()
    assert 'data-dagflow-when="rerunnable">' in content and hidden not in content
    status = admin_client.get(url("workflowrun_status", failed.pk)).json()
    assert status["rerunnable"] is True


def test_rerun_confirmation_groups_failed_and_upstream_failed_steps(admin_client):
    run = finished_run("a>b>c", failed=("b",))
    response = admin_client.get(url("workflowrun_rerun", run.pk))
    content = response.content.decode()
    assert "Failed steps" not in content
    assert [(str(t), list(k)) for t, k in response.context["groups"]] == [
        ("Failed", ["b"]),
        ("Not run because an upstream step failed", ["c"]),
    ]
    assert content.index("<h2>Failed</h2>") < content.index("<li>b</li>")
    assert content.index("<li>b</li>") < content.index(
        "<h2>Not run because an upstream step failed</h2>"
    )
    assert content.index("upstream step failed</h2>") < content.index("<li>c</li>")


def test_rerun_from_a_step(admin_client):
    run = finished_run("a>b>c", failed=())
    response = admin_client.get(url("workflowrun_rerun", run.pk, query="?step=b"))
    assert response.context["keys"] == ["b", "c"]
    admin_client.post(url("workflowrun_rerun", run.pk), {"generation": 1, "step": "b"})
    statuses = dict(run.step_runs.values_list("key", "status"))
    assert statuses == {"a": "success", "b": "pending", "c": "pending"}
    response = admin_client.get(
        url("workflowrun_rerun", run.pk, query="?step=zzz"), follow=True
    )
    assert "has no step" in response.content.decode()


def test_rerun_of_a_running_run_is_refused_clearly(admin_client):
    run = runs.start_run(make_workflow("a>b"))
    response = admin_client.post(
        url("workflowrun_rerun", run.pk), {"generation": run.generation}, follow=True
    )
    assert "wait for it to end" in response.content.decode()
    run.refresh_from_db()
    assert run.generation == 1


def test_cancel_confirmation_then_cancel_and_refusal_once_final(admin_client):
    run = runs.start_run(make_workflow("a>b"))
    response = admin_client.get(url("workflowrun_cancel", run.pk))
    assert response.status_code == 200
    assert b"Yes, cancel the run" in response.content
    response = admin_client.post(
        url("workflowrun_cancel", run.pk), {"generation": 1}, follow=True
    )
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "cancelled" in response.content.decode()
    response = admin_client.post(
        url("workflowrun_cancel", run.pk), {"generation": run.generation}, follow=True
    )
    assert "already ended" in response.content.decode()


def test_actions_are_posts_with_csrf(admin_user, client):
    from django.test import Client

    run = finished_run("a>b", failed=("b",))
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    for name in ("workflowrun_rerun", "workflowrun_cancel"):
        response = csrf_client.post(url(name, run.pk), {"generation": run.generation})
        assert response.status_code == 403
    run.refresh_from_db()
    assert run.generation == 1


def test_run_actions_need_their_permissions(staff):
    run = finished_run("a>b", failed=("b",))
    client = staff()
    content = client.get(url("workflowrun_change", run.pk)).content.decode()
    assert "dagflow-rerun-link" not in content
    assert "dagflow-cancel-link" not in content
    for name in ("workflowrun_rerun", "workflowrun_cancel"):
        assert client.get(url(name, run.pk)).status_code == 403
        assert client.post(url(name, run.pk), {"generation": 1}).status_code == 403
    step = StepRun.objects.get(run=run, key="b")
    assert (
        "dagflow-rerun-from-link"
        not in client.get(url("steprun_change", step.pk)).content.decode()
    )
    run.refresh_from_db()
    assert run.generation == 1

    client = staff("rerun_workflowrun")
    content = client.get(url("workflowrun_change", run.pk)).content.decode()
    assert "dagflow-rerun-link" in content and "dagflow-cancel-link" not in content
    assert client.get(url("workflowrun_cancel", run.pk)).status_code == 403
    assert (
        client.post(url("workflowrun_rerun", run.pk), {"generation": 1}).status_code
        == 302
    )
    run.refresh_from_db()
    assert run.generation == 2

    client = staff("cancel_workflowrun")
    assert (
        client.post(url("workflowrun_cancel", run.pk), {"generation": 2}).status_code
        == 302
    )
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_runs_cannot_be_added_or_edited_in_the_admin(admin_client):
    run = finished_run("a")
    assert (
        admin_client.get(reverse("admin:workflows_workflowrun_add")).status_code == 403
    )
    response = admin_client.get(url("workflowrun_change", run.pk))
    assert response.context["has_change_permission"] is False


# The rest ---------------------------------------------------------------------


def test_app_order_check(monkeypatch):
    from django.conf import settings
    from django.core.checks import registry as checks_registry

    assert check_app_order in checks_registry.registry.registered_checks
    assert check_app_order() == []
    apps = [a for a in settings.INSTALLED_APPS if a != "workflows"]
    monkeypatch.setattr(settings, "INSTALLED_APPS", [*apps, "workflows"])
    assert [m.id for m in check_app_order()] == ["admin_graph.E002"]
    monkeypatch.setattr(settings, "INSTALLED_APPS", apps)
    assert [m.id for m in check_app_order()] == ["admin_graph.E001"]


def test_workflow_graph_command(capsys, monkeypatch):
    run = finished_run("a>b", failed=("b",))
    call_command("workflow_graph", "wf")
    out = capsys.readouterr().out
    assert out.startswith("digraph wf {") and "a -> b" in out
    call_command("workflow_graph", "wf", "--run", str(run.pk))
    out = capsys.readouterr().out
    assert "state-failed" in out and "#e06c6c" in out
    with pytest.raises(CommandError, match="No workflow"):
        call_command("workflow_graph", "nope")
    with pytest.raises(CommandError, match="has no run"):
        call_command("workflow_graph", "wf", "--run", "999")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(CommandError, match="'dot' binary is missing"):
        call_command("workflow_graph", "wf", "--format", "svg")


def test_nodes_link_to_step_runs_only_for_who_may_view_them(staff):
    run = finished_run("a>b", failed=())
    client = staff("view_workflowrun", view=False)
    data = client.get(url("workflowrun_status", run.pk)).json()
    assert {s["url"] for s in data["steps"].values()} == {None}
    client = staff()
    data = client.get(url("workflowrun_status", run.pk)).json()
    assert all(s["url"].startswith("/admin/") for s in data["steps"].values())


@pytest.mark.django_db(transaction=True)
def test_two_people_pressing_the_same_rerun_at_once_start_one(admin_user):
    import threading

    from django.db import connection
    from django.test import Client

    run = finished_run("a>b", failed=("b",))
    barrier = threading.Barrier(2)
    codes = []

    def press():
        client = Client()
        client.force_login(admin_user)
        barrier.wait()
        try:
            response = client.post(
                url("workflowrun_rerun", run.pk), {"generation": 1}, follow=True
            )
            codes.append(response.content.decode())
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    run.refresh_from_db()
    assert run.generation == 2
    assert sum("Rerunning the failed steps" in page for page in codes) == 1
