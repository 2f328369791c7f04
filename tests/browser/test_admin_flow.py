"""The staff flow in Chromium: compose, refuse a cycle, run, watch, fail, rerun."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for_run
from tests.factories import chain_shape, make_workflow
from workflows import runs
from workflows.models import StepRun, Workflow, WorkflowRun

STEPS = [
    ("extract", "Extract the rows", "sleep"),
    ("transform", 'Transform <them> & "check"', "fail"),
    ("load", "Load into the warehouse", "noop"),
]


def node(page, key):
    """Return the graph node of step *key* (Graphviz writes the key as its <title>)."""
    return page.locator("#dagflow-graph g.node").filter(
        has=page.locator(f'title:text-is("{key}")')
    )


def wait_final(page, timeout=60_000):
    page.wait_for_selector('#dagflow-graph[data-final="true"]', timeout=timeout)


def states(page) -> dict[str, str]:
    return page.eval_on_selector_all(
        "#dagflow-graph g.node",
        "els => Object.fromEntries(els.map(g => "
        "[g.querySelector('title').textContent, g.dataset.state]))",
    )


@pytest.mark.integration
def test_compose_run_watch_fail_and_rerun(admin_page, worker, screenshot):
    page = admin_page
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Compose three steps through the inline, params from the schema forms.
    page.goto(f"{page.base_url}/admin/workflows/workflow/add/")
    page.fill("#id_name", "Nightly ETL")
    for i, (key, label, step_type) in enumerate(STEPS):
        page.click("text=Add another Step")
        page.fill(f"#id_steps-{i}-key", key)
        page.fill(f"#id_steps-{i}-label", label)
        page.select_option(f"#id_steps-{i}-step_type", step_type)
    # Choosing a type switched the params form to that type's schema.
    seconds = page.locator('#id_steps-0-params_jsonform input[name="rjf§seconds"]')
    seconds.fill("1.5")
    page.fill(
        '#id_steps-1-params_jsonform input[name="rjf§message"]', "Transform broke"
    )
    page.fill('#id_steps-1-params_jsonform input[name="rjf§times"]', "1")
    assert page.locator("#id_steps-2-params_jsonform input").count() == 0
    page.click("#steps-1 details summary")
    page.fill("#id_steps-1-retries", "0")
    page.click('input[name="_continue"]')
    page.wait_for_selector(".messagelist .success")
    workflow = Workflow.objects.get(slug="nightly-etl")
    assert workflow.steps.get(key="extract").params == {"seconds": 1.5}
    assert workflow.steps.get(key="transform").params == {
        "message": "Transform broke",
        "times": 1,
    }

    # Dependencies among the saved steps; the graph is redrawn after the save.
    page.check('input[name="steps-1-after"][value="extract"]')
    page.check('input[name="steps-2-after"][value="transform"]')
    page.click('input[name="_continue"]')
    page.wait_for_selector(".messagelist .success")
    page.wait_for_selector('#dagflow-graph[data-drawn="true"]')
    assert page.locator("#dagflow-graph g.node").count() == 3
    assert page.locator("#dagflow-graph g.edge").count() == 2
    # The hostile label is text in the SVG, not markup.
    assert 'Transform <them> & "check"' in node(page, "transform").text_content()
    screenshot(page, "workflow-form")

    # A cycle is refused on the form, steps named, nothing saved.
    version = Workflow.objects.get(pk=workflow.pk).version
    page.check('input[name="steps-0-after"][value="load"]')
    page.click('input[name="_continue"]')
    page.wait_for_selector(".errornote")
    assert "cycle: " in page.locator(".inline-group .errorlist").first.inner_text()
    assert page.locator("text=This step is on a cycle").count() == 3
    assert Workflow.objects.get(pk=workflow.pk).version == version

    # Start a run: params form, confirmation, and a double click starts one run.
    page.goto(f"{page.base_url}/admin/workflows/workflow/{workflow.pk}/change/")
    page.click("a.dagflow-run-link")
    page.click('input[value="Next: confirm"]')
    page.dblclick('input[value="Yes, start the run"]')
    page.wait_for_selector("#dagflow-graph[data-drawn='true']")
    assert WorkflowRun.objects.filter(workflow=workflow).count() == 1
    run = WorkflowRun.objects.get(workflow=workflow)

    # Watch it without reloading: the page polls and recolours the nodes.
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector("#dagflow-graph g.node.state-running", timeout=30_000)
    screenshot(page, "run-graph")
    wait_final(page)
    assert page.evaluate("window.__sameDocument") is True
    assert states(page) == {
        "extract": "success",
        "transform": "failed",
        "load": "upstream_failed",
    }
    assert page.locator("[data-dagflow-run-status]").inner_text() == "Failed"
    assert page.locator("#dagflow-timeline .dagflow-timeline-bar").count() == 2

    # Clicking a node opens its step run: the error, its attempts.
    node(page, "transform").click()
    page.wait_for_selector("text=Transform broke")
    assert "/admin/workflows/steprun/" in page.url
    page.go_back()
    page.wait_for_selector("#dagflow-graph[data-drawn='true']")

    # Rerun the failed steps; the run ends in success.
    page.click("a.dagflow-rerun-link")
    page.click('input[value="Yes, rerun"]')
    page.wait_for_selector(".messagelist .success")
    page.evaluate("window.__sameDocument = true")
    wait_final(page)
    assert page.evaluate("window.__sameDocument") is True
    assert set(states(page).values()) == {"success"}
    assert page.locator("[data-dagflow-run-status]").inner_text() == "Success"
    screenshot(page, "run-finished")
    run = wait_for_run(run)
    assert run.status == "success"
    assert StepRun.objects.get(run=run, key="transform").history.count() == 2
    assert not errors, errors


@pytest.mark.integration
def test_run_list_then_cancel_a_running_run(admin_page, worker):
    workflow = make_workflow(
        "a>b",
        slug="daily",
        overrides={"a": {"type": "sleep", "params": {"seconds": 4}}},
    )
    run = runs.start_run(workflow)
    page = admin_page
    page.goto(f"{page.base_url}/admin/workflows/workflowrun/")
    assert page.locator(".dagflow-badge").count() == 1
    assert page.locator(".dagflow-progress-text").inner_text() == "0 / 2"
    page.goto(f"{page.base_url}/admin/workflows/workflowrun/{run.pk}/change/")
    page.wait_for_selector("#dagflow-graph[data-drawn='true']")
    assert page.locator("a.dagflow-cancel-link").is_visible()
    assert not page.locator("a.dagflow-rerun-link").is_visible()
    page.click("a.dagflow-cancel-link")
    page.click('input[value="Yes, cancel the run"]')
    page.wait_for_selector(".messagelist .success")
    wait_final(page)
    assert page.locator("[data-dagflow-run-status]").inner_text() == "Cancelled"
    assert page.locator("a.dagflow-rerun-link").is_visible()
    assert set(states(page).values()) <= {"cancelled", "success"}
    # Cancelling again is refused with a message, not an error page.
    page.goto(f"{page.base_url}/admin/workflows/workflowrun/{run.pk}/cancel/")
    page.click('input[value="Yes, cancel the run"]')
    assert "already ended" in page.locator(".messagelist .error").inner_text()


def test_staff_without_permissions_see_no_buttons(staff_page_factory):
    workflow = make_workflow("a>b", slug="locked")
    run = runs.start_run(workflow)
    page = staff_page_factory(["workflows.view_workflow", "workflows.view_workflowrun"])
    page.goto(f"{page.base_url}/admin/workflows/workflow/{workflow.pk}/change/")
    page.wait_for_selector('#dagflow-graph[data-drawn="true"]')
    assert page.locator("a.dagflow-run-link").count() == 0
    page.goto(f"{page.base_url}/admin/workflows/workflowrun/{run.pk}/change/")
    page.wait_for_selector('#dagflow-graph[data-drawn="true"]')
    assert page.locator("a.dagflow-cancel-link, a.dagflow-rerun-link").count() == 0
    response = page.goto(f"{page.base_url}/admin/workflows/workflow/{workflow.pk}/run/")
    assert response.status == 403


def test_a_300_step_graph_draws_in_under_two_seconds(admin_page):
    workflow = make_workflow(
        chain_shape(150) + " " + chain_shape(150).replace("s", "t")
    )
    assert workflow.steps.count() == 300
    page = admin_page
    page.goto(f"{page.base_url}/admin/workflows/workflow/{workflow.pk}/graph/")
    page.wait_for_selector('#dagflow-graph[data-drawn="true"]', timeout=20_000)
    assert page.locator("#dagflow-graph g.node").count() == 300
    draw_ms = int(page.get_attribute("#dagflow-graph", "data-draw-ms"))
    print(f"300-step graph drawn in {draw_ms} ms")
    assert draw_ms < 2000, f"drawing 300 steps took {draw_ms} ms"


BREADCRUMB_STYLE = """el => {
    const s = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return {bg: s.backgroundColor, padding: s.paddingLeft, color: s.color,
            left: Math.round(box.left), width: Math.round(box.width)};
}"""


def test_breadcrumbs_look_like_the_admins_own(admin_page, tmp_path):
    page = admin_page
    from django.urls import reverse

    workflow = make_workflow("a>b", slug="crumbs")
    run = runs.start_run(workflow)
    page.goto(
        page.base_url + reverse("admin:workflows_workflow_change", args=[workflow.pk])
    )
    reference = page.eval_on_selector(".breadcrumbs", BREADCRUMB_STYLE)
    assert reference["bg"] not in ("rgba(0, 0, 0, 0)", "transparent")
    pages = [
        ("workflow_graph", [workflow.pk]),
        ("workflow_editor", [workflow.pk]),
        ("workflow_step_types", []),
        ("workflow_run", [workflow.pk]),
        ("workflowrun_graph", [run.pk]),
        ("workflowrun_cancel", [run.pk]),
    ]
    for name, args in pages:
        page.goto(page.base_url + reverse(f"admin:workflows_{name}", args=args))
        style = page.eval_on_selector(".breadcrumbs", BREADCRUMB_STYLE)
        page.screenshot(path=str(tmp_path / f"{name}.png"))
        assert style == reference, name
