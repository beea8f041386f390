"""Single sign-on in a real browser: Chromium logs in to `streamlit run app/main.py` through a
real OpenID Connect provider process (tests/oidc.py), with Streamlit's st.login configured by
a secrets.toml in a temporary folder. The identity is matched to an account by e-mail (then
by its linked subject); its role comes from the admin; a person without an account is told to
ask the administrator and gets nothing; logout and idle expiry end the single sign-on too.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest

from core import accounts
from db.models import LoginSession, Reader, utcnow

pytestmark = pytest.mark.e2e

_spec = importlib.util.spec_from_file_location(
    "pneumolab_test_oidc", Path(__file__).resolve().parents[1] / "oidc.py"
)
oidc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oidc)

USERS = [
    {"sub": "sub-anna-7f3", "email": "anna@hospital.example", "name": "Anna"},
    {"sub": "sub-nobody-2c9", "email": "nobody@hospital.example", "name": "Nobody"},
]


@pytest.fixture
def provider(tmp_path, free_port):
    with oidc.oidc_provider(free_port(), tmp_path / "oidc.log", USERS) as issuer:
        yield issuer


def sign_in_at_the_provider(page, url: str, subject: str, settle) -> None:
    page.goto(url)
    settle(page)
    page.get_by_role("button", name="Log in with single sign-on").click()
    page.get_by_placeholder("sub").fill(subject)  # the provider's own page
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**")
    settle(page)


def end_session_at_the_provider(page, url: str, settle) -> None:
    """Streamlit's logout sends the browser to the provider's end-session page; confirm there,
    and come back to the app's login form."""
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{url}/**")
    page.get_by_role("button", name="Log in with single sign-on").wait_for()
    settle(page)


def logged_in_as(page, name: str, role: str) -> None:
    page.get_by_role("button", name="Log out", exact=True).wait_for()
    assert f"{name} · {role}" in page.locator('[data-testid="stSidebar"]').inner_text()


def test_single_sign_on_matches_accounts_and_refuses_strangers(
    app_server, page, provider, imported_workspace, settle, artifacts
):
    ws = imported_workspace(0)
    accounts.create_account(ws, "boss", "admin", password="a long enough password")
    accounts.create_account(
        ws, "anna", "annotator", password="another long password", email="anna@hospital.example",
        by="boss",
    )  # fmt: skip
    url = app_server(ws.root, login=None, secrets=lambda app: oidc.secrets_toml(app, provider))

    # Matched by e-mail: the annotator's account, its role given by the admin.
    sign_in_at_the_provider(page, url, USERS[0]["sub"], settle)
    logged_in_as(page, "anna", "annotator")
    page.screenshot(path=str(artifacts / "sso-anna.png"))
    assert accounts.get_account(ws, "anna").oidc_subject == USERS[0]["sub"]  # linked now
    page.reload()
    settle(page)
    logged_in_as(page, "anna", "annotator")

    # Logout ends the app's session and Streamlit's single sign-on cookie.
    page.get_by_role("button", name="Log out", exact=True).click()
    end_session_at_the_provider(page, url, settle)
    assert not page.get_by_role("button", name="Log out", exact=True).count()
    page.goto(url)
    settle(page)
    page.get_by_role("button", name="Log in with single sign-on").wait_for()
    assert not page.get_by_role("button", name="Log out", exact=True).count()

    # Matched by its linked subject now; then the session goes idle: it expires, and the
    # single sign-on with it (no silent login again).
    sign_in_at_the_provider(page, url, USERS[0]["sub"], settle)
    logged_in_as(page, "anna", "annotator")
    with ws.sessions.begin() as s:
        anna = s.query(Reader).filter_by(name="anna").one()
        for session in s.query(LoginSession).filter_by(reader_id=anna.id).all():
            session.last_seen = utcnow() - timedelta(hours=2)
    expired = [c for c in page.context.cookies() if c["name"] == "pneumolab_session"]
    page.reload()
    end_session_at_the_provider(page, url, settle)
    assert not page.get_by_role("button", name="Log out", exact=True).count()

    # A new sign-on is a new session, even with the expired session's cookie still about.
    page.context.add_cookies(expired)
    sign_in_at_the_provider(page, url, USERS[0]["sub"], settle)
    logged_in_as(page, "anna", "annotator")
    page.get_by_role("button", name="Log out", exact=True).click()
    end_session_at_the_provider(page, url, settle)

    # A person the provider knows but who has no account gets nothing.
    sign_in_at_the_provider(page, url, USERS[1]["sub"], settle)
    page.get_by_text("ask your administrator", exact=False).wait_for()
    assert not page.get_by_role("button", name="Log out", exact=True).count()
    assert not page.locator('[data-testid="stSidebarNav"]').count()
    page.screenshot(path=str(artifacts / "sso-stranger.png"))

    rows = [(r.actor, r.action, (r.detail or {}).get("via")) for r in accounts.audit_rows(ws)]
    assert rows.count(("anna", "login", "oidc")) == 3
    assert ("anna", "logout", None) in rows
    assert any(a == "login_failed" and via == "oidc" for _, a, via in rows)
