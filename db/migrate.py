"""Alembic migrations run programmatically, so a workspace upgrades itself on open."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock key of "migrating or seeding this database"; any fixed 64-bit number that
# nothing else on the server uses (the first 8 bytes of sha256(b"pneumolab schema"), signed).
PG_SCHEMA_LOCK = -0x430C_41A3_E0F0_B4A8


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema of `engine`'s database to `revision`. Where several processes may
    open one database at once, call it inside `schema_lock(engine)`."""
    command.upgrade(alembic_config(engine), revision)


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Hold the one lock of `engine`'s database under which a process migrates and seeds it,
    so that processes opening a fresh database at once take turns instead of all creating
    the same tables.

    SQLite: an exclusive flock on `<database file>.lock` beside the database (SQLite's own
    locks cannot do it: Alembic's DDL runs in the driver's autocommit mode). PostgreSQL: a
    session-level advisory lock held on a connection of its own; the server releases it when
    that connection ends, also when the process dies. Not reentrant: do not nest it.
    """
    url = engine.url
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_SCHEMA_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_SCHEMA_LOCK})
        return
    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    if engine.dialect.name != "sqlite" or in_memory:
        yield  # one process only (an in-memory database) or a server database we do not know
        return
    with open(f"{url.database}.lock", "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
