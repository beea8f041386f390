"""Segmentation and image-level metrics against hand-counted values (and sklearn)."""

from __future__ import annotations

import numpy as np
import pytest

from core.ml.metrics import (
    above_threshold,
    components_to_boxes,
    confusion_at,
    dataset_scores,
    image_score,
    pixel_counts,
    roc_auc,
    roc_curve,
    segmentation_scores,
)


def _masks():
    # Truth: 4 pixels; prediction: 3 pixels, 2 of them right. 16 pixels in all.
    truth = np.zeros((4, 4), bool)
    truth[0, :4] = True
    pred = np.zeros((4, 4), bool)
    pred[0, :2] = True
    pred[3, 3] = True
    return pred, truth


def test_one_image_scores_by_hand():
    pred, truth = _masks()
    counts = pixel_counts(pred, truth)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (2, 1, 2, 11)
    scores = segmentation_scores(pred, truth)
    assert scores["dice"] == pytest.approx(4 / 7)
    assert scores["iou"] == pytest.approx(2 / 5)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["pixel_accuracy"] == pytest.approx(13 / 16)


def test_empty_prediction_of_empty_truth_is_perfect():
    empty = np.zeros((3, 3), bool)
    assert segmentation_scores(empty, empty) == {
        "dice": 1.0,
        "iou": 1.0,
        "pixel_accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
    }


def test_missed_finding_scores_zero():
    truth = np.zeros((3, 3), bool)
    truth[1, 1] = True
    scores = segmentation_scores(np.zeros_like(truth), truth)
    assert scores["dice"] == 0.0 and scores["recall"] == 0.0 and scores["precision"] == 0.0


def test_per_image_mean_and_pooled_differ_as_expected():
    pred, truth = _masks()  # dice 4/7
    big_truth = np.ones((4, 4), bool)
    big_pred = big_truth.copy()  # dice 1, 16 TP pixels
    out = dataset_scores([pred, big_pred], [truth, big_truth])
    assert out["dice"] == pytest.approx((4 / 7 + 1.0) / 2)
    # pooled: tp 18, fp 1, fn 2
    assert out["pooled_dice"] == pytest.approx(36 / 39)
    assert out["pooled_iou"] == pytest.approx(18 / 21)
    assert out["pooled_pixel_accuracy"] == pytest.approx(29 / 32)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differs"):
        pixel_counts(np.zeros((2, 2)), np.zeros((3, 3)))


SCORES = [0.9, 0.8, 0.7, 0.6, 0.55, 0.3, 0.2, 0.1]
LABELS = [True, True, False, True, False, False, True, False]


def test_image_level_sensitivity_specificity_by_hand():
    c = confusion_at(SCORES, LABELS, 0.5)
    # called positive: 0.9 0.8 0.7 0.6 0.55 -> TP 3, FP 2; below: FN 1 (0.2), TN 2
    assert (c.tp, c.fp, c.fn, c.tn) == (3, 2, 1, 2)
    assert c.sensitivity == pytest.approx(3 / 4)
    assert c.specificity == pytest.approx(2 / 4)
    assert c.as_matrix() == [[2, 2], [1, 3]]
    assert c.threshold == 0.5


def test_a_score_equal_to_the_threshold_is_called_positive():
    c = confusion_at([0.6, 0.6, 0.2], [True, False, False], 0.6)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 0, 1)


def test_confusion_of_one_class_and_of_nothing():
    negatives = confusion_at([0.1, 0.7], [False, False], 0.5)
    assert (negatives.tp, negatives.fp, negatives.fn, negatives.tn) == (0, 1, 0, 1)
    assert np.isnan(negatives.sensitivity)
    assert negatives.specificity == pytest.approx(0.5)
    empty = confusion_at([], [], 0.5)
    assert (empty.tp, empty.fp, empty.fn, empty.tn) == (0, 0, 0, 0)


