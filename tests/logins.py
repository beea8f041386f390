"""Accounts and logins for app and browser tests: a password account in a workspace and a
server-side session for it (the same core.accounts calls the login form makes)."""

from __future__ import annotations

import sys
from pathlib import Path

from core.workspace import Workspace

APP_DIR = Path(__file__).resolve().parents[1] / "app"
PASSWORD = "correct horse battery staple"
ADMIN = "reader"  # a fresh workspace's reader (role admin) becomes the tests' admin account


def ensure_account(ws: Workspace, name: str = ADMIN, role: str = "admin", password=PASSWORD):
    """The account `name` with `role` and `password`, made if missing (by the first admin)."""
    from core import accounts

    account = accounts.get_account(ws, name)
    if account is not None and account.has_password and account.role == role:
        return account
    admins = [a for a in accounts.list_accounts(ws) if a.role == "admin" and a.has_password]
    if not admins and (name != ADMIN or role != "admin"):
        admins = [ensure_account(ws)]  # the first account is the admin who adds the others
    by = admins[0].name if admins else None
    if account is None or not account.has_password:
        return accounts.create_account(ws, name, role, password=password, by=by)
    accounts.set_role(ws, name, role, by=by)
    return accounts.get_account(ws, name)


def login_token(ws: Workspace, name: str = ADMIN, role: str = "admin") -> str:
    """A live session token for `name` (made an account with `role` if needed)."""
    from core.accounts import start_session

    return start_session(ws, ensure_account(ws, name, role))


def session_cookie(ws: Workspace, name: str = ADMIN, role: str = "admin") -> str:
    """The signed value of the app's login cookie for a new session of `name`."""
    if str(APP_DIR) not in sys.path:
        sys.path.insert(0, str(APP_DIR))
    from auth import cookie_value

    return cookie_value(ws, login_token(ws, name, role))
