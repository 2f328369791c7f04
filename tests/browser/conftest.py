"""Playwright fixtures driving Debian's Chromium against pytest-django's live_server.

Browser tests are skipped (with the reason) where /usr/bin/chromium is missing,
unless DAGFLOW_REQUIRE_BROWSER=1, as in CI, where a missing browser fails them.
"""

import os
from pathlib import Path

import pytest

# pytest-django's live_server and Playwright's sync API share the test thread,
# which Django would otherwise refuse as "async unsafe" ORM access.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path(os.environ.get("DAGFLOW_CHROMIUM", "/usr/bin/chromium"))
# The README's screenshots are refreshed on purpose (DAGFLOW_SCREENSHOTS=docs);
# an ordinary run writes them where git does not look.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "img"
    if os.environ.get("DAGFLOW_SCREENSHOTS") == "docs"
    else Path(__file__).resolve().parents[1] / "artifacts"
)
PASSWORD = "correct-horse-battery"


def pytest_collection_modifyitems(config, items):
    """Mark every test in this folder as a browser test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    """Return a headless Chromium shared by the session's browser tests."""
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
            "to run the browser tests"
        )
        if os.environ.get("DAGFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (DAGFLOW_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--headless",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        yield chromium
        chromium.close()


def _login(browser, live_server, username):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page


@pytest.fixture
def admin_user_browser(django_user_model):
    """Return a superuser whose password the browser knows."""
    return django_user_model.objects.create_superuser(
        "admin", "admin@example.com", PASSWORD
    )


@pytest.fixture
def admin_page(browser, live_server, admin_user_browser):
    """Return a page logged in to the admin on live_server as a superuser."""
    page = _login(browser, live_server, admin_user_browser.username)
    page.base_url = live_server.url
    yield page
    page.context.close()


@pytest.fixture
def staff_page_factory(browser, live_server, django_user_model):
    """Return ``make(perms)``: a page logged in as staff with only *perms*.

    *perms* are ``"app_label.codename"`` strings.
    """
    from django.contrib.auth.models import Permission

    pages = []

    def make(perms=(), username=None):
        username = username or f"staff{len(pages) + 1}"
        user = django_user_model.objects.create_user(
            username, f"{username}@example.com", PASSWORD, is_staff=True
        )
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            user.user_permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        page = _login(browser, live_server, username)
        page.base_url = live_server.url
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.context.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot of *page* as <name>.png in SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(name="screenshot")
def screenshot_fixture():
    """Return the screenshot(page, name) helper."""
    return screenshot
