"""What an account is: a row of the readers table with a credential (a password hash, an
OpenID Connect subject, or the e-mail an OpenID Connect login is matched by) or marked as a
service identity. Readers without either are the
labels' authors from before accounts existed; they keep their revisions but cannot act."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.vocab import ROLE_PERMISSIONS
from db.models import Reader


@dataclass(frozen=True)
class Account:
    """A reader that is an account (readers ARE accounts; role in core.vocab.ROLES)."""

    id: int
    name: str
    role: str
    disabled: bool
    email: str | None
    oidc_subject: str | None
    service: bool = False  # acts only through the CLI's --as; no web login
    has_password: bool = False
    locked_until: datetime | None = None
    last_login_at: datetime | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return ROLE_PERMISSIONS.get(self.role, frozenset())

    def may(self, permission: str) -> bool:
        return permission in self.permissions


def aware(dt: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands them back naive, in UTC)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def account_of(r: Reader) -> Account:
    return Account(
        id=r.id,
        name=r.name,
        role=r.role,
        disabled=bool(r.disabled),
        email=r.email,
        oidc_subject=r.oidc_subject,
        service=bool(r.service),
        has_password=r.password_hash is not None,
        locked_until=aware(r.locked_until),
        last_login_at=aware(r.last_login_at),
    )


def is_account(r: Reader) -> bool:
    """A reader that can act: it has a credential or is a service identity."""
    return (
        r.password_hash is not None
        or r.oidc_subject is not None
        or r.email is not None
        or bool(r.service)
    )


HAS_CREDENTIAL = or_(
    Reader.password_hash.is_not(None), Reader.oidc_subject.is_not(None), Reader.email.is_not(None)
)


def any_credential(s: Session) -> bool:
    """Is there an account with a credential (a password, an OIDC subject or the e-mail an
    OIDC login is matched by)? Disabled ones count: disabling every account must not reopen
    the workspace to everyone."""
    return s.scalar(select(Reader.id).where(HAS_CREDENTIAL).limit(1)) is not None


def reader_row(s: Session, name: str | None, *, lock: bool = False) -> Reader | None:
    """The reader called `name`; lock=True locks its row until the transaction ends
    (PostgreSQL SELECT ... FOR UPDATE; SQLite's write transactions hold the database)."""
    if not name:
        return None
    stmt = select(Reader).where(Reader.name == name)
    return s.scalar(stmt.with_for_update() if lock else stmt)
