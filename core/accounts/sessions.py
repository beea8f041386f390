"""Web login sessions, kept on the server: the browser holds a random token (in a signed
HttpOnly cookie, app side), the database only its sha256. A session ends at logout, after
settings.session_idle_minutes without a request, or when its account is disabled or its
password reset."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select

from core.accounts.audit import add_audit
from core.accounts.records import Account, account_of, aware
from core.accounts.settings import account_settings
from core.workspace import Workspace
from db.models import LoginSession, Reader, utcnow

# last_seen is written at most this often (a page rerun reads the session many times).
TOUCH_EVERY = timedelta(seconds=15)
MAX_TOKEN_CHARS = 256


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(ws: Workspace, account: Account) -> str:
    """A new session of `account` (one that just logged in); returns its token, which is
    shown to nobody but the browser. Refused (ValueError) for a disabled or service one."""
    with ws.sessions.begin() as s:
        row = s.get(Reader, account.id)
        if row is None or row.disabled or row.service:
            raise ValueError("this account cannot have a web session")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        s.add(
            LoginSession(token_hash=_digest(token), reader_id=row.id, created_at=now, last_seen=now)
        )
    return token


def session_account(ws: Workspace, token: str | None) -> Account | None:
    """The account of a live session (and the session's idle clock restarts); None when
    the token is unknown, ended, idle too long, or its account disabled."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    idle = timedelta(minutes=account_settings(ws).session_idle_minutes)
    now = utcnow()
    with ws.sessions.begin() as s:
        found = s.execute(
            select(LoginSession, Reader)
            .join(Reader, Reader.id == LoginSession.reader_id)
            .where(LoginSession.token_hash == _digest(token))
        ).first()
        if found is None:
            return None
        session, reader = found
        if session.ended_at is not None or reader.disabled or reader.service:
            return None
        if aware(session.last_seen) + idle <= now:
            session.ended_at = now  # expired: it never comes back
            return None
        if now - aware(session.last_seen) >= TOUCH_EVERY:
            session.last_seen = now
        return account_of(reader)


def end_session(ws: Workspace, token: str | None) -> None:
    """Log out: the session ends (a second call, or an unknown token, does nothing).
    Audit "logout"."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return
    with ws.sessions.begin() as s:
        session = s.scalar(select(LoginSession).where(LoginSession.token_hash == _digest(token)))
        if session is None or session.ended_at is not None:
            return
        session.ended_at = utcnow()
        reader = s.get(Reader, session.reader_id)
        add_audit(s, account_of(reader), "logout")