def test_roc_auc_by_hand():
    # Pairs (positive, negative) ranked correctly: for positives 0.9, 0.8 -> 4 each;
    # 0.6 -> 3 (beats 0.55, 0.3, 0.1); 0.2 -> 1 (beats 0.1). 12 of 16.
    assert roc_auc(SCORES, LABELS) == pytest.approx(12 / 16)
    # A tie between a positive and a negative counts one half: pairs (0.8+, 0.5-) 1,
    # (0.8+, 0.8-) 1/2, (0.5+, 0.5-) 1/2, (0.5+, 0.8-) 0 -> 2 of 4.
    assert roc_auc([0.8, 0.8, 0.5, 0.5], [True, False, True, False]) == pytest.approx(0.5)
    assert roc_auc([0.9, 0.1], [True, False]) == 1.0
    assert roc_auc([0.1, 0.9], [True, False]) == 0.0


def test_roc_curve_by_hand():
    # Distinct thresholds, highest first: one point each, starting at (0, 0) with inf.
    fpr, tpr, thresholds = roc_curve(SCORES, LABELS)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1, 1, 2, 3, 3, 4] / np.float64(4))
    np.testing.assert_allclose(tpr, [0, 1, 2, 2, 3, 3, 3, 4, 4] / np.float64(4))
    np.testing.assert_array_equal(thresholds, [np.inf, *SCORES])
    # Tied scores make one point: 0.8 (one positive, one negative) moves up and right at once.
    fpr, tpr, thresholds = roc_curve([0.8, 0.8, 0.5, 0.5], [True, False, True, False])
    np.testing.assert_allclose(fpr, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.8, 0.5])


def test_roc_auc_and_curve_on_many_ties_agree_with_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(200), 2)  # rounded: many ties
    labels = rng.random(200) < 0.4
    assert roc_auc(scores, labels) == pytest.approx(sk.roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(scores, labels)
    sk_fpr, sk_tpr, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    # The area under the returned curve (trapezoids) is the AUC.
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc(scores, labels))


def test_roc_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        roc_auc([0.1, 0.9], [True, True])
    with pytest.raises(ValueError, match="both"):
        roc_auc([0.1, 0.9], [False, False])
    with pytest.raises(ValueError, match="both"):
        roc_curve([0.1, 0.9], [True, True])
    with pytest.raises(ValueError, match="both"):
        roc_curve([], [])


def test_one_label_per_score():
    with pytest.raises(ValueError, match="one label per score"):
        confusion_at([0.1, 0.2], [True], 0.5)


def test_image_score_kinds():
    prob = np.array([[0.1, 0.9], [0.6, 0.2]])
    assert image_score(prob, "max") == pytest.approx(0.9)
    assert image_score(prob, "area", 0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="area, max"):
        image_score(prob, "mean")


def test_components_become_boxes_with_mean_confidence():
    prob = np.zeros((20, 30), np.float32)
    prob[2:6, 3:8] = 0.9  # 4 x 5 block
    prob[10:18, 20:24] = 0.6
    prob[12, 21] = 1.0  # one hotter pixel inside the second blob
    prob[0, 29] = 0.4  # below threshold: no box
    boxes = components_to_boxes(prob, threshold=0.5)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in boxes] == [(3, 2, 8, 6), (20, 10, 24, 18)]
    assert boxes[0].confidence == pytest.approx(0.9)
    assert boxes[1].confidence == pytest.approx((31 * 0.6 + 1.0) / 32)
    assert (boxes[0].width, boxes[0].height) == (5, 4)
    assert components_to_boxes(prob, threshold=0.5, min_area=21) == boxes[1:]


def test_diagonal_pixels_are_one_component():
    prob = np.zeros((5, 5), np.float32)
    prob[1, 1] = prob[2, 2] = prob[3, 3] = 0.8
    assert len(components_to_boxes(prob)) == 1


def test_a_probability_exactly_at_the_threshold_is_negative_everywhere():
    """Boxes, area and the predicted mask follow one rule (prob > threshold): a model that
    outputs exactly 0.5 (logit 0) must not give a box without a mask pixel, or the reverse."""
    prob = np.zeros((8, 8), dtype=np.float32)
    prob[1:3, 1:3] = 0.5  # exactly at the threshold
    prob[5:7, 5:7] = 0.9
    mask = above_threshold(prob, 0.5)
    assert mask.sum() == 4 and mask[5:7, 5:7].all()
    boxes = components_to_boxes(prob, 0.5)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in boxes] == [(5, 5, 7, 7)]
    assert image_score(prob, "area", 0.5) == 4 / 64
