"""Accounts on a real SQLite workspace: the first administrator, argon2 password hashes, the
lock after repeated failures, disabled accounts, role changes, sessions, OpenID Connect
matching and the settings they follow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from core import accounts
from core.accounts import LoginRefused, PermissionDenied
from core.labels.revisions import latest_by_reader, save_revision
from db.models import AuditEntry, LoginSession, Reader, utcnow

PASSWORD = "correct horse battery staple"


def _two_accounts(ws) -> None:
    accounts.create_account(ws, "alice", "admin", password=PASSWORD)
    accounts.create_account(ws, "bob", "annotator", password="bob's password", by="alice")


@pytest.fixture(scope="module")
def prepared(prepared_workspace):
    return prepared_workspace("accounts", 1, _two_accounts)


@pytest.fixture
def ws(prepared, workspace_copy):
    """A copy of a workspace holding one real X-ray (image 1, with the import reader's
    lungs), its first admin "alice" and an annotator "bob"."""
    return workspace_copy(prepared)


def _actions(ws, **filters) -> list[tuple[str, str]]:
    return [(r.actor, r.action) for r in reversed(accounts.audit_rows(ws, **filters))]


# --- the first administrator ------------------------------------------------------------------


def test_a_fresh_workspace_has_no_accounts_and_lets_calls_through(workspace):
    assert not accounts.has_accounts(workspace)
    # The first-start state: today's behaviour, every call goes through.
    assert accounts.require(workspace, "anyone", "admin") is None
    assert accounts.require(workspace, "reader", "admin").name == "reader"


def test_the_first_account_must_be_an_admin_with_a_credential(workspace):
    with pytest.raises(ValueError, match="role admin"):
        accounts.create_account(workspace, "ann", "annotator", password=PASSWORD)
    with pytest.raises(ValueError, match="role admin"):  # whoever asks for it
        accounts.create_account(workspace, "ann", "annotator", password=PASSWORD, by="reader")
    with pytest.raises(ValueError, match="service identities after it"):
        accounts.create_account(workspace, "bot", "admin", service=True)
    with pytest.raises(ValueError, match="password"):
        accounts.create_account(workspace, "alice", "admin")
    assert not accounts.has_accounts(workspace)
    admin = accounts.create_account(workspace, "alice", "admin", password=PASSWORD)
    assert admin.role == "admin" and admin.has_password
    assert accounts.has_accounts(workspace)


def test_once_an_account_exists_only_an_admin_adds_accounts(ws):
    with pytest.raises(PermissionDenied, match="only an admin adds accounts"):
        accounts.create_account(ws, "carol", "admin", password=PASSWORD)
    with pytest.raises(PermissionDenied, match="bob is an annotator.*must be an admin"):
        accounts.create_account(ws, "carol", "admin", password=PASSWORD, by="bob")
    assert accounts.get_account(ws, "carol") is None
    accounts.create_account(ws, "carol", "reviewer", password=PASSWORD, by="alice")
    assert accounts.get_account(ws, "carol").role == "reviewer"
    with pytest.raises(ValueError, match="already exists"):
        accounts.create_account(ws, "carol", "reviewer", password=PASSWORD, by="alice")


def test_names_and_passwords_are_checked(ws):
    for name, why in [("", "empty"), ("x" * 121, "at most"), ("a\nb", "control"),
                      ("import", "reserved"), ("consensus", "reserved")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            accounts.create_account(ws, name, "annotator", password=PASSWORD, by="alice")
    with pytest.raises(ValueError, match="at least 8"):
        accounts.create_account(ws, "dave", "annotator", password="short", by="alice")
    assert accounts.get_account(ws, "dave") is None


def test_a_reader_from_before_accounts_becomes_the_account_keeping_its_revisions(
    workspace, import_real_images
):
    import_real_images(workspace, 1, labelme=False)
    save_revision(workspace, 1, "reader", [{"label": "lung", "shape_type": "point",
                                            "points": [[3, 4]]}])  # fmt: skip
    account = accounts.create_account(workspace, "reader", "admin", password=PASSWORD)
    with workspace.sessions() as s:
        assert s.scalar(select(Reader.id).where(Reader.name == "reader")) == account.id
    assert latest_by_reader(workspace, 1)["reader"].revision == 1


# --- passwords --------------------------------------------------------------------------------


def test_the_password_is_stored_only_as_a_salted_argon2id_hash(ws):
    with ws.engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT name, password_hash FROM readers")).all())
        dump = "\n".join(conn.connection.iterdump())
    assert rows["alice"].startswith("$argon2id$")
    assert PASSWORD not in dump and "bob's password" not in dump
    accounts.create_account(ws, "twin", "annotator", password=PASSWORD, by="alice")
    with ws.sessions() as s:
        hashes = dict(s.execute(select(Reader.name, Reader.password_hash)).all())
    assert hashes["twin"] != hashes["alice"]  # the same password, another salt


def test_login_with_the_right_password_and_refusal_of_a_wrong_one(ws):
    assert accounts.authenticate(ws, "alice", PASSWORD).name == "alice"
    with pytest.raises(LoginRefused) as wrong:
        accounts.authenticate(ws, "alice", "not the password")
    with pytest.raises(LoginRefused) as unknown:
        accounts.authenticate(ws, "nobody", "not the password")
    # The same words whether the name exists or not.
    assert wrong.value.reason == unknown.value.reason == "unknown_or_wrong"
    assert str(wrong.value) == str(unknown.value) == "Wrong name or password."
    assert _actions(ws, action="login") == [("alice", "login")]
    assert _actions(ws, action="login_failed") == [("alice", "login_failed"),
                                                    ("nobody", "login_failed")]  # fmt: skip


def test_failures_are_logged_without_the_password(ws, caplog):
    with pytest.raises(LoginRefused):
        accounts.authenticate(ws, "alice", "my secret guess")
    assert "login refused" in caplog.text
    assert "my secret guess" not in caplog.text
    with ws.engine.connect() as conn:
        assert "my secret guess" not in "\n".join(conn.connection.iterdump())


def test_five_failures_lock_the_account_until_the_lock_time_has_passed(ws):
    for _ in range(4):
        with pytest.raises(LoginRefused, match="Wrong name or password"):
            accounts.authenticate(ws, "bob", "guess guess")
    assert accounts.authenticate(ws, "bob", "bob's password").name == "bob"  # 4 were allowed
    for _ in range(5):
        with pytest.raises(LoginRefused):
            accounts.authenticate(ws, "bob", "guess guess")
    with pytest.raises(LoginRefused) as locked:
        accounts.authenticate(ws, "bob", "bob's password")  # the right one, refused while locked
    assert locked.value.reason == "locked"
    until = accounts.get_account(ws, "bob").locked_until
    assert timedelta(minutes=14) < until - utcnow() <= timedelta(minutes=15)
    # The clock moves on: the lock time lies in the past.
    with ws.sessions.begin() as s:
        s.execute(
            update(Reader).where(Reader.name == "bob").values(locked_until=utcnow() - timedelta(1))
        )
    assert accounts.authenticate(ws, "bob", "bob's password").name == "bob"


def test_the_lock_follows_the_settings(ws):
    accounts.set_account_setting(ws, "max_failed_logins", 2, by="alice")
    accounts.set_account_setting(ws, "lockout_minutes", 60, by="alice")
    assert accounts.account_settings(ws).max_failed_logins == 2
    for _ in range(2):
        with pytest.raises(LoginRefused):
            accounts.authenticate(ws, "bob", "guess guess")
    with pytest.raises(LoginRefused, match="locked"):
        accounts.authenticate(ws, "bob", "bob's password")
    assert accounts.get_account(ws, "bob").locked_until - utcnow() > timedelta(minutes=59)
    with pytest.raises(ValueError, match="from 1 to 100"):
        accounts.set_account_setting(ws, "max_failed_logins", 0, by="alice")
    with pytest.raises(PermissionDenied):
        accounts.set_account_setting(ws, "lockout_minutes", 1, by="bob")
    assert accounts.account_settings(ws).lockout_minutes == 60


def test_a_password_reset_unlocks_and_the_old_password_stops_working(ws):
    for _ in range(5):
        with pytest.raises(LoginRefused):
            accounts.authenticate(ws, "bob", "guess guess")
    accounts.reset_password(ws, "bob", "a new password", by="alice")
    with pytest.raises(LoginRefused):
        accounts.authenticate(ws, "bob", "bob's password")
    assert accounts.authenticate(ws, "bob", "a new password").name == "bob"
    with pytest.raises(PermissionDenied):
        accounts.reset_password(ws, "alice", "bob takes over", by="bob")


# --- disabled accounts, roles -----------------------------------------------------------------


def test_a_disabled_account_cannot_log_in_or_act_and_keeps_its_revisions(ws):
    point = [{"label": "lung", "shape_type": "point", "points": [[3, 4]]}]
    save_revision(ws, 1, "bob", point)
    accounts.set_disabled(ws, "bob", True, by="alice")
    with pytest.raises(LoginRefused) as refused:
        accounts.authenticate(ws, "bob", "bob's password")
    assert refused.value.reason == "disabled"
    with pytest.raises(LoginRefused) as wrong:  # a wrong password says nothing more
        accounts.authenticate(ws, "bob", "guess guess")
    assert wrong.value.reason == "unknown_or_wrong"
    with pytest.raises(PermissionDenied, match="disabled"):
        save_revision(ws, 1, "bob", point)
    assert latest_by_reader(ws, 1)["bob"].revision == 1  # still bob's, nothing added
    assert [a.name for a in accounts.list_accounts(ws)] == ["alice", "bob"]  # never deleted
    accounts.set_disabled(ws, "bob", False, by="alice")
    assert accounts.authenticate(ws, "bob", "bob's password").name == "bob"


def test_a_role_change_applies_to_the_next_call(ws):
    with pytest.raises(PermissionDenied, match="reviewer or an admin"):
        accounts.require(ws, "bob", "review")
    accounts.set_role(ws, "bob", "reviewer", by="alice")
    assert accounts.require(ws, "bob", "review").role == "reviewer"
    accounts.set_role(ws, "bob", "annotator", by="alice")
    with pytest.raises(PermissionDenied):
        accounts.require(ws, "bob", "review")


def test_the_last_admin_cannot_be_disabled_or_demoted(ws):
    with pytest.raises(ValueError, match="last admin"):
        accounts.set_disabled(ws, "alice", True, by="alice")
    with pytest.raises(ValueError, match="last admin"):
        accounts.set_role(ws, "alice", "reviewer", by="alice")
    accounts.set_role(ws, "bob", "admin", by="alice")
    accounts.set_role(ws, "alice", "reviewer", by="bob")
    assert accounts.get_account(ws, "alice").role == "reviewer"


def test_account_changes_are_audit_rows(ws):
    accounts.set_role(ws, "bob", "reviewer", by="alice")
    accounts.set_disabled(ws, "bob", True, by="alice")
    accounts.reset_password(ws, "bob", "another password", by="alice")
    rows = accounts.audit_rows(ws, action="account_changed")
    assert [(r.actor, r.target) for r in rows] == [("alice", "bob")] * 3
    assert [r.detail for r in reversed(rows)] == [
        {"role": ["annotator", "reviewer"]}, {"disabled": True}, {"password": "reset"},
    ]  # fmt: skip
    created = accounts.audit_rows(ws, action="account_created")
    assert [(r.actor, r.target) for r in reversed(created)] == [("alice", "alice"),
                                                                 ("alice", "bob")]  # fmt: skip


# --- who may act ------------------------------------------------------------------------------


def test_require_reads_the_role_from_the_database_and_refuses_non_accounts(ws):
    assert accounts.require(ws, "alice", "export").name == "alice"
    assert accounts.require(ws, "bob", "label").name == "bob"
    with pytest.raises(PermissionDenied, match="sign in first"):
        accounts.require(ws, None, "label")
    with pytest.raises(PermissionDenied, match="'mallory' is not an account"):
        accounts.require(ws, "mallory", "label")
    # "reader" is a reader from before accounts (role admin, no credential): not an account.
    with pytest.raises(PermissionDenied, match="'reader' is not an account"):
        accounts.require(ws, "reader", "admin")
    with ws.sessions.begin() as s:  # a role written behind the service's back counts at once
        s.execute(update(Reader).where(Reader.name == "bob").values(role="admin"))
    assert accounts.require(ws, "bob", "admin").role == "admin"


def test_a_service_identity_acts_but_cannot_log_in(ws):
    bot = accounts.create_account(ws, "importer", "admin", service=True, by="alice")
    assert bot.service and not bot.has_password
    assert accounts.require(ws, "importer", "import").name == "importer"
    with pytest.raises(LoginRefused):
        accounts.authenticate(ws, "importer", "")
    with pytest.raises(ValueError, match="cannot have a web session"):
        accounts.start_session(ws, bot)
    with pytest.raises(ValueError, match="no password"):
        accounts.create_account(ws, "bot2", "admin", service=True, password=PASSWORD, by="alice")


# --- sessions ---------------------------------------------------------------------------------


def test_a_session_lives_across_requests_and_ends_at_logout(ws):
    alice = accounts.authenticate(ws, "alice", PASSWORD)
    token = accounts.start_session(ws, alice)
    assert accounts.session_account(ws, token).name == "alice"
    assert accounts.session_account(ws, token).name == "alice"  # a reload
    with ws.sessions() as s:
        stored = s.scalar(select(LoginSession.token_hash))
    assert token not in stored and len(stored) == 64  # only its sha256 is stored
    accounts.end_session(ws, token)
    assert accounts.session_account(ws, token) is None
    accounts.end_session(ws, token)  # twice: nothing more
    assert _actions(ws, action="logout") == [("alice", "logout")]
    assert accounts.session_account(ws, "forged-token") is None
    assert accounts.session_account(ws, None) is None


def test_an_idle_session_expires(ws):
    token = accounts.start_session(ws, accounts.get_account(ws, "alice"))
    idle = accounts.account_settings(ws).session_idle_minutes
    with ws.sessions.begin() as s:
        s.execute(update(LoginSession).values(last_seen=utcnow() - timedelta(minutes=idle - 1)))
    assert accounts.session_account(ws, token).name == "alice"  # touched: the clock restarts
    with ws.sessions.begin() as s:
        s.execute(update(LoginSession).values(last_seen=utcnow() - timedelta(minutes=idle + 1)))
    assert accounts.session_account(ws, token) is None
    with ws.sessions.begin() as s:  # expired for good, even if the clock were set back
        s.execute(update(LoginSession).values(last_seen=utcnow()))
    assert accounts.session_account(ws, token) is None


def test_disabling_or_a_password_reset_ends_the_sessions(ws):
    bob = accounts.get_account(ws, "bob")
    first, second = accounts.start_session(ws, bob), accounts.start_session(ws, bob)
    accounts.set_disabled(ws, "bob", True, by="alice")
    assert accounts.session_account(ws, first) is None
    accounts.set_disabled(ws, "bob", False, by="alice")
    assert accounts.session_account(ws, second) is None  # ended, not only hidden
    third = accounts.start_session(ws, bob)
    accounts.reset_password(ws, "bob", "another password", by="alice")
    assert accounts.session_account(ws, third) is None


# --- OpenID Connect ---------------------------------------------------------------------------


def test_oidc_logins_match_by_subject_then_by_email_and_link_the_subject(ws):
    accounts.create_account(ws, "dr who", "reviewer", email="Who@Hospital.example", by="alice")
    found = accounts.account_for_oidc(ws, subject="sub-123", email="who@hospital.example")
    assert found.name == "dr who" and found.oidc_subject == "sub-123"
    # Linked now: the subject alone finds it, whatever e-mail the provider sends.
    assert accounts.account_for_oidc(ws, subject="sub-123", email=None).name == "dr who"
    # Another subject with the same e-mail does not take the account over.
    assert accounts.account_for_oidc(ws, subject="sub-999", email="who@hospital.example") is None
    assert accounts.account_for_oidc(ws, subject="sub-x", email="stranger@else.example") is None
    accounts.set_disabled(ws, "dr who", True, by="alice")
    with pytest.raises(LoginRefused, match="disabled"):
        accounts.account_for_oidc(ws, subject="sub-123", email=None)
    assert _actions(ws, action="login") == [("dr who", "login"), ("dr who", "login")]
    refused = [r.detail["reason"] for r in reversed(accounts.audit_rows(ws, action="login_failed"))]
    assert refused == ["no_account", "no_account", "disabled"]


def test_the_audit_rows_of_logins_name_no_password(ws):
    with pytest.raises(LoginRefused):
        accounts.authenticate(ws, "alice", "wrong password here")
    with ws.sessions() as s:
        details = [str(e.detail) for e in s.scalars(select(AuditEntry))]
    assert not any("wrong password here" in d for d in details)
