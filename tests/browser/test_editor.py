"""The graph editor in Chromium: build, refuse a cycle, save, reload, run; conflicts;
read-only users. DAGFLOW_SCREENSHOTS=docs writes editor-*.png to docs/img.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.conftest import wait_for_run
from workflows import runs
from workflows.models import Workflow
from workflows.spec import workflow_steps
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def open_editor(page: Page, wf: Workflow) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    url = reverse("admin:workflows_workflow_editor", args=[wf.pk])
    page.goto(page.base_url + url)
    expect(page.locator("#dagflow-editor[data-ready=true]")).to_be_attached()


def node(page: Page, key: str):
    return page.locator(f'.dagflow-node[data-key="{key}"]')


def edges(page: Page) -> set[tuple[str, str]]:
    return {
        (e.get_attribute("data-from"), e.get_attribute("data-to"))
        for e in page.locator(".dagflow-edge").all()
    }


def add_step(page: Page, type_name: str, key: str) -> None:
    """Add a step of *type_name* from the palette and rename it to *key*."""
    page.click(f'.dagflow-type[data-type="{type_name}"]')
    key_input = page.locator("#dagflow-key")
    expect(key_input).to_have_value(re.compile(rf"^{re.escape(type_name)}_\d+$"))
    key_input.fill(key)
    key_input.press("Enter")
    expect(node(page, key)).to_have_count(1)


def select(page: Page, key: str) -> None:
    node(page, key).locator(".dagflow-node-box").click()
    expect(page.locator("#dagflow-key")).to_have_value(key)


def drag_connect(page: Page, upstream: str, downstream: str) -> None:
    """Drag from the out port of *upstream* onto *downstream*."""
    port = node(page, upstream).locator(".dagflow-port-out").bounding_box()
    target = node(page, downstream).locator(".dagflow-node-box").bounding_box()
    page.mouse.move(port["x"] + port["width"] / 2, port["y"] + port["height"] / 2)
    page.mouse.down()
    page.mouse.move(
        target["x"] + target["width"] / 2, target["y"] + target["height"] / 2, steps=8
    )
    page.mouse.up()


def param(page: Page, *path: str):
    """Return the panel's params locator for the field *path* (names)."""
    loc = page.locator(".dagflow-params")
    for name in path:
        loc = loc.locator(f'[data-field="{name}"]').first
    return loc


def save(page: Page, level: str = "success"):
    page.click('[data-action="save"]')
    message = page.locator(f".dagflow-messages li.{level}")
    expect(message.first).to_be_visible()
    return message


def set_target(page: Page, index: int, name: str, weight: str) -> None:
    item = param(page, "targets").locator(".dagflow-array-item").nth(index)
    item.locator('[data-field="name"] input').fill(name)
    item.locator('[data-field="weight"] input').fill(weight)


