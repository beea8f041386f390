"""Logins in a real browser (Chromium against `streamlit run app/main.py`): every page URL and
an `?image=` deep link show only the login form without a session; each role sees what it may
do; five failed logins lock an account; a reload keeps the session (the HttpOnly cookie);
logout ends it; an idle session expires; the audit log holds each of these.

One app server for the whole story (browser tests are the suite's slowest part).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from core import accounts
from core.labels.catalog import WorklistFilter, list_images
from db.models import LoginSession, Reader, utcnow

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
# Every page's URL path (app/main.py PAGES; "" is the start page, the Worklist).
PAGE_PATHS = [
    "", "import_images", "annotate", "train", "review", "models", "features", "export", "admin",
]  # fmt: skip
MENU = ["Worklist", "Import", "Annotate", "Train", "Review", "Models", "Feature space", "Export"]
MENU_OF = {
    "annotator": {"Worklist", "Annotate", "Review", "Models", "Feature space"},
    "reviewer": {"Worklist", "Annotate", "Review", "Models", "Feature space"},
    "admin": {*MENU, "Admin"},
}


def settle(page) -> None:
    # Streamlit has finished the script run (tests/e2e/conftest.py's `settle`, inlined for
    # the helpers below).
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText"
        ".includes('Running')",
        timeout=60_000,
    )


def menu(page) -> set[str]:
    nav = page.locator('[data-testid="stSidebarNav"] a')
    return {t.strip().splitlines()[-1] for t in nav.all_inner_texts()}  # after the icon


def shows_only_the_login_form(page) -> None:
    settle(page)
    page.get_by_role("button", name="Log in", exact=True).wait_for()
    page.get_by_label("Account name").wait_for()
    assert not page.locator('[data-testid="stSidebarNav"]').count()
    assert not page.get_by_role("button", name="Log out", exact=True).count()
    body = page.locator('[data-testid="stMain"]').inner_text()
    for title in ("Worklist", "Import X-rays", "Annotate", "Train a model", "Review predictions"):
        assert title not in body


def log_in(page, name: str, password: str = PASSWORD) -> None:
    page.get_by_label("Account name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    settle(page)


def logged_in_as(page, name: str, role: str) -> None:
    page.get_by_role("button", name="Log out", exact=True).wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert f"{name} · {role}" in sidebar


def failures(ws, name: str) -> int:
    return len([r for r in accounts.audit_rows(ws, action="login_failed") if r.actor == name])


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app did not answer in time"
        time.sleep(0.2)


def log_out(page) -> None:
    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_text("You are logged out.").wait_for()


def test_login_roles_lockout_reload_logout_and_idle_expiry(
    app_server, page, imported_workspace, artifacts
):
    ws = imported_workspace(1)
    image_id = list_images(ws, WorklistFilter())[0]["id"]
    accounts.create_account(ws, "boss", "admin", password=PASSWORD)
    for name, role in (("anna", "annotator"), ("rita", "reviewer")):
        accounts.create_account(ws, name, role, password=PASSWORD, by="boss")
    url = app_server(ws.root, login=None)

    # Without a session: every page URL, and a deep link, shows only the login form.
    for path in PAGE_PATHS:
        page.goto(f"{url}/{path}")
        shows_only_the_login_form(page)
    page.goto(f"{url}/annotate?image={image_id}")
    shows_only_the_login_form(page)
    page.screenshot(path=str(artifacts / "login.png"))

    # The annotator logs in from the deep link, which then opens its image.
    log_in(page, "anna")
    logged_in_as(page, "anna", "annotator")
    assert page.url == f"{url}/annotate?image={image_id}"  # the link's page, not the start page
    assert not page.get_by_role("heading", name="Worklist").count()
    assert menu(page) == MENU_OF["annotator"]
    page.goto(f"{url}/train")  # a page not in the menu, by its URL
    settle(page)
    page.get_by_text("The Train page needs the admin role; you are annotator").wait_for()
    assert not page.get_by_role("button", name="Start training").count()

    # The session is an HttpOnly cookie: a reload keeps it, page scripts cannot read it.
    cookie = next(c for c in page.context.cookies() if c["name"] == "pneumolab_session")
    assert cookie["httpOnly"] and "anna" not in cookie["value"]
    assert "pneumolab_session" not in page.evaluate("document.cookie")
    page.reload()
    settle(page)
    logged_in_as(page, "anna", "annotator")

    # Logout ends it, for a reload too.
    log_out(page)
    page.reload()
    shows_only_the_login_form(page)

    # The reviewer: the Review page and no admin page; then the session goes idle.
    log_in(page, "rita")
    logged_in_as(page, "rita", "reviewer")
    assert menu(page) == MENU_OF["reviewer"]
    with ws.sessions.begin() as s:  # two hours without a request
        rita = s.query(Reader).filter_by(name="rita").one()
        for session in s.query(LoginSession).filter_by(reader_id=rita.id).all():
            session.last_seen = utcnow() - timedelta(hours=2)
    page.reload()
    shows_only_the_login_form(page)
    page.get_by_text("Your session has expired").wait_for()

    # The admin sees every page, the Admin page and the training controls.
    log_in(page, "boss")
    logged_in_as(page, "boss", "admin")
    assert menu(page) == MENU_OF["admin"]
    page.goto(f"{url}/train")
    settle(page)
    page.get_by_role("button", name="Start training").wait_for()
    log_out(page)

    # Five wrong passwords lock the account: then even the right one is refused.
    for n in range(1, 6):
        log_in(page, "anna", "not the password")
        page.get_by_text("Wrong name or password.").wait_for()
        wait_until(lambda n=n: failures(ws, "anna") == n)  # that submit was answered
    log_in(page, "anna")
    page.get_by_text("Too many failed logins").wait_for()
    assert not page.get_by_role("button", name="Log out", exact=True).count()
    page.screenshot(path=str(artifacts / "locked.png"))

    # The audit log holds a row for each of these actions.
    rows = [(r.actor, r.action) for r in accounts.audit_rows(ws, limit=None)]
    for name in ("anna", "rita", "boss"):
        assert (name, "login") in rows
    assert rows.count(("anna", "login_failed")) == 6
    assert ("anna", "logout") in rows and ("boss", "logout") in rows
