"""Engine and session creation. SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Execution option of an engine whose transactions take the write lock when they begin.
WRITE_LOCK = "pneumolab_write_lock"
BUSY_TIMEOUT_S = 30


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the UI read while a worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite(conn) -> None:
    # Python's sqlite3 (legacy transaction control) emits a deferred BEGIN only before the
    # first INSERT/UPDATE/DELETE, so a transaction that reads a number and then inserts it
    # reads outside any lock: two processes read the same number. BEGIN IMMEDIATE takes the
    # write lock first (waiting up to the busy timeout) and the read is then the truth.
    # Reads elsewhere keep the driver's default, so WAL readers never wait for each other;
    # sqlite3 sees the open transaction and commits or rolls it back as usual.
    if conn.get_execution_options().get(WRITE_LOCK):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """Create an engine for `url` (sqlite:///... or postgresql+psycopg://...)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True)


def write_locked(engine: Engine) -> Engine:
    """The same engine (pool, events) whose transactions hold the database's write lock from
    their first statement: SQLite BEGIN IMMEDIATE. For a service that reads, then writes what
    it read (the next revision number, "is this already stored?"). PostgreSQL ignores the
    option: there the service locks the rows it depends on (SELECT ... FOR UPDATE)."""
    return engine.execution_options(**{WRITE_LOCK: True})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
