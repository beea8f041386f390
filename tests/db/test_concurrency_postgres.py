"""The concurrency proofs of tests/core (simultaneous saves, first open, overlapping imports)
against a real PostgreSQL server (tests/db/conftest.py), each on a database of its own: real
processes, started together, several app hosts sharing one database and one secret file.
Skipped only where the PostgreSQL server programs are not installed."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url(fresh_postgres_database) -> str:
    return fresh_postgres_database("cc")


@pytest.fixture
def on_postgres(database_url, tmp_path, monkeypatch) -> dict:
    """This process and the workers' environment: the database and one shared secret file."""
    env = {"PNEUMOLAB_DATABASE_URL": database_url, "PNEUMOLAB_SECRET_FILE": str(tmp_path / "k")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.mark.timeout(300)
def test_eight_hosts_open_a_fresh_database_at_once(on_postgres, tmp_path, workers):
    from core.workspace import Workspace

    specs = workers.open_specs(tmp_path / "host", tmp_path / "gate")
    for spec in specs:  # every process its own workspace folder: eight app hosts
        spec["root"] = f"{spec['root']}-{spec['worker']}"
    outputs = workers.run_workers(specs, workers.clean_env(**on_postgres), 240)
    errors = [o["error"] for o in outputs if "error" in o]
    assert not errors, f"{len(errors)} of {len(specs)} opens raised; the first:\n{errors[0]}"
    ws = Workspace.open(tmp_path / "host-0")
    try:
        assert ws.engine.dialect.name == "postgresql"
        workers.check_one_seeding(ws)
    finally:
        ws.dispose()


@pytest.mark.timeout(400)
def test_simultaneous_saves_by_one_reader_all_land_in_order(
    on_postgres, imported_workspace, tmp_path, workers
):
    ws = imported_workspace(1, labelme=False)
    assert ws.engine.dialect.name == "postgresql"
    (image_id,) = workers.image_ids(ws)
    specs = workers.save_specs(ws.root, tmp_path / "gate", image_id)
    outputs = workers.run_workers(specs, workers.clean_env(**on_postgres), 300)
    workers.check_saves(ws, image_id, outputs)


@pytest.mark.timeout(400)
def test_overlapping_imports_store_each_image_and_its_labels_once(
    on_postgres, tmp_path, cxr_lungs_dir, workers
):
    from sqlalchemy import func, select

    from core.workspace import Workspace
    from db.models import AnnotationRevision, Image

    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[: workers.IMAGES]
    root = tmp_path / "ws"
    Workspace.open(root).dispose()
    specs = workers.open_specs(root, tmp_path / "gate", [str(p) for p in jpegs])
    outputs = workers.run_workers(specs, workers.clean_env(**on_postgres), 330)
    errors = [o["error"] for o in outputs if "error" in o]
    assert not errors, f"{len(errors)} of {len(specs)} imports raised; the first:\n{errors[0]}"
    assert sum(o["imported"] for o in outputs) == len(jpegs), outputs
    assert sum(o["annotations"] for o in outputs) == 2 * len(jpegs), outputs
    ws = Workspace.open(root)
    try:
        with ws.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Image)) == len(jpegs)
            per_image = s.execute(
                select(AnnotationRevision.image_id, func.count()).group_by(
                    AnnotationRevision.image_id
                )
            ).all()
        assert sorted(n for _, n in per_image) == [1] * len(jpegs)
    finally:
        ws.dispose()


def test_a_second_host_without_the_shared_secret_is_refused(
    database_url, tmp_path, monkeypatch, dicom_mono1
):
    """Several hosts of one database must share its secret file: a host that has none is
    refused, instead of keying new patients with a secret of its own."""
    from core.ingest.importer import import_paths
    from core.workspace import Workspace

    monkeypatch.setenv("PNEUMOLAB_DATABASE_URL", database_url)
    monkeypatch.delenv("PNEUMOLAB_SECRET_FILE", raising=False)
    first = Workspace.open(tmp_path / "host-a")
    try:
        assert len(import_paths(first, [dicom_mono1]).imported) == 1
        with pytest.raises(OSError, match="PNEUMOLAB_SECRET_FILE"):
            Workspace.open(tmp_path / "host-b")
        monkeypatch.setenv("PNEUMOLAB_SECRET_FILE", str(tmp_path / "host-a" / "secret.key"))
        second = Workspace.open(tmp_path / "host-b")
        assert second.salt == first.salt
        second.dispose()
    finally:
        first.dispose()
