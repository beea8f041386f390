"""Training augmentation that moves an image and its mask together.

One affine matrix (flip, rotation, scale about the centre) is drawn per sample and applied to
both arrays: bilinear for the image, nearest for the mask, so labels stay binary and aligned.
Brightness/contrast then change the image only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes; zero/None switches one off."""

    hflip_probability: float = 0.5
    max_rotation_deg: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_brightness: float = 0.1  # additive shift, in units of the [0, 1] intensity range
    max_contrast: float = 0.1  # multiplicative change around the image mean: 1 +/- this


NO_INTENSITY_CHANGE = AugmentConfig(max_brightness=0.0, max_contrast=0.0)


def random_affine(
    height: int, width: int, rng: np.random.Generator, config: AugmentConfig
) -> np.ndarray:
    """A 2x3 matrix: optional horizontal flip, then rotation and scale about the centre."""
    angle = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    scale = rng.uniform(*config.scale_range)
    flip = rng.random() < config.hflip_probability
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    if flip:
        # x -> (width - 1) - x before rotating: compose with the flip's affine matrix.
        flip_m = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = matrix @ flip_m
    return matrix


def augment_pair(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """Augment a (H,W) float32 image in [0,1] and its (H,W) bool mask with the same geometry."""
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"Image {image.shape} and mask {mask.shape} must be equal 2-D shapes.")
    height, width = image.shape
    matrix = random_affine(height, width, rng, config)
    out_image = cv2.warpAffine(
        image.astype(np.float32, copy=False),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    out_mask = cv2.warpAffine(
        mask.astype(np.uint8),
        matrix,
        (width, height),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    ).astype(bool)
    contrast = 1.0 + rng.uniform(-config.max_contrast, config.max_contrast)
    brightness = rng.uniform(-config.max_brightness, config.max_brightness)
    if contrast != 1.0 or brightness != 0.0:
        mean = float(out_image.mean())
        out_image = (out_image - mean) * contrast + mean + brightness
    return np.clip(out_image, 0.0, 1.0), out_mask
