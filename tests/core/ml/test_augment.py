"""Augmentation keeps image and mask aligned and the mask binary."""

from __future__ import annotations

import numpy as np

from core.ml.augment import NO_INTENSITY_CHANGE, AugmentConfig, augment_pair


def _square() -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((64, 64), bool)
    mask[10:30, 20:50] = True
    return mask.astype(np.float32), mask


def test_image_and_mask_move_together():
    image, mask = _square()
    config = AugmentConfig(
        hflip_probability=0.5, max_rotation_deg=15, scale_range=(0.85, 1.15),
        max_brightness=0.0, max_contrast=0.0,
    )  # fmt: skip
    flipped_once = False
    for seed in range(20):
        out_image, out_mask = augment_pair(image, mask, np.random.default_rng(seed), config)
        assert out_mask.dtype == bool
        # The bright region of the warped image is the warped mask (up to edge pixels).
        disagreement = np.count_nonzero((out_image > 0.5) != out_mask)
        assert disagreement <= 0.05 * mask.sum()
        flipped_once |= out_mask[:, 32:].sum() < out_mask[:, :32].sum()
    assert flipped_once  # the square sits right of centre: a flip moves it left


def test_same_rng_same_result():
    image, mask = _square()
    a = augment_pair(image, mask, np.random.default_rng(5))
    b = augment_pair(image, mask, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_intensity_changes_touch_the_image_only_and_stay_in_range():
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    mask = image > 0.5
    still = AugmentConfig(hflip_probability=0.0, max_rotation_deg=0.0, scale_range=(1.0, 1.0))
    out_image, out_mask = augment_pair(image, mask, np.random.default_rng(1), still)
    assert np.array_equal(out_mask, mask)
    assert not np.allclose(out_image, image)
    assert out_image.min() >= 0.0 and out_image.max() <= 1.0
    no_change = AugmentConfig(
        hflip_probability=0.0, max_rotation_deg=0.0, scale_range=(1.0, 1.0),
        max_brightness=NO_INTENSITY_CHANGE.max_brightness, max_contrast=0.0,
    )  # fmt: skip
    same, _ = augment_pair(image, mask, np.random.default_rng(1), no_change)
    np.testing.assert_allclose(same, image, atol=1e-6)
