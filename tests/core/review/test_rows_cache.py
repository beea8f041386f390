"""The worklist's scores on disk: the same rows as scoring afresh, and a correction rescores
only the corrected image."""

from __future__ import annotations

import pytest

from core.labels.readers import add_reader
from core.labels.revisions import save_revision
from core.review import rows_cache
from core.review.worklist import review_rows
from core.versions import active_version


@pytest.fixture(scope="module")
def predicted(prepared_workspace, train_and_predict):
    return prepared_workspace("rows", 6, lambda ws: train_and_predict(ws, activate="always"))


def test_cached_rows_equal_fresh_rows_and_only_a_corrected_image_is_rescored(
    predicted, workspace_copy, monkeypatch
):
    ws = workspace_copy(predicted)
    version = active_version(ws).id
    assert rows_cache.cached_review_rows(ws, version) == review_rows(ws, version)

    scored: list[list[int]] = []

    def recording(*args, image_ids=None, **kw):
        scored.append(sorted(image_ids))
        return review_rows(*args, image_ids=image_ids, **kw)

    monkeypatch.setattr(rows_cache, "review_rows", recording)
    assert rows_cache.cached_review_rows(ws, version) == review_rows(ws, version)
    assert scored == []  # nothing changed: nothing rescored

    target = review_rows(ws, version)[2].image_id
    add_reader(ws, "ann")
    box = {"label": "lung", "points": [[5, 5], [40, 60]], "shape_type": "rectangle"}
    save_revision(ws, target, "ann", [box])
    after = rows_cache.cached_review_rows(ws, version)
    assert scored == [[target]]
    assert after == review_rows(ws, version)
    # Another threshold is another cache: scored in full.
    rows_cache.cached_review_rows(ws, version, threshold=0.3)
    assert len(scored[-1]) == len(after)
