"""The login gate (AppTest, app/auth.py): first start, login, lockout, roles, idle expiry and
logout, on a real workspace with real accounts (core.accounts).

The cookie that keeps a session across a reload is set by a route of the running server, so
it is proven in the browser (tests/e2e/test_auth_browser.py); here a session is the token the
login form leaves in session state.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from core import accounts
from core.workspace import Workspace
from db.models import LoginSession, utcnow

PASSWORD = "correct horse battery staple"


@pytest.fixture
def ws(app_env) -> Workspace:
    ws = Workspace.open(app_env)
    yield ws
    ws.dispose()


def texts(at: AppTest) -> str:
    parts = [m.value for m in (*at.markdown, *at.title, *at.subheader, *at.caption)]
    parts += [e.value for e in (*at.info, *at.error, *at.success, *at.warning)]
    return "\n".join(str(p) for p in parts)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def log_in(at: AppTest, name: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="auth_login_name").input(name)
    at.text_input(key="auth_login_password").input(password)
    return button(at, "Log in").click().run()


def add(ws: Workspace, name: str, role: str) -> None:
    if not accounts.has_accounts(ws):
        accounts.create_account(ws, "boss", "admin", password=PASSWORD)
    accounts.create_account(ws, name, role, password=PASSWORD, by="boss")


def test_first_start_creates_the_administrator_once_and_logs_in(ws, open_app):
    at = open_app(login=None)
    assert not at.exception
    assert "Create the administrator" in labels(at)
    assert "Worklist" not in texts(at)  # no page runs before an account exists
    at.text_input(key="auth_first_name").input("Dr <b>Admin</b>")
    at.text_input(key="auth_first_password").input(PASSWORD)
    at.text_input(key="auth_first_again").input(PASSWORD + "x")
    at = button(at, "Create the administrator").click().run()
    assert "The two passwords differ" in texts(at)
    assert not accounts.has_accounts(ws)

    at.text_input(key="auth_first_again").input(PASSWORD)
    at = button(at, "Create the administrator").click().run()
    assert not at.exception
    admin = accounts.get_account(ws, "Dr <b>Admin</b>")
    assert admin is not None and admin.role == "admin" and admin.has_password
    assert "Log out" in labels(at)
    assert r"Dr \<b\>Admin\</b\>" in texts(at)  # the name is text, not markup
    actions = [r.action for r in accounts.audit_rows(ws)]
    assert "account_created" in actions and "login" in actions

    # A new browser session now gets the login form, never the first-start form again.
    fresh = open_app(login=None)
    assert "Create the administrator" not in labels(fresh) and "Log in" in labels(fresh)


def test_without_a_session_only_the_login_form_shows_then_the_deep_link_opens(
    ws, open_app, imported_workspace
):
    imported_workspace(1, root=ws.root)
    add(ws, "anna", "annotator")
    at = open_app("worklist", login=None)
    assert not at.exception
    assert labels(at) == {"Log in"}
    assert "Worklist" not in texts(at)

    at = log_in(at, "anna", "wrong password")
    assert "Worklist" not in texts(at) and labels(at) == {"Log in"}
    refused = texts(at)
    assert "anna" not in refused  # never says whether the name exists

    at = log_in(at, "anna")
    assert not at.exception
    assert "Log out" in labels(at)
    assert "**anna** · annotator" in texts(at)
    assert "Worklist" in texts(at)  # the page of the link opens after the login
    actions = [(r.actor, r.action) for r in accounts.audit_rows(ws)]
    assert ("anna", "login_failed") in actions and ("anna", "login") in actions


def test_five_failed_logins_lock_the_account(ws, open_app):
    add(ws, "rita", "reviewer")
    at = open_app(login=None)
    for _ in range(5):
        at = log_in(at, "rita", "not her password")
    at = log_in(at, "rita")  # the right password, but locked now
    assert "Log out" not in labels(at)
    assert accounts.get_account(ws, "rita").locked_until is not None
    failed = [r for r in accounts.audit_rows(ws, action="login_failed") if r.actor == "rita"]
    assert len(failed) == 6


def test_an_annotator_cannot_open_the_admin_pages_and_sees_why(ws, open_app):
    add(ws, "anna", "annotator")
    at = open_app("train", login="anna", role="annotator")
    assert not at.exception
    assert "The Train page needs the admin role; you are annotator" in texts(at)
    assert "Start training" not in labels(at)
    at = open_app("import_images", login="anna", role="annotator")
    assert "The Import page needs the admin role" in texts(at)
    assert "Import" not in labels(at)


def test_an_idle_session_expires_and_logout_ends_one(ws, open_app):
    at = open_app()  # logged in as the admin "reader" (tests/app/conftest.py)
    assert "Log out" in labels(at)
    with ws.sessions.begin() as s:  # the session was last seen two hours ago
        for row in s.query(LoginSession).all():
            row.last_seen = utcnow() - timedelta(hours=2)
    at = at.run()
    assert "Log out" not in labels(at) and "Log in" in labels(at)
    assert "Your session has expired" in texts(at)

    at = log_in(at, "reader")
    assert "Log out" in labels(at)
    at = button(at, "Log out").click().run()
    assert "You are logged out." in texts(at) and "Log out" not in labels(at)
    with ws.sessions() as s:
        assert all(row.ended_at is not None for row in s.query(LoginSession).all())
    assert "logout" in [r.action for r in accounts.audit_rows(ws, actor="reader")]


def test_a_disabled_account_is_logged_out_at_its_next_click(ws, open_app):
    add(ws, "anna", "annotator")
    at = open_app(login="anna", role="annotator")
    assert "Log out" in labels(at)
    accounts.set_disabled(ws, "anna", True, by="boss")
    at = at.run()
    assert "Log out" not in labels(at) and "Log in" in labels(at)
    at = log_in(at, "anna")
    assert "This account is disabled" in texts(at) and "Log out" not in labels(at)


def test_the_cookie_route_takes_each_ticket_once_and_refuses_other_sites(ws, app_env):
    import auth
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    client = TestClient(Starlette(routes=auth.routes()), base_url="http://127.0.0.1:8501")
    value = auth.cookie_value(ws, "a-session-token")
    ticket = auth._issue_ticket(value)
    other = client.post(auth.SESSION_ROUTE, content=ticket, headers={"Origin": "http://evil.test"})
    assert other.status_code == 403
    first = client.post(auth.SESSION_ROUTE, content=ticket)
    assert first.status_code == 204
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE}={value};") and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Secure" not in cookie  # plain http here
    assert client.post(auth.SESSION_ROUTE, content=ticket).status_code == 400  # used up
    assert auth.read_cookie(ws, value)["t"] == "a-session-token"
    forged = auth.cookie_value(ws, "another-token").split(".")[0] + "." + value.split(".", 1)[1]
    assert auth.read_cookie(ws, forged) is None  # a signature this workspace did not make
    cleared = client.post(auth.LOGOUT_ROUTE)
    assert cleared.status_code == 204 and f'{auth.COOKIE}="";' in cleared.headers["set-cookie"]
