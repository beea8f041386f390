"""The audit log is append-only in the database itself (SQLite triggers; PostgreSQL's are
tested in tests/db/test_accounts_postgres.py), filters by actor, action and time, and
downloads as CSV a spreadsheet shows as text."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from core import accounts
from db.models import AuditEntry, utcnow

PASSWORD = "correct horse battery staple"


@pytest.fixture
def ws(workspace):
    accounts.create_account(workspace, "alice", "admin", password=PASSWORD)
    accounts.audit(workspace, "alice", "export", "all", {"images": 3})
    accounts.audit(workspace, '=HYPERLINK("http://x")', "login_failed", "", {"reason": "x"})
    return workspace


def _refused():
    return pytest.raises((OperationalError, IntegrityError), match="append-only")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE action = 'export'",
    ],
)
def test_the_database_refuses_to_change_or_delete_audit_rows(ws, statement):
    before = accounts.audit_rows(ws)
    with _refused(), ws.engine.begin() as conn:
        conn.execute(text(statement))
    assert accounts.audit_rows(ws) == before


def test_the_orm_cannot_rewrite_history_either(ws):
    with _refused(), ws.sessions.begin() as s:
        s.execute(update(AuditEntry).values(action="login"))
    with _refused(), ws.sessions.begin() as s:
        s.execute(delete(AuditEntry))
    assert len(accounts.audit_rows(ws)) == 3


def test_rows_filter_by_actor_action_and_time(ws):
    assert [r.action for r in accounts.audit_rows(ws, actor="alice")] == [
        "export",
        "account_created",
    ]
    assert [r.actor for r in accounts.audit_rows(ws, action="export")] == ["alice"]
    now = utcnow()
    assert len(accounts.audit_rows(ws, since=now - timedelta(minutes=5))) == 3
    assert accounts.audit_rows(ws, since=now + timedelta(seconds=1)) == []
    assert accounts.audit_rows(ws, until=now - timedelta(minutes=5)) == []
    # A naive time is UTC.
    naive = (now - timedelta(minutes=5)).replace(tzinfo=None)
    assert len(accounts.audit_rows(ws, since=naive)) == 3
    assert len(accounts.audit_rows(ws, limit=1)) == 1
    with pytest.raises(ValueError, match="unknown audit action"):
        accounts.audit_rows(ws, action="bogus")
    with pytest.raises(ValueError, match="unknown audit action"):
        accounts.audit(ws, "alice", "bogus")
    assert accounts.audit_actors(ws) == ['=HYPERLINK("http://x")', "alice"]


def test_the_csv_holds_every_row_and_formulas_stay_text(ws):
    data = accounts.audit_csv(ws)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert [r["action"] for r in rows] == ["login_failed", "export", "account_created"]
    assert rows[0]["actor"] == '\'=HYPERLINK("http://x")'  # shown as text, not run
    assert json.loads(rows[1]["detail"]) == {"images": 3}
    assert datetime.fromisoformat(rows[1]["time_utc"]).tzinfo == UTC
    only = list(csv.DictReader(io.StringIO(accounts.audit_csv(ws, action="export").decode())))
    assert [r["actor"] for r in only] == ["alice"]


def test_control_characters_and_long_names_are_cleaned(ws):
    accounts.audit(ws, "x\x1b[31m" + "y" * 300, "login_failed")
    row = accounts.audit_rows(ws, limit=1)[0]
    assert "\x1b" not in row.actor and len(row.actor) == 120
