"""Migration 0005 (accounts, sessions, the audit log) on SQLite and on a real PostgreSQL
server: the audit log refuses UPDATE, DELETE (and TRUNCATE on PostgreSQL) whoever connects;
a workspace at 0004 with readers and revisions upgrades keeping them, gets the default account
settings, and downgrades again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from db.engine import make_engine, sqlite_url
from db.migrate import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "pneumolab.db")
    else:
        url = request.getfixturevalue("fresh_postgres_database")("acc")
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _fill_at_0004(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO readers (id, name, role, created_at) VALUES "
                "(1, 'reader', 'admin', '2026-01-01'), (2, 'bob', 'annotator', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO images (id, content_hash, storage_path, width, height, modality, "
                "source_format, bits_stored, photometric, pixel_offset, pixel_scale, value_min, "
                "value_max, display_name, status, imported_at) VALUES (1, 'h', 'p', 8, 8, 'CR', "
                "'png', 8, 'MONOCHROME2', 0, 1, 0, 255, 'IMG-000001', 'labelled', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO annotation_revisions (image_id, reader_id, revision, created_at, "
                "tool, source, origin, image_width, image_height, shapes) "
                "VALUES (1, 2, 1, '2026-01-01', 'manual', 'manual', 'drawn', 8, 8, '[]')"
            )
        )


def test_upgrade_keeps_readers_and_revisions_and_adds_the_account_columns(engine):
    upgrade(engine, "0004")
    _fill_at_0004(engine)
    upgrade(engine, "0005")
    with engine.connect() as conn:
        readers = conn.execute(
            text("SELECT name, role, disabled, failed_logins, service FROM readers ORDER BY id")
        ).all()
        revisions = conn.execute(text("SELECT reader_id FROM annotation_revisions")).all()
        settings = dict(conn.execute(text("SELECT key, value FROM settings")).all())
    assert [tuple(r) for r in readers] == [
        ("reader", "admin", False, 0, False),
        ("bob", "annotator", False, 0, False),
    ]
    assert [r[0] for r in revisions] == [2]
    assert settings == {
        "max_failed_logins": "5",
        "lockout_minutes": "15",
        "session_idle_minutes": "60",
    }
    assert {"audit_log", "sessions"} <= set(inspect(engine).get_table_names())


def test_the_audit_log_refuses_update_delete_and_truncate(engine):
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (at, actor, action, target) "
                "VALUES ('2026-01-01', 'alice', 'export', 'all')"
            )
        )
    statements = ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT actor, action FROM audit_log")).all() == [
            ("alice", "export")
        ]


def test_downgrade_and_upgrade_again(engine):
    upgrade(engine, "0004")
    _fill_at_0004(engine)
    upgrade(engine, "0005")
    command.downgrade(alembic_config(engine), "0004")
    names = set(inspect(engine).get_table_names())
    assert "audit_log" not in names and "sessions" not in names
    assert "disabled" not in {c["name"] for c in inspect(engine).get_columns("readers")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM annotation_revisions")).scalar() == 1
    upgrade(engine, "0005")
    assert "audit_log" in set(inspect(engine).get_table_names())
