"""Simultaneous saves by one reader on one image (two tabs, a double click, many processes):
real processes on a real SQLite file, started together round after round. Every save must
land as its own revision, numbered 1..N without gap or duplicate, with the conflict ("both
kept") reported exactly when another save came in between, and no exception.
The worker processes are tests/workers.py (tests/db/test_concurrency_postgres.py runs the
same against PostgreSQL).
"""

from __future__ import annotations

import pytest


@pytest.mark.timeout(400)
def test_simultaneous_saves_by_one_reader_all_land_in_order(imported_workspace, tmp_path, workers):
    ws = imported_workspace(1, labelme=False)
    (image_id,) = workers.image_ids(ws)
    specs = workers.save_specs(ws.root, tmp_path / "gate", image_id)
    outputs = workers.run_workers(specs, workers.clean_env(), timeout=300)
    workers.check_saves(ws, image_id, outputs)
