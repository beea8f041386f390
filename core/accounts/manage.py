"""Accounts: add, list, disable/enable, change a role, reset a password (admin only, each an
audit row "account_created" / "account_changed"), and logging in (password or OpenID Connect
subject/e-mail) with a lock after repeated failures.

An account is never deleted: disabled, it keeps its name on every revision it made.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.accounts.audit import add_audit
from core.accounts.passwords import check_password, hash_password, needs_rehash, verify_password
from core.accounts.permissions import check
from core.accounts.records import (
    Account,
    account_of,
    any_credential,
    aware,
    is_account,
    reader_row,
)
from core.accounts.settings import account_settings, check_setting
from core.errors import PermissionDenied
from core.vocab import CONSENSUS, ROLES
from core.workspace import Workspace
from db.models import LoginSession, Reader, Setting, utcnow

log = logging.getLogger("pneumolab.accounts")

MAX_NAME_CHARS = 120
MAX_EMAIL_CHARS = 254
# Names that already mean something else: the reader of LabelMe imports made before
# accounts, and the pixel-wise majority of every reader.
RESERVED_NAMES = frozenset({"import", CONSENSUS})


class LoginRefused(Exception):  # noqa: N818 - the name the interface agreed on
    """A login that did not succeed. `reason` is "unknown_or_wrong", "locked" or
    "disabled"; the message is safe to show (it never says whether a name exists)."""

    MESSAGES = {
        "unknown_or_wrong": "Wrong name or password.",
        "locked": "Too many failed logins: this login is locked for a while. Try again later, "
        "or ask an admin to reset the password.",
        "disabled": "This account is disabled; ask an admin to enable it.",
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGES[reason])
        self.reason = reason


# --- reading ----------------------------------------------------------------------------------


def get_account(ws: Workspace, name: str) -> Account | None:
    """The account called `name` (disabled ones too); None when it is not an account."""
    with ws.sessions() as s:
        row = reader_row(s, name)
        return account_of(row) if row is not None and is_account(row) else None


def list_accounts(ws: Workspace) -> list[Account]:
    """Every account (readers with a credential or service identities), oldest first."""
    with ws.sessions() as s:
        rows = s.scalars(select(Reader).order_by(Reader.id))
        return [account_of(r) for r in rows if is_account(r)]


# --- changing ---------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError("an account name is text")
    name = name.strip()
    if not name:
        raise ValueError("the account name is empty; type a name")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"an account name has at most {MAX_NAME_CHARS} characters")
    if any(not c.isprintable() for c in name):
        raise ValueError("the account name holds a control character; type it again")
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is reserved; choose another account name")
    return name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def _clean_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if len(email) > MAX_EMAIL_CHARS or "@" not in email or any(c.isspace() for c in email):
        raise ValueError(f"{email!r} is not an e-mail address")
    return email


def _admin(s: Session, by: str | None) -> Account | None:
    return check(s, by, "admin")


def create_account(
    ws: Workspace,
    name: str,
    role: str,
    *,
    password: str | None = None,
    email: str | None = None,
    oidc_subject: str | None = None,
    service: bool = False,
    by: str | None = None,
) -> Account:
    """Add an account. `by` must be an admin, except on first start (no account has a
    credential yet): then it is the first administrator, who needs the admin role and a
    password, OIDC subject or e-mail. A reader of that name from before accounts (no credential)
    becomes the account, keeping its revisions. A service identity has no password and no
    web login: it acts only through the CLI's --as (scripted imports). Raises ValueError
    saying what to change, PermissionDenied when `by` may not."""
    name = _check_name(name)
    _check_role(role)
    email = _clean_email(email)
    oidc_subject = (oidc_subject or "").strip() or None
    if service and (password is not None or oidc_subject or email):
        raise ValueError("a service identity has no password, e-mail or OIDC link")
    if not service and password is None and oidc_subject is None and email is None:
        raise ValueError(
            "give the new account a password, or the e-mail / OIDC subject of its single "
            "sign-on login"
        )
    password_hash = hash_password(password) if password is not None else None
    try:
        with ws.write_sessions.begin() as s:
            first = not any_credential(s)
            if first:  # whoever asks: the first account must be able to administer
                if service:
                    raise ValueError(
                        "the first account is a person's administrator account with a "
                        "password; add service identities after it"
                    )
                if role != "admin":
                    raise ValueError(
                        "the first account administers the workspace: give it the role admin"
                    )
                actor = None
            else:
                if by is None:
                    raise PermissionDenied(
                        "this workspace has accounts: only an admin adds accounts (sign in as "
                        "an admin, or run pneumolab --as ADMIN users add ...)",
                        permission="admin",
                    )
                actor = _admin(s, by)
            row = reader_row(s, name)
            if row is not None and is_account(row):
                raise ValueError(f"an account named {name!r} already exists")
            if row is None:
                row = Reader(name=name, role=role)
                s.add(row)
            row.role = role
            row.password_hash = password_hash
            row.oidc_subject = oidc_subject
            row.email = email
            row.service = service
            row.disabled = False
            row.failed_logins = 0
            row.locked_until = None
            s.flush()
            detail = {"role": role, "service": service, "first_admin": first}
            add_audit(s, actor or name, "account_created", name, detail)
            return account_of(row)
    except IntegrityError as e:
        raise ValueError(
            f"an account named {name!r}, or one with that e-mail or OIDC subject, already exists"
        ) from e


def _target(s: Session, name: str) -> Reader:
    row = reader_row(s, name)
    if row is None or not is_account(row):
        raise ValueError(f"{name!r} is not an account of this workspace")
    return row


def _keeps_an_admin(s: Session, row: Reader, *, role: str | None, disabled: bool | None) -> None:
    """Refuse the change that would leave no enabled admin who can sign in."""
    new_role = row.role if role is None else role
    new_disabled = row.disabled if disabled is None else disabled
    if row.role != "admin" or row.disabled or (new_role == "admin" and not new_disabled):
        return
    others = s.scalars(
        select(Reader).where(
            Reader.role == "admin", Reader.id != row.id, Reader.disabled.is_(False)
        )
    )
    if not any(r.password_hash or r.oidc_subject or r.email for r in others):
        raise ValueError(
            f"{row.name} is the last admin who can sign in; make another account admin first"
        )


def set_role(ws: Workspace, name: str, role: str, *, by: str | None) -> Account:
    """Change an account's role (admin only); it applies from the account's next call."""
    _check_role(role)
    with ws.write_sessions.begin() as s:
        actor = _admin(s, by)
        row = _target(s, name)
        before = row.role
        _keeps_an_admin(s, row, role=role, disabled=None)
        row.role = role
        add_audit(s, actor or by, "account_changed", row.name, {"role": [before, role]})
        return account_of(row)


def set_disabled(ws: Workspace, name: str, disabled: bool, *, by: str | None) -> Account:
    """Disable (or enable again) an account (admin only). A disabled account cannot sign in
    or act, its sessions end, and its revisions keep it as their author."""
    with ws.write_sessions.begin() as s:
        actor = _admin(s, by)
        row = _target(s, name)
        _keeps_an_admin(s, row, role=None, disabled=disabled)
        row.disabled = bool(disabled)
        if disabled:
            _end_sessions(s, row.id)
        else:
            row.failed_logins, row.locked_until = 0, None
        add_audit(s, actor or by, "account_changed", row.name, {"disabled": bool(disabled)})
        return account_of(row)


def reset_password(ws: Workspace, name: str, new_password: str, *, by: str | None) -> Account:
    """Give an account a new password (admin only): its lock and its sessions end."""
    check_password(new_password)
    password_hash = hash_password(new_password)
    with ws.write_sessions.begin() as s:
        actor = _admin(s, by)
        row = _target(s, name)
        if row.service:
            raise ValueError(f"{row.name} is a service identity: it has no password")
        row.password_hash = password_hash
        row.failed_logins, row.locked_until = 0, None
        _end_sessions(s, row.id)
        add_audit(s, actor or by, "account_changed", row.name, {"password": "reset"})
        return account_of(row)


def set_email(ws: Workspace, name: str, email: str | None, *, by: str | None) -> Account:
    """Set the e-mail an OpenID Connect login is matched by (admin only)."""
    email = _clean_email(email)
    try:
        with ws.write_sessions.begin() as s:
            actor = _admin(s, by)
            row = _target(s, name)
            row.email = email
            add_audit(s, actor or by, "account_changed", row.name, {"email": "changed"})
            return account_of(row)
    except IntegrityError as e:
        raise ValueError(f"another account has the e-mail {email!r}") from e


def set_account_setting(ws: Workspace, key: str, value, *, by: str | None) -> None:
    """Change one account setting (core.accounts.settings; admin only)."""
    text = check_setting(key, value)
    with ws.write_sessions.begin() as s:
        actor = _admin(s, by)
        s.merge(Setting(key=key, value=text))
        add_audit(s, actor or by, "settings_changed", key, {"value": text})


def _end_sessions(s: Session, reader_id: int) -> None:
    s.execute(
        update(LoginSession)
        .where(LoginSession.reader_id == reader_id, LoginSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


# --- logging in -------------------------------------------------------------------------------


def _failed(ws: Workspace, name: str, reason: str, via: str) -> LoginRefused:
    log.warning("login refused (%s) for a name of %d characters via %s", reason, len(name), via)
    with ws.sessions.begin() as s:
        add_audit(s, name[:MAX_NAME_CHARS], "login_failed", "", {"reason": reason, "via": via})
    return LoginRefused(reason)


def authenticate(ws: Workspace, name: str, password: str, *, via: str = "web") -> Account:
    """The account when `password` is its password; raises LoginRefused otherwise. After
    settings.max_failed_logins failures in a row the account is locked for
    settings.lockout_minutes (even the right password is refused until then). Audit rows
    "login" / "login_failed"; failures are logged, without the password."""
    name = (name or "").strip()
    limits = account_settings(ws)
    now = utcnow()
    with ws.write_sessions.begin() as s:
        row = reader_row(s, name, lock=True)  # failures counted one after the other
        if row is None or row.password_hash is None or row.service:
            verify_password(None, password or "")  # the same work as for a real account
            reason = "unknown_or_wrong"
        elif (aware(row.locked_until) or now) > now:
            reason = "locked"
        elif not verify_password(row.password_hash, password or ""):
            row.failed_logins = (row.failed_logins or 0) + 1
            if row.failed_logins >= limits.max_failed_logins:
                row.locked_until = now + timedelta(minutes=limits.lockout_minutes)
                row.failed_logins = 0
                log.warning("account locked for %d minutes", limits.lockout_minutes)
            reason = "unknown_or_wrong"
        elif row.disabled:
            reason = "disabled"
        else:
            row.failed_logins, row.locked_until, row.last_login_at = 0, None, now
            if needs_rehash(row.password_hash):
                row.password_hash = hash_password(password)
            add_audit(s, account_of(row), "login", "", {"via": via})
            return account_of(row)
    raise _failed(ws, name, reason, via)


def account_for_oidc(
    ws: Workspace, *, subject: str, email: str | None, via: str = "oidc"
) -> Account | None:
    """The account an OpenID Connect login belongs to: the one linked to `subject`, else the
    one with that e-mail (which is then linked to the subject). None when no account matches
    (an admin adds it first); LoginRefused("disabled") for a disabled one. Audit "login"."""
    subject = (subject or "").strip()
    if not subject:
        raise ValueError("the identity provider gave no subject")
    email = _clean_email(email) if email else None
    with ws.write_sessions.begin() as s:
        row = s.scalar(select(Reader).where(Reader.oidc_subject == subject))
        if row is None and email:
            row = s.scalar(select(Reader).where(Reader.email == email))
            if row is not None and (row.service or row.oidc_subject not in (None, subject)):
                row = None  # linked to another subject: the e-mail does not move it
        if row is None:
            add_audit(s, email or "-", "login_failed", "", {"reason": "no_account", "via": via})
            log.warning("OIDC login without a matching account")
            return None
        if row.disabled:
            add_audit(s, row.name, "login_failed", "", {"reason": "disabled", "via": via})
            refused = True
        else:
            refused = False
            row.oidc_subject = subject
            row.last_login_at = utcnow()
            add_audit(s, account_of(row), "login", "", {"via": via})
            account = account_of(row)
    if refused:
        log.warning("OIDC login of a disabled account")
        raise LoginRefused("disabled")
    return account
