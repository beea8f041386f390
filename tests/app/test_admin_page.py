"""The Admin page, driven as an admin drives it (AppTest, logged in through tests/logins.py):
add an account, change its role, disable and enable it, reset its password, change the login
settings, and read the audit log with its filters and CSV download."""

from __future__ import annotations

import pytest

from core import accounts
from core.workspace import Workspace

ADMIN = "reader"  # the tests' admin account (tests/logins.py)


@pytest.fixture
def ws(app_env):
    workspace = Workspace.open(app_env)
    yield workspace
    workspace.dispose()


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def _add(at, name: str, role: str, password: str = "a good password", repeat=None):
    at.text_input(key="admin_add_name").input(name)
    at.selectbox(key="admin_add_role").set_value(role)
    at.text_input(key="admin_add_password").input(password)
    at.text_input(key="admin_add_repeat").input(repeat or password)
    _button(at, "Add account").click()
    return at.run()


def test_an_admin_adds_an_account_that_can_then_log_in(ws, open_app):
    at = open_app("admin")
    assert not at.exception
    at = _add(at, "<b>dr. who</b>", "reviewer")
    assert not at.exception
    # The name is shown as typed: its markup characters are escaped, never rendered.
    assert at.success[0].value == r"Added \<b\>dr. who\</b\> (reviewer)."
    account = accounts.authenticate(ws, "<b>dr. who</b>", "a good password")
    assert account.role == "reviewer"
    created = accounts.audit_rows(ws, action="account_created")[0]  # the newest
    assert (created.actor, created.target) == (ADMIN, "<b>dr. who</b>")
    names = list(at.dataframe[0].value["name"])
    assert "<b>dr. who</b>" in names and ADMIN in names


def test_mismatched_or_short_passwords_add_nothing(ws, open_app):
    at = _add(open_app("admin"), "bob", "annotator", "a good password", "another one")
    assert "differ" in at.error[0].value
    at = _add(at, "bob", "annotator", "short")
    assert "at least 8" in at.error[0].value
    assert accounts.get_account(ws, "bob") is None


def test_role_disable_enable_and_password_reset(ws, open_app):
    at = _add(open_app("admin"), "bob", "annotator")
    at.selectbox(key="admin_account").set_value("bob")
    at.run()
    at.selectbox(key="admin_role").set_value("reviewer")
    _button(at, "Change role").click()
    at.run()
    assert accounts.get_account(ws, "bob").role == "reviewer"

    _button(at, "Disable").click()
    at.run()
    assert accounts.get_account(ws, "bob").disabled
    assert "disabled" in list(at.dataframe[0].value["status"])
    _button(at, "Enable").click()
    at.run()
    assert not accounts.get_account(ws, "bob").disabled

    at.text_input(key="admin_new_pw").input("bob's new password")
    _button(at, "Reset password").click()
    at.run()
    assert not at.exception and not at.error
    assert accounts.authenticate(ws, "bob", "bob's new password").name == "bob"
    changes = [r.detail for r in accounts.audit_rows(ws, action="account_changed")]
    assert changes == [
        {"password": "reset"},
        {"disabled": False},
        {"disabled": True},
        {"role": ["annotator", "reviewer"]},
    ]


def test_the_last_admin_cannot_disable_itself(ws, open_app):
    at = open_app("admin")
    at.selectbox(key="admin_account").set_value(ADMIN)
    at.run()
    _button(at, "Disable").click()
    at.run()
    assert "last admin" in at.error[0].value
    assert not accounts.get_account(ws, ADMIN).disabled


def test_login_settings_are_saved(ws, open_app):
    at = open_app("admin")
    at.number_input(key="admin_max_failed").set_value(3)
    at.number_input(key="admin_idle").set_value(30)
    _button(at, "Save settings").click()
    at.run()
    assert at.success[0].value == "Saved 2 setting(s)."
    saved = accounts.account_settings(ws)
    assert (saved.max_failed_logins, saved.session_idle_minutes) == (3, 30)


def test_the_audit_log_filters_and_offers_the_csv(ws, open_app):
    at = _add(open_app("admin"), "bob", "annotator")
    accounts.audit(ws, "bob", "export", "all", {"images": 2})
    at.run()
    table = at.dataframe[-1].value
    assert {"account_created", "export"} <= set(table["action"])
    at.selectbox(key="admin_audit_action").set_value("export")
    at.run()
    assert list(at.dataframe[-1].value["who"]) == ["bob"]
    at.selectbox(key="admin_audit_action").set_value(None)
    at.selectbox(key="admin_audit_actor").set_value("bob")
    at.run()
    assert set(at.dataframe[-1].value["who"]) == {"bob"}
    assert [b.label for b in at.get("download_button")] == ["Download CSV"]


def test_a_non_admin_sees_no_admin_controls(ws, open_app):
    at = open_app("admin", login="bob", role="annotator")
    assert not at.exception
    assert not [b for b in at.button if b.label in ("Add account", "Disable", "Change role")]
    assert not list(at.get("download_button"))
