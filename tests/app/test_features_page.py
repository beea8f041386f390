"""Feature space page (AppTest) on real X-rays with a tiny trained version: compute the
embedding as a job, then the scatter of every image, coloured by the chosen field, with the
thumbnail in its tooltip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.review.features import embedding_job, has_embedding
from core.workspace import Workspace

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def prepared(prepared_workspace, train_and_predict) -> Path:
    """6 real X-rays with their lungs, one tiny trained version and its predictions."""
    return prepared_workspace("features_page", 6, train_and_predict)


@pytest.fixture
def ws(prepared: Path, workspace_copy, point_app) -> Workspace:
    ws = workspace_copy(prepared)
    point_app(ws.root)
    return ws


def _texts(at: AppTest) -> str:
    parts = [m.value for m in (*at.markdown, *at.caption, *at.info, *at.error, *at.title)]
    return "\n".join(str(p) for p in parts)


def _spec(at: AppTest) -> dict:
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def test_the_page_says_to_train_first_without_versions(app_env, open_app):
    at = open_app("features")
    assert not at.exception
    assert "No model versions yet" in _texts(at)


def test_compute_queues_the_job_and_the_scatter_shows_every_image(ws, open_app):
    at = open_app("features")
    assert not at.exception
    assert "no feature-space embedding yet" in _texts(at)
    assert not at.get("vega_lite_chart")
    at.button(key="features_compute").click()
    at = at.run()
    job = embedding_job(ws, 1)
    assert job is not None and job.state == "queued" and job.created_by == "reader"
    assert at.button(key="features_compute").disabled  # one job at a time
    assert jobs.run_job(ws, job.id).state == "succeeded"
    assert has_embedding(ws, 1)

    at = open_app("features")
    assert not at.exception
    spec = _spec(at)
    assert spec["encoding"]["color"]["field"] == "finding"
    tooltip = [t["field"] for t in spec["encoding"]["tooltip"]]
    assert tooltip == ["name", "finding", "image"]
    assert spec["params"][0]["name"] == "picked"
    assert "6 images of version 1" in _texts(at)
    assert at.button(key="features_compute").label == "Recompute the embedding"


def test_colour_by_dice_and_t_sne(ws, open_app):
    jobs.run_job(ws, _submit(ws))
    at = open_app("features", features_colour="dice", features_projection="tsne")
    assert not at.exception
    spec = _spec(at)
    assert spec["encoding"]["color"]["condition"]["field"] == "dice"
    assert spec["encoding"]["x"]["title"] == "t-SNE 1"


def _submit(ws: Workspace) -> int:
    from core.review.features import submit_embedding

    return submit_embedding(ws, 1, "tester")
