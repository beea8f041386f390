"""Training augmentation that moves an image and its mask together.

One affine matrix (flip, rotation, scale about the centre, shift) is drawn per sample and
applied to both arrays, then optionally one smooth elastic displacement field: bilinear for the
image, nearest for the mask, so labels stay binary and aligned. CLAHE, gamma and
brightness/contrast then change the image only. Vertical flips are never drawn: a chest
radiograph is never upside down.

Presets (TrainConfig.augment_preset): "basic" (flip, rotation, scale, brightness/contrast)
and "radiograph" (basic plus shift, small elastic warps, CLAHE and gamma).
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
    max_shift: float = 0.0  # translation, as a fraction of the side
    elastic_probability: float = 0.0
    elastic_alpha: float = 0.03  # displacement amplitude, as a fraction of the side
    elastic_sigma: float = 0.08  # smoothness of the field, as a fraction of the side
    clahe_probability: float = 0.0
    clahe_clip_range: tuple[float, float] = (1.0, 3.0)
    gamma_range: tuple[float, float] | None = None  # intensity ** gamma, drawn in this range


NO_INTENSITY_CHANGE = AugmentConfig(max_brightness=0.0, max_contrast=0.0)
RADIOGRAPH = AugmentConfig(
    hflip_probability=0.5,
    max_rotation_deg=8.0,
    scale_range=(0.9, 1.1),
    max_brightness=0.08,
    max_contrast=0.15,
    max_shift=0.05,
    elastic_probability=0.25,
    clahe_probability=0.3,
    gamma_range=(0.75, 1.35),
)
PRESETS: dict[str, AugmentConfig] = {"basic": AugmentConfig(), "radiograph": RADIOGRAPH}


def preset(name: str) -> AugmentConfig:
    if name not in PRESETS:
        raise ValueError(f"Unknown augmentation preset {name!r}; valid: {', '.join(PRESETS)}.")
    return PRESETS[name]


def random_affine(
    height: int, width: int, rng: np.random.Generator, config: AugmentConfig
) -> np.ndarray:
    """A 2x3 matrix: optional horizontal flip, then rotation and scale about the centre."""
    angle = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    scale = rng.uniform(*config.scale_range)
    flip = rng.random() < config.hflip_probability
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    if config.max_shift:
        matrix[0, 2] += rng.uniform(-config.max_shift, config.max_shift) * width
        matrix[1, 2] += rng.uniform(-config.max_shift, config.max_shift) * height
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
    if config.elastic_probability and rng.random() < config.elastic_probability:
        out_image, out_mask = elastic_pair(out_image, out_mask, rng, config)
    if config.clahe_probability and rng.random() < config.clahe_probability:
        out_image = random_clahe(out_image, rng, config.clahe_clip_range)
    if config.gamma_range is not None:
        gamma = float(np.exp(rng.uniform(*np.log(config.gamma_range))))
        out_image = np.power(np.clip(out_image, 0.0, 1.0), gamma, dtype=np.float32)
    contrast = 1.0 + rng.uniform(-config.max_contrast, config.max_contrast)
    brightness = rng.uniform(-config.max_brightness, config.max_brightness)
    if contrast != 1.0 or brightness != 0.0:
        mean = float(out_image.mean())
        out_image = (out_image - mean) * contrast + mean + brightness
    return np.clip(out_image, 0.0, 1.0), out_mask


def elastic_pair(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One smooth random displacement field applied to both arrays (small: ribs and lung
    borders bend, they do not tear)."""
    height, width = image.shape
    side = max(height, width)
    sigma = max(config.elastic_sigma * side, 1.0)
    field = rng.uniform(-1.0, 1.0, size=(2, height, width)).astype(np.float32)
    dx = cv2.GaussianBlur(field[0], (0, 0), sigma)
    dy = cv2.GaussianBlur(field[1], (0, 0), sigma)
    # Blurring shrinks the field; rescale so its largest displacement is alpha * side.
    peak = max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
    scale = config.elastic_alpha * side / peak
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = xs + dx * scale, ys + dy * scale
    out_image = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out_mask = cv2.remap(
        mask.astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT
    ).astype(bool)
    return out_image, out_mask


def random_clahe(
    image: np.ndarray, rng: np.random.Generator, clip_range: tuple[float, float]
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation with a random clip limit."""
    clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(*clip_range)), tileGridSize=(8, 8))
    u8 = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return clahe.apply(u8).astype(np.float32) / 255.0
