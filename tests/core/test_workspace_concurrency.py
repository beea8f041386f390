"""Many processes on one workspace at once (several app servers, workers, CLI runs): the
first open of a fresh workspace, and overlapping imports of the same real X-rays with their
LabelMe sidecars. Real processes, a real SQLite file, started together.
The worker processes are tests/workers.py (tests/db/test_concurrency_postgres.py runs the
same against PostgreSQL).
"""

from __future__ import annotations

import pytest


@pytest.mark.timeout(300)
def test_eight_processes_open_a_fresh_workspace_at_once(tmp_path, workers):
    from core.workspace import Workspace

    root = tmp_path / "ws"
    outputs = workers.run_workers(
        workers.open_specs(root, tmp_path / "gate"), workers.clean_env(), timeout=240
    )
    errors = [o["error"] for o in outputs if "error" in o]
    assert not errors, f"{len(errors)} of {workers.WORKERS} opens raised; the first:\n{errors[0]}"
    ws = Workspace.open(root)
    try:
        workers.check_one_seeding(ws)
        assert len({ws.salt}) == 1 and (root / "secret.key").exists()
    finally:
        ws.dispose()


@pytest.mark.timeout(400)
def test_overlapping_imports_store_each_image_and_its_labels_once(tmp_path, cxr_lungs_dir, workers):
    from sqlalchemy import func, select

    from core.labels.revisions import revision_history
    from core.workspace import Workspace
    from db.models import AnnotationRevision, Image

    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[: workers.IMAGES]
    assert all(p.with_suffix(".json").exists() for p in jpegs)
    root = tmp_path / "ws"
    Workspace.open(root).dispose()  # the first open is the other test's business
    specs = workers.open_specs(root, tmp_path / "gate", [str(p) for p in jpegs])
    outputs = workers.run_workers(specs, workers.clean_env(), timeout=330)
    errors = [o["error"] for o in outputs if "error" in o]
    assert not errors, f"{len(errors)} of {workers.WORKERS} imports raised; the first:\n{errors[0]}"
    assert all(o["refused"] == [] for o in outputs), outputs
    assert sum(o["imported"] for o in outputs) == workers.IMAGES  # each image stored by one process
    assert all(o["imported"] + o["duplicates"] == workers.IMAGES for o in outputs), outputs
    assert (
        sum(o["annotations"] for o in outputs) == 2 * workers.IMAGES
    )  # both lungs, once per image
    ws = Workspace.open(root)
    try:
        with ws.sessions() as s:
            image_ids = list(s.scalars(select(Image.id)))
            assert s.scalar(select(func.count()).select_from(AnnotationRevision)) == workers.IMAGES
        assert len(image_ids) == workers.IMAGES
        for image_id in image_ids:
            (rev,) = revision_history(ws, image_id, "import")
            assert rev.revision == 1 and len(rev.shapes) == 2
        assert len(list((ws.store_dir / "images").rglob("*.png"))) == workers.IMAGES
    finally:
        ws.dispose()
