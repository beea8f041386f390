"""Post-processing per label keeps exactly the N largest components and fills holes, on masks
and on the probability maps that predictions are stored as."""

from __future__ import annotations

import numpy as np
import pytest

from core.ml.postprocess import (
    PostProcess,
    clean_mask,
    fill_holes,
    keep_largest_components,
    postprocess_for,
    postprocess_probability,
)


def _blobs() -> np.ndarray:
    """Four separate squares of areas 400, 300, 36 and 4 pixels."""
    mask = np.zeros((80, 80), bool)
    mask[5:25, 5:25] = True  # 400
    mask[40:60, 40:55] = True  # 300
    mask[5:11, 60:66] = True  # 36
    mask[70:72, 10:12] = True  # 4
    return mask


def test_keeping_two_components_keeps_exactly_the_two_largest():
    kept = keep_largest_components(_blobs(), 2)
    assert kept.sum() == 400 + 300
    assert kept[10, 10] and kept[50, 45]
    assert not kept[8, 62] and not kept[70, 10]


def test_keeping_more_components_than_there_are_changes_nothing():
    assert np.array_equal(keep_largest_components(_blobs(), 9), _blobs())


def test_holes_are_filled_but_background_touching_the_border_is_not():
    ring = np.zeros((40, 40), bool)
    ring[5:30, 5:30] = True
    ring[10:20, 10:20] = False  # a hole inside
    ring[0:40, 35:40] = False
    notch = ring.copy()
    filled = fill_holes(ring)
    assert filled[10:20, 10:20].all()
    assert filled.sum() == 25 * 25
    # A bay open to the border is background, not a hole.
    notch[15:20, 25:30] = False
    notch[15:20, 29:40] = False
    assert not fill_holes(notch)[17, 27]


def test_the_lung_label_keeps_two_components_and_fills_holes_and_findings_keep_everything():
    assert postprocess_for("lung") == PostProcess(keep_components=2, fill_holes=True)
    assert postprocess_for("pneumonia") is None
    mask = _blobs()
    mask[12:16, 12:16] = False  # a hole in the largest
    cleaned = clean_mask(mask, postprocess_for("lung"))
    assert cleaned.sum() == 400 + 300
    assert np.array_equal(clean_mask(mask, None), mask)


def test_the_probability_map_thresholds_to_the_cleaned_mask_and_keeps_other_pixels():
    rng = np.random.default_rng(0)
    mask = _blobs()
    mask[12:16, 12:16] = False
    prob = np.where(mask, rng.uniform(0.6, 1.0, mask.shape), rng.uniform(0.0, 0.4, mask.shape))
    prob = prob.astype(np.float32)
    option = PostProcess(keep_components=2, fill_holes=True)
    out = postprocess_probability(prob, option, 0.5)
    assert np.array_equal(out > 0.5, clean_mask(mask, option))
    # 8-bit storage (as predictions are stored) keeps the same mask.
    stored = np.round(out * 255).astype(np.uint8) / 255.0
    assert np.array_equal(stored > 0.5, clean_mask(mask, option))
    untouched = clean_mask(mask, option) == mask
    assert np.array_equal(out[untouched], prob[untouched])


def test_a_bad_component_count_is_refused():
    with pytest.raises(ValueError, match="keep_components"):
        PostProcess(keep_components=0)
