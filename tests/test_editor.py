"""The graph editor's page and save endpoint (admin_graph.editor), with the test client.

The mixin is mounted on an admin site of this module (it is also the URLconf
of these tests), so the endpoint is tested on its own; the project's own
WorkflowAdmin is checked to include it.
"""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import path, reverse

from admin_graph.editor import MAX_PAYLOAD_BYTES, EditorViewsMixin
from workflows.models import Step, Workflow
from workflows.spec import save_steps, workflow_steps

site = admin.AdminSite(name="editortests")


@admin.register(Workflow, site=site)
class EditorOnlyAdmin(EditorViewsMixin, admin.ModelAdmin):
    pass


urlpatterns = [path("admin/", site.urls)]

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_editor")]


def editor_url(wf: Workflow) -> str:
    return reverse("editortests:workflows_workflow_editor", args=[wf.pk])


def save_url(wf: Workflow) -> str:
    return reverse("editortests:workflows_workflow_editor_save", args=[wf.pk])


@pytest.fixture
def workflow() -> Workflow:
    wf = Workflow.objects.create(slug="etl", name="ETL")
    save_steps(
        wf,
        [
            {"key": "extract", "type": "noop"},
            {
                "key": "load",
                "type": "add",
                "params": {"value": 2},
                "after": ["extract"],
            },
        ],
        layout={"extract": {"x": 10, "y": 10}, "load": {"x": 10, "y": 140}},
    )
    wf.refresh_from_db()
    return wf


def staff(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for codename in perms:
        user.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="workflows", codename=codename
            )
        )
    return user


@pytest.fixture
def editor_client() -> Client:
    client = Client()
    client.force_login(staff("editor", "view_workflow", "change_workflow"))
    return client


@pytest.fixture
def viewer_client() -> Client:
    client = Client()
    client.force_login(staff("viewer", "view_workflow"))
    return client


def state(wf: Workflow) -> tuple:
    """Everything a save may change, to assert that a refused save changed nothing."""
    wf = Workflow.objects.get(pk=wf.pk)
    ids = sorted(Step.objects.filter(workflow=wf).values_list("pk", flat=True))
    return wf.version, wf.layout, workflow_steps(wf), ids, LogEntry.objects.count()


def post(client: Client, wf: Workflow, payload, **extra):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(save_url(wf), body, content_type="application/json", **extra)


FIVE = [
    {"key": "start", "type": "noop"},
    {"key": "left", "type": "add", "params": {"value": 1}, "after": ["start"]},
    {
        "key": "middle",
        "type": "configurable",
        "label": 'Middle <b>&</b> "quoted"',
        "params": {"mode": "safe", "targets": [{"name": "a", "weight": 0.5}]},
        "after": ["start"],
        "retries": 2,
        "retry_delay": 0.5,
        "timeout": 30,
    },
    {"key": "right", "type": "sleep", "params": {"seconds": 0}, "after": ["start"]},
    {"key": "join", "type": "echo", "after": ["left", "middle", "right"]},
]


# ------------------------------------------------------------------ page ---


def test_editor_page_passes_the_graph_with_json_script(editor_client, workflow):
    response = editor_client.get(editor_url(workflow))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="dagflow-editor-data"' in html
    assert "admin_graph/js/editor.js" in html
    assert "admin_graph/css/editor.css" in html
    assert 'class="breadcrumbs"' in html
    data = response.context["editor_data"]
    assert data["version"] == workflow.version
    assert data["canChange"] is True
    assert data["saveUrl"] == save_url(workflow)
    assert [s["key"] for s in data["steps"]] == ["extract", "load"]
    assert data["steps"][1]["after"] == ["extract"]
    assert data["layout"]["load"] == {"x": 10, "y": 140}
    configurable = next(t for t in data["types"] if t["name"] == "configurable")
    assert configurable["label"] == "Configurable"
    assert configurable["params_schema"]["properties"]["mode"]["enum"][0] == "fast"
    assert 'data-action="save"' in html


def test_editor_page_escapes_user_text_in_the_data(editor_client, workflow):
    save_steps(
        workflow,
        [{"key": "x", "type": "noop", "label": "</script><script>alert(1)</script>"}],
    )
    html = editor_client.get(editor_url(workflow)).content.decode()
    assert "<script>alert(1)" not in html
    assert "\\u003C/script\\u003E\\u003Cscript\\u003Ealert(1)" in html


