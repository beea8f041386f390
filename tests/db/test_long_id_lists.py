"""Queries over more image ids than a statement may carry parameters (PostgreSQL: 65,535;
SQLite as Debian builds it: 250,000) still answer: db.queries.among sends a long list as one
parameter. Exercised through the services that take image ids, on a real SQLite file and a
real PostgreSQL server."""

from __future__ import annotations

import pytest

# More ids than the dialect's parameter limit, most of them of images that do not exist.
TOO_MANY = {"sqlite": 260_000, "postgresql": 70_000}


@pytest.fixture(params=["sqlite", "postgresql"])
def ws(request, tmp_path, monkeypatch):
    from core.workspace import Workspace

    if request.param == "postgresql":
        url = request.getfixturevalue("fresh_postgres_database")("ids")
        monkeypatch.setenv("PNEUMOLAB_DATABASE_URL", url)
        monkeypatch.setenv("PNEUMOLAB_SECRET_FILE", str(tmp_path / "secret.key"))
    workspace = Workspace.open(tmp_path / "ws")
    assert workspace.engine.dialect.name == request.param
    yield workspace
    workspace.dispose()


def test_reference_standard_and_export_of_a_huge_id_list(ws, cxr_lungs_dir, tmp_path):
    from core.ingest.importer import import_paths
    from core.interchange.export import export_items
    from core.labels.reference import labelled_images

    # Two real X-rays, each with its LabelMe lungs beside it.
    report = import_paths(ws, sorted(cxr_lungs_dir.glob("*.jpg"))[:2])
    assert len(report.imported) == 2 and report.annotations == 4  # two lungs each
    first, _second = report.imported
    n = TOO_MANY[ws.engine.dialect.name]
    ids = [first, *range(10_000_000, 10_000_000 + n)]

    refs = labelled_images(ws, "lung", image_ids=ids)
    assert [r.image_id for r in refs] == [first]
    items = export_items(ws, image_ids=ids)
    assert sorted({item.image_id for item in items}) == [first]
