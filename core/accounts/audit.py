"""The audit log: an append-only table of who did what and when (login, failed login, logout,
import, save, accept, reject, sign-off, train, cancel, activate, export, account changes).

Rows name accounts and workspace ids (image 42, job 7, model version 3) and counts; never a
patient, a file name or a path (those can identify someone). The database refuses UPDATE and
DELETE of its rows (triggers of migration 0005).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.records import Account, aware, reader_row
from core.vocab import AUDIT_ACTIONS
from core.workspace import Workspace
from db.models import AuditEntry, utcnow

DEFAULT_LIMIT = 1000
ACTOR_CHARS, TARGET_CHARS = 120, 255
NO_ACTOR = "-"  # a call made without naming anyone (a workspace without accounts)


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None
    actor_id: int | None = None  # the account's id; None for a name that was no account


def _clean(text: str, limit: int) -> str:
    text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def add_audit(
    s: Session, actor: str | Account | None, action: str, target: str = "", detail=None
) -> None:
    """Add an audit row inside the caller's transaction (so the row and the change it records
    are stored together)."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {', '.join(AUDIT_ACTIONS)}")
    if isinstance(actor, Account):
        name, actor_id = actor.name, actor.id
    else:
        name = actor or NO_ACTOR
        row = reader_row(s, actor) if actor else None
        actor_id = row.id if row is not None else None
    if detail is not None:
        detail = json.loads(json.dumps(detail, default=str))  # plain JSON, fixed now
    s.add(
        AuditEntry(
            at=utcnow(),
            actor=_clean(name, ACTOR_CHARS),
            actor_id=actor_id,
            action=action,
            target=_clean(str(target), TARGET_CHARS),
            detail=detail,
        )
    )


def audit(
    ws: Workspace,
    actor: str | Account | None,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row: `actor` (an account, or the name given), `action` (one of
    core.vocab.AUDIT_ACTIONS), `target` ("image 42", "job 7", an account name) and `detail`
    (JSON: ids and counts, never patient data)."""
    with ws.sessions.begin() as s:
        add_audit(s, actor, action, target, detail)


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def audit_rows(
    ws: Workspace,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> list[AuditRow]:
    """Audit rows, newest first, filtered by actor, action and time (since <= at < until;
    naive times are UTC)."""
    if action is not None and action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {', '.join(AUDIT_ACTIONS)}")
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= _utc(since))
    if until is not None:
        stmt = stmt.where(AuditEntry.at < _utc(until))
    if limit is not None:
        stmt = stmt.limit(limit)
    with ws.sessions() as s:
        return [
            AuditRow(e.id, aware(e.at), e.actor, e.action, e.target, e.detail, e.actor_id)
            for e in s.scalars(stmt)
        ]


def audit_actors(ws: Workspace) -> list[str]:
    """Every actor name in the log (the admin page's filter)."""
    with ws.sessions() as s:
        return sorted(s.scalars(select(AuditEntry.actor).distinct()))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a leading
    apostrophe (an account named '=HYPERLINK(...)' stays a name)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def audit_csv(ws: Workspace, **filters) -> bytes:
    """The filtered audit rows (audit_rows' filters; every row unless `limit` is given) as
    UTF-8 CSV: time (UTC, ISO 8601), actor, action, target, detail (JSON)."""
    filters.setdefault("limit", None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "actor", "action", "target", "detail"])
    for r in audit_rows(ws, **filters):
        detail = json.dumps(r.detail, sort_keys=True, ensure_ascii=False) if r.detail else ""
        writer.writerow(
            [r.at.isoformat(), _cell(r.actor), r.action, _cell(r.target), _cell(detail)]
        )
    return out.getvalue().encode("utf-8")