def test_build_save_reload_and_run_a_fan_out_fan_in(admin_page, screenshot, worker):
    page = admin_page
    wf = Workflow.objects.create(slug="editor-demo", name="Editor demo")
    open_editor(page, wf)
    expect(page.locator(".dagflow-node")).to_have_count(0)

    # The palette is searchable.
    page.fill(".dagflow-palette-search", "nested array")
    visible = page.locator(".dagflow-palette-list li:not([hidden]) .dagflow-type")
    expect(visible).to_have_count(1)
    expect(visible).to_have_attribute("data-type", "configurable")
    page.fill(".dagflow-palette-search", "")

    add_step(page, "configurable", "start")
    add_step(page, "add", "left")
    add_step(page, "noop", "middle")
    add_step(page, "echo", "right")
    add_step(page, "configurable", "join")

    # Fan-out by dragging from ports, fan-in partly with the Connect mode.
    drag_connect(page, "start", "left")
    drag_connect(page, "start", "middle")
    drag_connect(page, "start", "right")
    drag_connect(page, "left", "join")
    page.click('[data-action="connect"]')
    select_source = node(page, "middle").locator(".dagflow-node-box")
    select_source.click()
    expect(node(page, "middle")).to_have_class(re.compile("is-source"))
    page.keyboard.press("Escape")  # cancels the connection in progress
    expect(node(page, "middle")).not_to_have_class(re.compile("is-source"))
    expect(page.locator('[data-action="connect"]')).to_have_attribute(
        "aria-pressed", "false"
    )
    page.click('[data-action="connect"]')
    node(page, "middle").locator(".dagflow-node-box").click()
    node(page, "join").locator(".dagflow-node-box").click()
    page.keyboard.press("Escape")
    drag_connect(page, "right", "join")
    expected = {
        ("start", "left"),
        ("start", "middle"),
        ("start", "right"),
        ("left", "join"),
        ("middle", "join"),
        ("right", "join"),
    }
    assert edges(page) == expected
    page.click('[data-action="layout"]')
    ys = [node(page, k).get_attribute("transform") for k in ("start", "left", "join")]
    assert len(set(ys)) == 3  # three layers, top to bottom

    # A connection closing a cycle is refused at once, its nodes highlighted.
    drag_connect(page, "join", "start")
    refusal = page.locator(".dagflow-messages li.error")
    expect(refusal).to_contain_text("would close a cycle")
    expect(refusal).to_contain_text("join")
    cycle_nodes = {
        n.get_attribute("data-key")
        for n in page.locator(".dagflow-node.is-cycle").all()
    }
    assert {"join", "start"} <= cycle_nodes
    assert len(cycle_nodes) == 3
    assert edges(page) == expected
    screenshot(page, "editor-cycle")

    # Delete an edge with the keyboard; undo and redo it.
    page.locator(
        '.dagflow-edge[data-from="right"][data-to="join"] .dagflow-edge-hit'
    ).click(force=True)
    page.keyboard.press("Delete")
    assert edges(page) == expected - {("right", "join")}
    page.keyboard.press("Control+z")
    assert edges(page) == expected
    page.keyboard.press("Control+Shift+z")
    assert edges(page) == expected - {("right", "join")}
    page.click('[data-action="undo"]')
    assert edges(page) == expected

    # Params through the panel: enum, nested array, boolean, number; options.
    select(page, "start")
    page.fill("#dagflow-label", 'Start <here> & "now"')
    param(page, "mode").locator("select").select_option(label="thorough")
    add_item = param(page, "targets").locator(".dagflow-array-add")
    add_item.click()
    add_item.click()
    add_item.click()
    set_target(page, 0, "alpha", "0.5")
    set_target(page, 1, "beta", "2")
    set_target(page, 2, "gamma", "3")
    param(page, "targets").locator(".dagflow-array-remove").nth(2).click()
    param(page, "verbose").locator("input[type=checkbox]").check()
    param(page, "ratio").locator("input").fill("0.25")
    page.fill("#dagflow-retries", "2")
    page.fill("#dagflow-retry-delay", "0.5")
    page.fill("#dagflow-timeout", "60")
    expect(node(page, "start")).to_contain_text("Start <here>")
    select(page, "join")
    param(page, "mode").locator("select").select_option(label="fast")
    select(page, "left")
    param(page, "value").locator("input").fill("40")
    select(page, "start")
    screenshot(page, "editor-panel")

    # Dragging a node moves it; the position is saved in the layout.
    box = node(page, "right").locator(".dagflow-node-box").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 80, box["y"] + 60, steps=5)
    page.mouse.up()
    expect(page.locator(".dagflow-dirty")).to_be_visible()

    save(page)
    expect(page.locator(".dagflow-dirty")).to_be_hidden()
    screenshot(page, "editor-build")

    wf.refresh_from_db()
    assert wf.version == 2
    specs = {s["key"]: s for s in workflow_steps(wf)}
    assert set(specs) == {"start", "left", "middle", "right", "join"}
    assert specs["start"]["params"] == {
        "mode": "thorough",
        "targets": [{"name": "alpha", "weight": 0.5}, {"name": "beta", "weight": 2}],
        "verbose": True,
        "ratio": 0.25,
    }
    assert specs["start"]["label"] == 'Start <here> & "now"'
    assert (specs["start"]["retries"], specs["start"]["retry_delay"]) == (2, 0.5)
    assert specs["start"]["timeout"] == 60
    assert specs["left"]["params"] == {"value": 40}
    assert specs["join"]["params"] == {"mode": "fast", "verbose": False}
    assert specs["join"]["after"] == ["left", "middle", "right"]
    assert {(u, s["key"]) for s in specs.values() for u in s["after"]} == expected
    assert set(wf.layout) == set(specs)
    right_x = wf.layout["right"]["x"]

    # Reload: the same graph, positions and params.
    page.reload()
    expect(page.locator("#dagflow-editor[data-ready=true]")).to_be_attached()
    assert edges(page) == expected
    assert f"translate({right_x} " in node(page, "right").get_attribute("transform")
    select(page, "start")
    expect(param(page, "mode").locator("select")).to_have_value("2")
    items = param(page, "targets").locator(".dagflow-array-item")
    expect(items).to_have_count(2)
    expect(items.nth(1).locator('[data-field="name"] input')).to_have_value("beta")
    expect(param(page, "verbose").locator("input")).to_be_checked()
    expect(param(page, "ratio").locator("input")).to_have_value("0.25")
    expect(page.locator("#dagflow-retries")).to_have_value("2")
    assert page.js_errors == []

    # Run it on a real worker: every step succeeds.
    run = wait_for_run(runs.start_run(wf, {}, user=None), timeout=60)
    assert run.status == RunStatus.SUCCESS
    results = {s.key: s.result for s in run.step_runs.all()}
    assert results["join"]["inputs"] == ["left", "middle", "right"]
    assert results["start"]["params"]["targets"][1]["name"] == "beta"


