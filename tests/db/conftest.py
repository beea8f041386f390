"""A real PostgreSQL server for the database tests (initdb + pg_ctl in a temp folder), started
once per test session and shared by every test that asks for `postgres_url`. Those tests are
skipped only where the PostgreSQL server programs are not installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


PG_BIN = _pg_bin()


def _as_server_user() -> dict:
    """initdb refuses to run as root: run the server as the `postgres` (or nobody) account."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            return {"user": pwd.getpwnam(name).pw_uid, "group": pwd.getpwnam(name).pw_gid}
        except KeyError:
            continue
    pytest.fail("running as root and no unprivileged account to run PostgreSQL as")


@pytest.fixture(scope="session")
def postgres_url(free_port) -> Iterator[str]:
    """URL of database `pneumolab` on a throwaway server; a test that changes it cleans up."""
    if PG_BIN is None:
        pytest.skip(
            "PostgreSQL server programs (initdb, pg_ctl) are not installed: "
            "apt-get install postgresql to run this test"
        )
    ids = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="pneumolab-pg-"))
    if ids:
        os.chown(folder, ids["user"], ids["group"])
    data, port = folder / "data", free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120, **ids}
    subprocess.run(
        [PG_BIN / "initdb", "-D", data, "-U", "pneumolab", "--auth=trust", "-E", "UTF8"], **run
    )
    subprocess.run(
        [PG_BIN / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "start",
         "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"],
        **run,
    )  # fmt: skip
    try:
        createdb = [PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "pneumolab"]
        subprocess.run([*createdb, "pneumolab"], **run)
        yield f"postgresql+psycopg://pneumolab@127.0.0.1:{port}/pneumolab"
    finally:
        subprocess.run(
            [PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "stop"], **{**run, "check": False}
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_postgres_database(postgres_url) -> Iterator[Callable[[str], str]]:
    """fresh_postgres_database(prefix) -> the URL of a new, empty database on the shared
    server; every database made is dropped after the test."""
    server = make_url(postgres_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()
