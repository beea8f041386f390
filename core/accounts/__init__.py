"""Accounts, roles and the audit log (issue 11).

Readers ARE accounts: a reader with a password, an OpenID Connect link or a service flag can
act; `require(ws, actor, permission)` is the one check every core service calls. While no
account has a credential (first start) every call goes through, as before accounts existed.
"""

from core.accounts.audit import AuditRow, audit, audit_actors, audit_csv, audit_rows
from core.accounts.manage import (
    RESERVED_NAMES,
    LoginRefused,
    account_for_oidc,
    authenticate,
    create_account,
    get_account,
    list_accounts,
    reset_password,
    set_account_setting,
    set_disabled,
    set_email,
    set_role,
)
from core.accounts.passwords import MIN_PASSWORD_CHARS
from core.accounts.permissions import has_accounts, require, roles_with
from core.accounts.records import Account
from core.accounts.sessions import end_session, session_account, start_session
from core.accounts.settings import AccountSettings, account_settings
from core.errors import PermissionDenied

__all__ = [
    "MIN_PASSWORD_CHARS",
    "RESERVED_NAMES",
    "Account",
    "AccountSettings",
    "AuditRow",
    "LoginRefused",
    "PermissionDenied",
    "account_for_oidc",
    "account_settings",
    "audit",
    "audit_actors",
    "audit_csv",
    "audit_rows",
    "authenticate",
    "create_account",
    "end_session",
    "get_account",
    "has_accounts",
    "list_accounts",
    "require",
    "reset_password",
    "roles_with",
    "session_account",
    "set_account_setting",
    "set_disabled",
    "set_email",
    "set_role",
    "start_session",
]