def test_server_refusal_is_shown_and_nothing_is_saved(admin_page):
    page = admin_page
    wf = Workflow.objects.create(slug="needs-mode", name="Needs mode")
    open_editor(page, wf)
    add_step(page, "configurable", "conf")
    # Leave the required enum empty: the engine refuses the params.
    param(page, "mode").locator("select").select_option("")
    message = save(page, "error")
    expect(message).to_contain_text("step 'conf': params invalid")
    expect(node(page, "conf")).to_have_class(re.compile("is-cycle"))
    wf.refresh_from_db()
    assert (wf.version, wf.steps.count()) == (1, 0)
    expect(page.locator(".dagflow-dirty")).to_be_visible()


def test_concurrent_save_is_refused(admin_page, staff_page_factory, screenshot):
    wf = Workflow.objects.create(slug="shared", name="Shared")
    first = admin_page
    second = staff_page_factory(
        ["workflows.view_workflow", "workflows.change_workflow"]
    )
    open_editor(first, wf)
    open_editor(second, wf)

    add_step(first, "noop", "theirs")
    save(first)
    add_step(second, "noop", "mine")
    message = save(second, "warning")
    expect(message).to_contain_text("Someone else saved this workflow")
    screenshot(second, "editor-conflict")
    assert [s["key"] for s in workflow_steps(wf)] == ["theirs"]

    # The refused changes are still unsaved: leaving the page asks first.
    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()

    second.on("dialog", dismiss)
    second.close(run_before_unload=True)
    second.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]


