"""PostgreSQL by URL alone: a real server started here (initdb + pg_ctl in a temp folder),
then the same workspace code — migrations, import, worklist — pointed at it by
PNEUMOLAB_DATABASE_URL. Skipped only where the PostgreSQL server programs are not installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


PG_BIN = _pg_bin()
pytestmark = pytest.mark.skipif(
    PG_BIN is None,
    reason="PostgreSQL server programs (initdb, pg_ctl) are not installed: "
    "apt-get install postgresql to run this test",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    ids = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="pneumolab-pg-"))
    if ids:
        os.chown(folder, ids["user"], ids["group"])
    data, port = folder / "data", _free_port()
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


def test_workspace_on_postgresql_by_url_alone(
    postgres_url, tmp_path, monkeypatch, dicom_mono1, cxr_lungs_dir
):
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from core.ingest.importer import import_paths
    from core.labels.catalog import image_info, list_images, worklist
    from core.workspace import Workspace
    from db.migrate import alembic_config
    from db.queries import WorklistFilter

    monkeypatch.setenv("PNEUMOLAB_DATABASE_URL", postgres_url)
    ws = Workspace.open(tmp_path / "ws")
    try:
        assert ws.engine.dialect.name == "postgresql"
        assert not (tmp_path / "ws" / "pneumolab.db").exists()  # nothing went to SQLite
        jpeg = sorted(cxr_lungs_dir.glob("*.jpg"))[0]
        report = import_paths(ws, [dicom_mono1, jpeg, dicom_mono1])
        assert (len(report.imported), len(report.duplicates), report.refused) == (2, 1, [])
        page = worklist(ws, WorklistFilter(modality="CR"), 0, 24)
        assert page.total == 1 and page.rows[0].width == 1841
        assert image_info(ws, page.rows[0].id).window_width == 30000
        assert [im["modality"] for im in list_images(ws)] == ["CR", "OT"]
        with ws.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == ScriptDirectory.from_config(alembic_config(ws.engine)).get_current_head()
        # A second open (another reader's app) migrates nothing and keeps the salt.
        again = Workspace.open(tmp_path / "ws2")
        assert again.salt == ws.salt
        again.dispose()
    finally:
        with ws.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        ws.dispose()
