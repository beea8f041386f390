"""require(): THE permission check every core service calls before it stores anything.

While a workspace has no account with a credential (the first-start state), every call goes
through, as before accounts existed. Once one exists, the actor must be an account (a
password, an OpenID Connect link or a service identity), not disabled, whose role (read from
the database at each call, never from the caller) grants the permission.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from core.accounts.records import Account, account_of, any_credential, is_account, reader_row
from core.errors import PermissionDenied
from core.vocab import PERMISSIONS, ROLE_PERMISSIONS, ROLES
from core.workspace import Workspace

log = logging.getLogger("pneumolab.accounts")


def has_accounts(ws: Workspace) -> bool:
    """Does any account have a credential (a password or an OIDC link)? False: first start."""
    with ws.sessions() as s:
        return any_credential(s)


def roles_with(permission: str) -> list[str]:
    return [r for r in ROLES if permission in ROLE_PERMISSIONS[r]]


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def _needs(permission: str) -> str:
    """'a reviewer or an admin', 'an annotator, a reviewer or an admin'."""
    roles = [_a(r) for r in roles_with(permission)]
    return roles[0] if len(roles) == 1 else ", ".join(roles[:-1]) + " or " + roles[-1]


def check(s: Session, actor_name: str | None, permission: str) -> Account | None:
    """require() inside the caller's session (so the check and the change share one
    transaction where the caller wants that)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; one of {', '.join(PERMISSIONS)}")
    row = reader_row(s, actor_name)
    if not any_credential(s):
        return account_of(row) if row is not None else None
    what = PERMISSIONS[permission]
    if not actor_name:
        log.warning("refused %s: no account named", permission)
        raise PermissionDenied(
            f"sign in first: this workspace has accounts, and to {what} you must be "
            f"{_needs(permission)}",
            permission=permission,
        )
    if row is None or not is_account(row):
        log.warning("refused %s: %r is not an account", permission, actor_name)
        raise PermissionDenied(
            f"{actor_name!r} is not an account of this workspace; sign in as {_needs(permission)}"
            " (an admin adds accounts)",
            permission=permission,
            actor=actor_name,
        )
    if row.disabled:
        log.warning("refused %s: account %r is disabled", permission, actor_name)
        raise PermissionDenied(
            f"the account {actor_name!r} is disabled; ask an admin to enable it",
            permission=permission,
            actor=actor_name,
        )
    if permission not in ROLE_PERMISSIONS.get(row.role, frozenset()):
        log.warning("refused %s: %r has the role %s", permission, actor_name, row.role)
        raise PermissionDenied(
            f"{actor_name} is {_a(row.role)}: to {what} you must be {_needs(permission)}",
            permission=permission,
            actor=actor_name,
        )
    return account_of(row)


def require(ws: Workspace, actor_name: str | None, permission: str) -> Account | None:
    """The acting account, when it may do `permission` (a name of core.vocab.PERMISSIONS);
    raises PermissionDenied saying which role is needed. In the first-start state (no
    account has a credential) every call goes through: the reader of that name is returned,
    or None when there is none."""
    with ws.sessions() as s:
        return check(s, actor_name, permission)
