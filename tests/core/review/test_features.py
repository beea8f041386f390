"""Feature-space view (core.review.features + the "embed" job) on real X-rays with a tiny
trained version and its predictions: computed by a job, cached per version, one point per
image with what the scatter colours and shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sqlalchemy import func, select

from core import jobs
from core.labels.readers import add_reader
from core.labels.revisions import set_finding
from core.review.features import (
    feature_points,
    has_embedding,
    read_embedding,
    submit_embedding,
)
from core.review.worklist import review_rows
from core.workspace import Workspace
from db.models import Image, Job

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def prepared(prepared_workspace, train_and_predict) -> Path:
    """6 real X-rays with their lungs, one tiny trained version and its predictions."""
    return prepared_workspace("features", 6, train_and_predict)


@pytest.fixture
def ws(prepared: Path, workspace_copy) -> Workspace:
    return workspace_copy(prepared)


def _embed(ws: Workspace, version: int = 1) -> jobs.JobInfo:
    job_id = submit_embedding(ws, version, "tester")
    assert job_id is not None
    done = jobs.run_job(ws, job_id)
    assert done.state == "succeeded", done.error
    return done


def _embed_jobs(ws: Workspace) -> int:
    with ws.sessions() as s:
        return s.scalar(select(func.count(Job.id)).where(Job.kind == "embed"))


def test_points_need_the_embedding_first_and_say_what_to_do(ws):
    assert not has_embedding(ws, 1)
    with pytest.raises(LookupError, match="no feature-space embedding yet: compute it"):
        feature_points(ws, 1)


def test_the_job_embeds_every_image_and_each_predicted_image_is_a_point(ws):
    set_finding(ws, 2, "import", "pneumonia")
    add_reader(ws, "dr_b")
    set_finding(ws, 3, "dr_b", "uncertain")
    done = _embed(ws)
    assert done.progress == 1.0 and done.result["embedded"] == 6
    assert done.result["features"] == 512  # resnet18's deepest channels
    rows = {r.image_id: r for r in review_rows(ws, 1)}
    points = {p.image_id: p for p in feature_points(ws, 1, "pca")}
    assert set(rows) <= set(points) and len(points) == 6
    with ws.sessions() as s:
        names = {i: n for i, n in s.execute(select(Image.id, Image.display_name))}
    for image_id, row in rows.items():
        p = points[image_id]
        assert p.display_name == names[image_id] == row.display_name
        assert p.display_name.startswith("IMG-")
        assert p.dice == pytest.approx(row.dice) and p.dice is not None
        assert p.uncertainty == pytest.approx(row.uncertainty)
        assert p.source.startswith("jpeg / ")
        assert p.thumbnail.startswith("data:image/png;base64,")
        assert np.isfinite([p.x, p.y]).all()
    assert points[2].finding == "Pneumonia" and points[2].readers == ("import",)
    assert points[3].finding == "Uncertain" and points[3].reader == "dr_b, import"
    assert points[4].finding == "no finding recorded"


def test_the_embedding_is_cached_per_version(ws):
    _embed(ws)
    before = _embed_jobs(ws)
    assert submit_embedding(ws, 1, "tester") is None  # reused: nothing queued
    assert _embed_jobs(ws) == before
    assert submit_embedding(ws, 1, "tester", force=True) is not None
    assert _embed_jobs(ws) == before + 1
    with pytest.raises(LookupError):
        submit_embedding(ws, 99, "tester")


def test_pca_coordinates_are_sklearns_pca_of_the_stored_features(ws):
    _embed(ws)
    emb = read_embedding(ws, 1)
    assert emb.features.shape == (6, 512)
    expected = PCA(n_components=2, svd_solver="full").fit_transform(emb.features)
    points = feature_points(ws, 1, "pca")
    got = np.array([[p.x, p.y] for p in points])
    assert [p.image_id for p in points] == emb.image_ids.tolist()
    assert np.allclose(got, expected, atol=1e-4)
    tsne = np.array([[p.x, p.y] for p in feature_points(ws, 1, "tsne")])
    assert tsne.shape == (6, 2) and np.isfinite(tsne).all() and not np.allclose(tsne, got)
    with pytest.raises(ValueError, match="unknown projection"):
        feature_points(ws, 1, "umap")