def test_viewer_sees_the_graph_read_only(viewer_client, workflow):
    response = viewer_client.get(editor_url(workflow))
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["editor_data"]["canChange"] is False
    assert 'data-action="save"' not in html
    assert "dagflow-palette" not in html
    assert "is-readonly" in html


def test_editor_page_needs_view_permission(workflow):
    client = Client()
    client.force_login(staff("nobody"))
    assert client.get(editor_url(workflow)).status_code == 403


def test_editor_page_of_a_missing_workflow_redirects(editor_client):
    url = reverse("editortests:workflows_workflow_editor", args=[999])
    assert editor_client.get(url).status_code == 302


def test_project_workflow_admin_includes_the_editor():
    from django.contrib.admin import site as project_site

    pytest.importorskip("admin_graph.admin")
    assert isinstance(project_site._registry[Workflow], EditorViewsMixin)


# ------------------------------------------------------------ valid save ---


def test_valid_save_writes_steps_deps_layout_bumps_version_and_logs(
    editor_client, workflow
):
    old_extract = Step.objects.get(workflow=workflow, key="extract").pk
    layout = {s["key"]: {"x": 20 * i, "y": 100 * i} for i, s in enumerate(FIVE)}
    layout["ghost"] = {"x": 1, "y": 1}
    response = post(
        editor_client,
        workflow,
        {"version": workflow.version, "steps": FIVE, "layout": layout},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "version": workflow.version + 1}
    workflow.refresh_from_db()
    assert workflow.version == 3
    assert workflow_steps(workflow) == [
        {**s, "params": s.get("params", {}), "after": sorted(s.get("after", []))}
        for s in FIVE
    ]
    del layout["ghost"]
    assert workflow.layout == layout
    assert not Step.objects.filter(pk=old_extract).exists()  # key gone -> row gone
    entry = LogEntry.objects.get()
    assert entry.action_flag == CHANGE
    assert entry.object_id == str(workflow.pk)
    assert entry.user.username == "editor"
    assert "5 steps (version 3)" in entry.get_change_message()


def test_save_keeps_rows_of_kept_keys(editor_client, workflow):
    load = Step.objects.get(workflow=workflow, key="load").pk
    steps = [{"key": "load", "type": "add", "params": {"value": 5}}]
    response = post(editor_client, workflow, {"version": 2, "steps": steps})
    assert response.status_code == 200
    assert Step.objects.get(workflow=workflow).pk == load


# ------------------------------------------------------------ refusals ---