def test_read_only_user_cannot_change_anything(staff_page_factory, screenshot):
    from workflows.spec import save_steps

    wf = Workflow.objects.create(slug="read-only", name="Read only")
    save_steps(
        wf,
        [
            {"key": "a", "type": "noop"},
            {
                "key": "b",
                "type": "configurable",
                "params": {"mode": "safe"},
                "after": ["a"],
            },
        ],
        layout={"a": {"x": 40, "y": 40}, "b": {"x": 40, "y": 200}},
    )
    page = staff_page_factory(["workflows.view_workflow"])
    open_editor(page, wf)
    expect(node(page, "a")).to_have_count(1)
    expect(page.locator(".dagflow-palette")).to_have_count(0)
    expect(page.locator('[data-action="save"]')).to_have_count(0)
    expect(page.locator('[data-action="undo"]')).to_have_count(0)
    expect(page.locator(".dagflow-port-out")).to_have_count(0)

    before = node(page, "b").get_attribute("transform")
    box = node(page, "b").locator(".dagflow-node-box").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 100, steps=5)
    page.mouse.up()
    assert node(page, "b").get_attribute("transform") == before

    select(page, "b")
    expect(page.locator("#dagflow-key")).to_be_disabled()
    expect(param(page, "mode").locator("select")).to_be_disabled()
    page.keyboard.press("Delete")
    expect(node(page, "b")).to_have_count(1)
    assert edges(page) == {("a", "b")}
    screenshot(page, "editor-readonly")

    # The endpoint refuses too, whatever the page shows.
    csrf = page.locator("#content-main [name=csrfmiddlewaretoken]").input_value()
    response = page.request.post(
        page.base_url + reverse("admin:workflows_workflow_editor_save", args=[wf.pk]),
        data={"version": wf.version, "steps": []},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status == 403
    assert wf.steps.count() == 2
    assert page.js_errors == []


def test_an_invalid_or_duplicate_key_is_flagged_as_typed_and_never_sent(admin_page):
    page = admin_page
    wf = Workflow.objects.create(slug="keys", name="Keys")
    open_editor(page, wf)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    add_step(page, "noop", "first")
    page.click('.dagflow-type[data-type="noop"]')
    expect(page.locator(".dagflow-messages li.info")).to_contain_text("noop_")
    key_input = page.locator("#dagflow-key")
    error = page.locator(".dagflow-key-error")

    # Invalid as typed: the field and the box are flagged, the stale
    # "Added step" note goes, and Save sends nothing.
    key_input.fill("my step!")
    expect(key_input).to_have_attribute("aria-invalid", "true")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Use letters, digits")
    expect(node(page, "my step!")).to_have_class(re.compile("is-invalid"))
    expect(page.locator(".dagflow-messages li")).to_have_count(0)
    refusal = save(page, "error")
    expect(refusal.first).to_contain_text("Not saved")
    expect(page.locator(".dagflow-messages")).not_to_contain_text("Saved.")
    expect(key_input).to_have_value("my step!")  # not silently reverted

    # A duplicate key is refused the same way.
    key_input.fill("first")
    expect(error).to_contain_text("Another step already has the key")
    expect(page.locator(".dagflow-node.is-invalid")).to_have_count(2)
    save(page, "error")
    page.wait_for_timeout(300)
    assert posts == []
    wf.refresh_from_db()
    assert (wf.version, wf.steps.count()) == (1, 0)

    # Fixed: the flags and the refusal go, and the save goes through.
    key_input.fill("second")
    expect(key_input).to_have_attribute("aria-invalid", "false")
    expect(error).to_be_hidden()
    expect(page.locator(".dagflow-node.is-invalid")).to_have_count(0)
    expect(page.locator(".dagflow-messages li")).to_have_count(0)
    expect(save(page)).to_contain_text("Saved. The workflow is now at version 2")
    assert sorted(s["key"] for s in workflow_steps(wf)) == ["first", "second"]
    assert len(posts) == 1
    assert page.js_errors == []


def test_connect_mode_ends_after_one_connection(admin_page):
    page = admin_page
    wf = Workflow.objects.create(slug="connect-once", name="Connect once")
    open_editor(page, wf)
    for key in ("a", "b", "c"):
        add_step(page, "noop", key)
    connect_button = page.locator('[data-action="connect"]')
    connect_button.click()
    expect(connect_button).to_have_attribute("aria-pressed", "true")
    node(page, "a").locator(".dagflow-node-box").click()
    node(page, "b").locator(".dagflow-node-box").click()
    assert edges(page) == {("a", "b")}
    expect(connect_button).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#dagflow-editor")).not_to_have_class(
        re.compile("is-connecting")
    )
    # Further clicks select steps instead of connecting them.
    node(page, "b").locator(".dagflow-node-box").click()
    node(page, "c").locator(".dagflow-node-box").click()
    expect(page.locator("#dagflow-key")).to_have_value("c")
    assert edges(page) == {("a", "b")}
