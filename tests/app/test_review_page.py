"""Review and Models pages (AppTest) on real X-rays with two tiny trained versions and their
stored predictions: worklist order, overlay + Grad-CAM, accept / reject / sign-off, version
details, activate / roll back, comparison."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.labels.revisions import latest_revision
from core.review.worklist import order_rows, review_rows
from core.versions import active_version
from core.workspace import Workspace
from db.models import Image, Review


@pytest.fixture(scope="module")
def prepared(prepared_workspace, train_and_predict) -> Path:
    """6 real X-rays with their lungs, two trained versions and their predictions (built once)."""

    def two_versions(ws: Workspace) -> None:
        train_and_predict(ws)
        train_and_predict(ws, activate="never", seed=1)

    return prepared_workspace("review", 6, two_versions)


@pytest.fixture
def ws(prepared: Path, workspace_copy, point_app) -> Workspace:
    ws = workspace_copy(prepared)
    point_app(ws.root)
    return ws


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label.startswith(label)).click()
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in (*at.markdown, *at.caption, *at.subheader)]
    parts += [e.value for e in (*at.info, *at.error, *at.success, *at.warning)]
    return "\n".join(str(p) for p in parts)


# --- review ------------------------------------------------------------------------------------


def test_review_opens_on_the_active_version_lowest_dice_first(ws, open_app):
    at = open_app("review", review_order="lowest_dice")
    assert not at.exception
    active = active_version(ws)
    assert at.selectbox(key="review_version").value == active.id
    rows = order_rows(review_rows(ws, active.id, 0.5), "lowest_dice")
    image_box = next(s for s in at.selectbox if s.key is None and s.label == "Image")
    assert image_box.value == 0 and rows[0].display_name in image_box.format_func(0)
    assert f"Dice {rows[0].dice:.2f}" in image_box.format_func(0)
    assert len(at.get("image")) == 1
    names = [m.label for m in at.metric]
    assert names[:3] == ["Dice", "IoU", "Pixel accuracy"]
    assert at.metric[0].value == f"{rows[0].dice:.3f}"


def test_gradcam_toggle_adds_the_heatmap(ws, open_app):
    at = open_app("review", review_gradcam=True)
    assert not at.exception
    images = at.get("image")
    assert len(images) == 2
    assert "Grad-CAM" in images[1].captions[0]
    assert images[0].proto.imgs[0].url.endswith(".png")  # lossless: colours stay exact


def test_accept_saves_a_model_revision_for_the_current_reader(ws, open_app):
    at = open_app("review", review_order="image", review_threshold=0.3)
    with ws.sessions() as s:
        first = s.scalar(select(Image.id).order_by(Image.id))
    at = click(at, "Accept")
    assert not at.exception
    rev = latest_revision(ws, first, "reader")
    assert rev is not None and rev.source == "model"
    assert rev.model_version_id == active_version(ws).id
    assert "Saved as reader's revision 1" in texts(at)


def test_reject_and_sign_off_with_comment(ws, open_app):
    at = open_app("review", review_order="image")
    at.text_input[0].set_value("right lung under-segmented")
    at = click(at, "Reject")
    at.text_input[0].set_value("checked")
    at = click(at, "Sign off")
    with ws.sessions() as s:
        rows = s.execute(select(Review.decision, Review.comment).order_by(Review.id)).all()
        first = s.get(Image, s.scalar(select(Image.id).order_by(Image.id)))
        assert first.status == "reviewed"
    assert [tuple(r) for r in rows] == [
        ("rejected", "right lung under-segmented"),
        ("signed_off", "checked"),
    ]
    assert list(at.dataframe[-1].value["decision"]) == ["rejected", "signed_off"]


def test_review_without_predictions_says_what_to_do(tmp_path, point_app, open_app):
    point_app(tmp_path / "empty")
    at = open_app("review")
    assert not at.exception
    assert "No predictions yet" in texts(at)


# --- models ------------------------------------------------------------------------------------


def test_models_page_lists_versions_and_rolls_back(ws, open_app):
    at = open_app("models")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["version"]) == [2, 1]
    assert list(table["active"]) == ["", "●"]
    assert all(table["images"] == 6)
    at.selectbox(key="models_version").set_value(2)
    at = at.run()
    at = click(at, "Activate version 2")
    assert active_version(ws).id == 2
    at.selectbox(key="models_version").set_value(1)
    at = at.run()
    at = click(at, "Roll back to version 1")
    assert active_version(ws).id == 1
    assert "Version 1 is now the active model" in texts(at)


def test_models_page_shows_curves_and_compares_two_versions(ws, open_app):
    at = open_app("models")
    assert len(at.get("vega_lite_chart")) == 2  # loss and Dice per epoch
    metrics = {m.label: m.value for m in at.metric}
    assert "Validation Dice" in metrics
    assert "Mean Dice, version 1" in metrics and "Mean Dice, version 2" in metrics
    assert len(at.get("image")) == 2  # the same image under both versions


def test_correct_hands_the_prediction_to_the_annotator(ws, open_app):
    at = open_app("review", review_order="image", review_threshold=0.3)
    with ws.sessions() as s:
        first = s.scalar(select(Image.id).order_by(Image.id))
    at = click(at, "Correct")
    rev = latest_revision(ws, first, "reader")
    assert rev is not None and (rev.source, rev.tool) == ("model", "pre-annotation")
    assert at.session_state["annotate_image_id"] == first  # the annotator opens on it


def test_review_names_its_ground_truth_and_an_accepted_prediction_does_not_become_it(ws, open_app):
    at = open_app("review", review_order="image", review_threshold=0.3)
    reason = "Ground truth: newest human revision: revision 1 of import (imported)"
    assert reason in texts(at)
    dice_before = at.metric[0].value
    at = click(at, "Accept")  # the reader's newest labels are now the model's own output
    assert not at.exception
    assert reason in texts(at) and at.metric[0].value == dice_before


def test_a_reviewer_adjudicates_the_accepted_prediction_as_the_reference(ws, open_app):
    at = open_app("review", review_order="image", review_threshold=0.3)
    at = click(at, "Accept")
    with ws.sessions() as s:
        first = s.scalar(select(Image.id).order_by(Image.id))
    accepted = latest_revision(ws, first, "reader")
    pick = at.selectbox(key=f"review_adjudicate_pick_{first}")
    pick.select_index(next(i for i, o in enumerate(pick.options) if o.startswith("reader,")))
    at = at.button(key="review_adjudicate").click().run()
    assert not at.exception
    assert "reader's revision 1 is now the reference standard" in texts(at)
    assert "Ground truth: adjudicated by reader: revision 1 of reader (accepted from model" in (
        texts(at)
    )
    # Scored against its own accepted output now, by a reviewer's choice: near-perfect.
    assert float(at.metric[0].value) > 0.95
    with ws.sessions() as s:
        row = s.scalars(select(Review).order_by(Review.id.desc())).first()
        assert (row.decision, row.revision_id) == ("adjudicated", accepted.id)


def test_an_annotator_sees_predictions_but_no_review_or_model_actions(ws, open_app):
    at = open_app("review", login="anna", role="annotator")
    assert not at.exception
    assert at.selectbox(key="review_version").value == active_version(ws).id
    shown = {b.label for b in at.button}
    assert not shown & {"Accept", "Correct…", "Reject", "Sign off", "Update model"}
    assert "need the reviewer role" in texts(at)
    at = open_app("models", login="anna", role="annotator")
    assert not at.exception
    assert not [b for b in at.button if b.label.startswith(("Activate", "Roll back", "Predict"))]
    assert not [b for b in at.button if b.label == "Start comparison"]
