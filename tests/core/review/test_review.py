"""Review: overlay colours (core.review.overlay), boxes, prediction -> polygons, worklist order,
and the accept / reject / sign-off actions on a workspace of real X-rays with their LabelMe lung polygons."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from annotations.files import atomic_write_bytes
from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core import review
from core.imaging.png import encode_png
from core.labels.readers import add_reader
from core.labels.revisions import latest_by_reader, latest_revision, save_revision
from core.ml.metrics import Box, pixel_counts
from core.review import overlay
from core.review import report as model_report
from db.models import Image, ModelVersion, Prediction, Review

# --- pure rendering -------------------------------------------------------------------------


def test_overlay_paints_prediction_red_truth_blue_and_overlap_purple():
    gray = np.full((4, 6), 100, np.uint8)
    pred = np.zeros((4, 6), bool)
    truth = np.zeros((4, 6), bool)
    pred[:, 0:3] = True  # columns 0-2 predicted
    truth[:, 2:5] = True  # columns 2-4 labelled; column 2 is both; column 5 neither
    out = overlay.overlay(gray, pred, truth, opacity=0.5)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (178, 50, 50)  # red over gray 100
    assert tuple(out[0, 3]) == (50, 50, 178)  # blue
    assert tuple(out[0, 2]) == (145, 50, 178)  # purple: both red and blue channels up
    assert tuple(out[0, 5]) == (100, 100, 100)  # untouched X-ray
    full = overlay.overlay(gray, pred, truth, opacity=1.0)
    assert tuple(full[0, 0]) == overlay.PREDICTION_RGB
    assert tuple(full[0, 3]) == overlay.TRUTH_RGB
    assert tuple(full[0, 2]) == overlay.OVERLAP_RGB
    assert np.array_equal(overlay.overlay(gray, pred, truth, 0.0)[..., 0], gray)


def test_overlay_without_labels_shows_only_the_prediction():
    gray = np.zeros((3, 3), np.uint8)
    pred = np.eye(3, dtype=bool)
    out = overlay.overlay(gray, pred, None, 1.0)
    assert (out[pred] == overlay.PREDICTION_RGB).all()
    assert (out[~pred] == 0).all()


def test_overlay_refuses_bad_input():
    gray = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match="opacity"):
        overlay.overlay(gray, None, None, 1.5)
    with pytest.raises(ValueError, match="shape"):
        overlay.overlay(gray, np.zeros((2, 2), bool), None)


def test_boxes_are_drawn_at_display_scale():
    rgb = np.zeros((100, 100, 3), np.uint8)
    out = overlay.draw_boxes(rgb, [Box(20, 40, 120, 140, 0.87)], scale=0.5)
    yellow = np.all(out == overlay.BOX_RGB, axis=2)
    assert yellow[20:70, 10].all() and yellow[20, 10:60].all()  # left and top edges
    assert not yellow[45, 35]  # the inside stays clear
    assert not rgb.any()  # the input is not drawn on


def test_heatmap_overlay_is_hot_where_the_map_is_high():
    gray = np.full((8, 8), 128, np.uint8)
    heat = np.zeros((8, 8), np.float32)
    heat[:, 4:] = 1.0
    out = overlay.heatmap_overlay(gray, heat, 0.6).astype(int)
    assert out[0, 6, 0] > out[0, 6, 2]  # jet: hot is red
    assert out[0, 1, 2] > out[0, 1, 0]  # cold is blue


def test_prediction_polygons_rasterise_back_to_the_predicted_region():
    mask = np.zeros((200, 300), bool)
    yy, xx = np.mgrid[:200, :300]
    mask |= (xx - 90) ** 2 / 50**2 + (yy - 100) ** 2 / 70**2 <= 1  # one "lung"
    mask[40:170, 180:260] = True  # another
    mask[5:7, 5:7] = True  # a speck, not a finding
    shapes = overlay.mask_to_shapes(mask, "lung")
    assert len(shapes) == 2 and all(s["shape_type"] == "polygon" for s in shapes)
    back = label_mask([shape_from_dict(s) for s in shapes], (300, 200), "lung")
    assert pixel_counts(back, mask).dice > 0.97


def _row(image_id, dice=None, entropy=0.1, readers=None, model=None):
    return review.ReviewRow(image_id, f"IMG-{image_id}", dice, entropy, 0.9, 1, readers, model)


def test_worklist_orders_most_informative_first_and_unscored_last():
    rows = [
        _row(1, dice=0.9, entropy=0.2, readers=0.1, model=0.1),
        _row(2, dice=None, entropy=0.9),
        _row(3, dice=0.3, entropy=0.1, readers=0.6, model=0.7),
        _row(4, dice=0.6, entropy=0.5, readers=None, model=0.4),
    ]
    ids = {o: [r.image_id for r in review.order_rows(rows, o)] for o in review.ORDERS}
    assert ids["lowest_dice"] == [3, 4, 1, 2]
    assert ids["uncertainty"] == [2, 4, 1, 3]
    assert ids["reader_disagreement"] == [3, 1, 2, 4]
    assert ids["model_disagreement"] == [3, 4, 1, 2]
    assert ids["image"] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown order"):
        review.order_rows(rows, "random")


# --- on a workspace ----------------------------------------------------------------------------


def _fake_version(ws, masks: dict[int, np.ndarray], snapshot: dict | None = None) -> int:
    """A model version whose stored predictions are the given masks (probability 0.9 inside,
    0.1 outside): review works from stored predictions, so no network is needed here."""
    with ws.sessions.begin() as s:
        v = ModelVersion(
            label="lung", arch="unet", encoder="resnet18", image_size=64,
            checkpoint_path="models/none/best.pt", device="cpu", duration_s=0.0, is_active=True,
            data_snapshot=snapshot or {},
        )  # fmt: skip
        s.add(v)
        s.flush()
        for image_id, mask in masks.items():
            rel = f"predictions/v{v.id}/{image_id}.png"
            peak = 0.9 if mask.any() else 0.3
            prob = np.where(mask, peak, 0.1)
            atomic_write_bytes(ws.store_dir / rel, encode_png(np.uint8(np.round(prob * 255))))
            s.add(
                Prediction(
                    model_version_id=v.id, image_id=image_id, probability_path=rel, score=peak,
                    uncertainty=float(np.mean(mask)), boxes=[],
                )
            )  # fmt: skip
        return v.id


@pytest.fixture
def reviewed(workspace, import_real_images):
    """3 real X-rays with the import reader's lungs; predictions: image 1 exact, image 2 the
    lungs shifted right, image 3 nothing. A second reader labelled image 2 differently."""
    import_real_images(workspace, 3)
    with workspace.sessions() as s:
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
    truths = {}
    for image_id in ids:
        rev = latest_by_reader(workspace, image_id)["import"]
        shapes = [shape_from_dict(d) for d in rev.shapes]
        truths[image_id] = label_mask(shapes, (rev.image_width, rev.image_height), "lung")
    shifted = np.roll(truths[ids[1]], truths[ids[1]].shape[1] // 8, axis=1)
    masks = {ids[0]: truths[ids[0]], ids[1]: shifted, ids[2]: np.zeros_like(truths[ids[2]])}
    version_id = _fake_version(workspace, masks)
    add_reader(workspace, "second")
    other = latest_by_reader(workspace, ids[1])["import"].shapes[:1]  # only one lung
    save_revision(workspace, ids[1], "second", other)
    return workspace, ids, version_id, truths


def test_scores_and_orders_against_the_readers_labels(reviewed):
    ws, ids, version_id, _ = reviewed
    rows = {r.image_id: r for r in review.review_rows(ws, version_id, 0.5, truth_reader="import")}
    assert rows[ids[0]].dice == pytest.approx(1.0)
    assert 0.2 < rows[ids[1]].dice < 0.95
    assert rows[ids[2]].dice == 0.0  # labelled lungs, nothing predicted
    assert rows[ids[1]].reader_disagreement > 0.2  # one reader drew one lung, the other two
    assert rows[ids[0]].reader_disagreement is None
    ordered = review.order_rows(list(rows.values()), "lowest_dice")
    assert [r.image_id for r in ordered] == [ids[2], ids[1], ids[0]]


def test_review_image_has_red_blue_and_purple_where_expected(reviewed):
    ws, ids, version_id, truths = reviewed
    data = review.load_review(ws, ids[1], version_id, 0.5, truth_reader="import")
    assert data.truth_reader == "import"
    assert data.dice is not None and data.iou is not None and data.iou < data.dice
    assert data.boxes and all(0.85 < b.confidence <= 0.91 for b in data.boxes)
    rgb = data.render(0.5, boxes=False).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = (r - b > 60) & (r - g > 60)
    blue = (b - r > 60) & (b - g > 60)
    purple = (r - g > 40) & (b - g > 40) & (np.abs(r - b) < 80)
    pred, truth = data.prediction, data.truth
    assert red.sum() > 100 and blue.sum() > 100 and purple.sum() > 100
    # Each colour sits where its region is.
    assert (pred & ~truth)[red].mean() > 0.99
    assert (truth & ~pred)[blue].mean() > 0.99
    assert (pred & truth)[purple].mean() > 0.99


def test_accept_saves_the_prediction_as_a_model_revision_keeping_other_labels(reviewed):
    ws, ids, version_id, _ = reviewed
    image_id = ids[1]
    keep = {"label": "pneumonia", "points": [[10, 10], [60, 10], [60, 60]], "shape_type": "polygon"}
    before = latest_revision(ws, image_id, "import")
    save_revision(ws, image_id, "reader", [keep])
    rev = review.accept_prediction(ws, image_id, version_id, "reader", 0.5)
    assert rev.source == "model" and rev.model_version_id == version_id and rev.revision == 2
    labels = [d["label"] for d in rev.shapes]
    assert labels.count("pneumonia") == 1 and labels.count("lung") >= 1
    lung = [shape_from_dict(d) for d in rev.shapes]
    accepted = label_mask(lung, (rev.image_width, rev.image_height), "lung")
    predicted = review.read_probability(ws, version_id, image_id) > 0.5
    assert pixel_counts(accepted, predicted).dice > 0.97
    assert latest_revision(ws, image_id, "import") == before  # other readers untouched
    with ws.sessions() as s:
        decisions = list(s.scalars(select(Review.decision)))
    assert decisions == ["accepted"]


def test_accepting_an_empty_prediction_is_refused(reviewed):
    ws, ids, version_id, _ = reviewed
    with pytest.raises(ValueError, match="no 'lung' region"):
        review.accept_prediction(ws, ids[2], version_id, "reader", 0.5)
    assert latest_revision(ws, ids[2], "reader") is None


def test_correct_reject_and_sign_off_are_recorded(reviewed):
    ws, ids, version_id, _ = reviewed
    pre = review.start_correction(ws, ids[0], version_id, "reader")
    assert pre.source == "model" and pre.tool == "pre-annotation"
    review.reject_prediction(ws, ids[1], version_id, "reader", "misses the left lung")
    review.sign_off(ws, ids[1], "reader", "  labels checked ")
    history = review.review_history(ws, ids[1])
    assert [(h.decision, h.comment) for h in history] == [
        ("rejected", "misses the left lung"),
        ("signed_off", "labels checked"),
    ]
    with ws.sessions() as s:
        assert s.get(Image, ids[1]).status == "reviewed"
    with pytest.raises(ValueError, match="unknown reader"):
        review.sign_off(ws, ids[1], "nobody")


def test_missing_prediction_says_what_to_do(reviewed):
    ws, ids, _, _ = reviewed
    with pytest.raises(LookupError, match="run a prediction job"):
        review.read_probability(ws, 999, ids[0])


def test_image_level_report_on_validation_images_with_negatives(reviewed):
    ws, ids, _, truths = reviewed
    # Validation: two labelled images and one explicit negative (no revision in the snapshot).
    snapshot = {"val": [[ids[0], [1]], [ids[1], [2]], [ids[2], []]]}
    masks = {ids[0]: truths[ids[0]], ids[1]: np.zeros_like(truths[ids[1]]), ids[2]: truths[ids[2]]}
    version_id = _fake_version(ws, masks, snapshot)  # scores 0.9, 0.3, 0.9
    report = model_report.image_level(ws, version_id, threshold=0.5)
    assert (report.n_positive, report.n_negative) == (2, 1)
    assert report.matrix == [[0, 1], [1, 1]]  # [[TN, FP], [FN, TP]]
    assert report.sensitivity == 0.5 and report.specificity == 0.0
    assert report.auc == pytest.approx(0.25)  # 0.9 vs 0.9 ties (1/2), 0.3 < 0.9 (0)
    assert report.fpr[0] == 0.0 and report.tpr[-1] == 1.0


def test_image_level_report_needs_both_classes(reviewed):
    ws, ids, version_id, _ = reviewed
    assert model_report.image_level(ws, version_id) is None  # no validation snapshot
    only_positive = _fake_version(ws, {ids[0]: np.ones((2, 2), bool)}, {"val": [[ids[0], [1]]]})
    assert model_report.image_level(ws, only_positive) is None


def test_compare_versions_scores_both_on_the_same_labelled_images(reviewed):
    ws, ids, first, truths = reviewed
    second = _fake_version(ws, {ids[0]: truths[ids[0]], ids[1]: truths[ids[1]]})
    comparison = model_report.compare_versions(ws, first, second, truth_reader="import")
    assert comparison.image_ids == [ids[0], ids[1]]  # image 3 has no prediction from `second`
    assert comparison.dice_b == [pytest.approx(1.0), pytest.approx(1.0)]
    assert comparison.dice_a[1] < 0.95 and comparison.b_better == 1
