"""PostgreSQL by URL alone: a real server (tests/db/conftest.py: initdb + pg_ctl in a temp
folder), then the same workspace code — migrations, import, worklist — pointed at it by
PNEUMOLAB_DATABASE_URL. Skipped only where the PostgreSQL server programs are not installed."""

from __future__ import annotations


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
    # Every app host of one database reads the one patient-key secret (kept outside it).
    monkeypatch.setenv("PNEUMOLAB_SECRET_FILE", str(tmp_path / "secret.key"))
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