def refused(response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["ok"] is False
    text = " ".join(body["errors"])
    for fragment in fragments:
        assert fragment in text, text
    return body


BAD = {
    "cycle": (
        [
            {"key": "a", "type": "noop", "after": ["c"]},
            {"key": "b", "type": "noop", "after": ["a"]},
            {"key": "c", "type": "noop", "after": ["b"]},
        ],
        "cycle: ",
    ),
    "unknown type": (
        [{"key": "a", "type": "teleport"}],
        "Unknown step type 'teleport'",
    ),
    "invalid params": (
        [{"key": "a", "type": "configurable", "params": {"mode": "reckless"}}],
        "step 'a': params invalid: mode: 'reckless' is not one of",
    ),
    "nested invalid params": (
        [
            {
                "key": "a",
                "type": "configurable",
                "params": {"mode": "safe", "targets": [{"weight": -1}]},
            }
        ],
        "targets/0",
    ),
    "missing key": ([{"type": "noop"}], "step #1: 'key' is required"),
    "missing type": ([{"key": "a"}], "step 'a': 'type' is required"),
    "missing upstream": (
        [{"key": "a", "type": "noop", "after": ["nope"]}],
        "depends on missing step 'nope'",
    ),
    "duplicate key": (
        [{"key": "a", "type": "noop"}, {"key": "a", "type": "noop"}],
        "duplicate key",
    ),
    "bad key": ([{"key": "a b", "type": "noop"}], "key must be"),
    "negative retries": ([{"key": "a", "type": "noop", "retries": -1}], "retries"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_invalid_graph_is_refused_and_nothing_saved(editor_client, workflow, case):
    steps, message = BAD[case]
    before = state(workflow)
    response = post(
        editor_client,
        workflow,
        {
            "version": workflow.version,
            "steps": steps,
            "layout": {"a": {"x": 0, "y": 0}},
        },
    )
    refused(response, 400, message)
    assert state(workflow) == before


def test_cycle_names_its_steps(editor_client, workflow):
    body = refused(
        post(editor_client, workflow, {"version": 2, "steps": BAD["cycle"][0]}),
        400,
        "cycle:",
    )
    assert sorted(body["cycle"]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"steps": []}, "'version' is required"),
        ({"version": "2", "steps": []}, "'version' is required"),
        ({"version": 2}, "'steps' is required"),
        ({"version": 2, "steps": {"a": 1}}, "'steps' must be a list"),
        ({"version": 2, "steps": [], "layout": []}, "layout must be an object"),
        (
            {"version": 2, "steps": [], "layout": {"a": {"x": "left", "y": 0}}},
            "layout of step 'a'",
        ),
        ([1, 2], "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
    ids=[
        "no version",
        "text version",
        "no steps",
        "steps not a list",
        "layout not an object",
        "bad position",
        "not an object",
        "not json",
    ],
)
def test_malformed_payload_is_refused_and_nothing_saved(
    editor_client, workflow, payload, message
):
    before = state(workflow)
    refused(post(editor_client, workflow, payload), 400, message)
    assert state(workflow) == before


def test_stale_version_is_refused_with_409_and_nothing_saved(editor_client, workflow):
    opened_at = workflow.version
    save_steps(workflow, [{"key": "theirs", "type": "noop"}])  # someone else saves
    before = state(workflow)
    response = post(
        editor_client,
        workflow,
        {"version": opened_at, "steps": [{"key": "mine", "type": "noop"}]},
    )
    body = refused(response, 409, "Someone else saved this workflow")
    assert body["stale"] is True
    assert state(workflow) == before
    assert [s["key"] for s in workflow_steps(workflow)] == ["theirs"]


def test_two_megabyte_payload_is_refused_with_413(editor_client, workflow):
    before = state(workflow)
    filler = "x" * (2 * 1024 * 1024)
    payload = {
        "version": workflow.version,
        "steps": [{"key": "a", "type": "echo", "params": {"blob": filler}}],
    }
    body = refused(post(editor_client, workflow, payload), 413, "too large")
    assert f"{MAX_PAYLOAD_BYTES // 1000} kB" in body["errors"][0]
    assert state(workflow) == before


def test_save_needs_the_change_permission(viewer_client, workflow):
    before = state(workflow)
    response = post(
        viewer_client,
        workflow,
        {"version": workflow.version, "steps": [{"key": "a", "type": "noop"}]},
    )
    refused(response, 403, "permission to change")
    assert state(workflow) == before


def test_save_needs_a_csrf_token(workflow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff("editor", "view_workflow", "change_workflow"))
    before = state(workflow)
    response = post(
        client,
        workflow,
        {"version": workflow.version, "steps": [{"key": "a", "type": "noop"}]},
    )
    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content
    assert state(workflow) == before


def test_save_with_the_page_csrf_token_works(workflow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff("editor", "view_workflow", "change_workflow"))
    page = client.get(editor_url(workflow))
    token = page.context["csrf_token"]
    response = post(
        client,
        workflow,
        {"version": workflow.version, "steps": [{"key": "a", "type": "noop"}]},
        HTTP_X_CSRFTOKEN=str(token),
    )
    assert response.status_code == 200, response.content


def test_get_on_the_save_endpoint_is_refused(editor_client, workflow):
    before = state(workflow)
    refused(editor_client.get(save_url(workflow)), 405, "POST")
    assert state(workflow) == before


def test_anonymous_save_goes_to_login_and_saves_nothing(workflow):
    before = state(workflow)
    response = post(Client(), workflow, {"version": 2, "steps": []})
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert state(workflow) == before


def test_save_of_a_missing_workflow_is_404(editor_client):
    response = editor_client.post(
        reverse("editortests:workflows_workflow_editor_save", args=[999]),
        "{}",
        content_type="application/json",
    )
    refused(response, 404, "does not exist")
