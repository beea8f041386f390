"""Synthetic "findings": bright ellipses on noisy backgrounds, for smoke runs and tests.

Real X-rays are for benchmarks (../shared/data); these exist so that a run proves the
machinery (data, loop, checkpoint, distributed) in seconds without any file.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.ml.dataset import TrainItem


def synthetic_case(seed: int, index: int, negative: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(float32 image in [0,1], bool mask) of one synthetic image; sizes vary from 64 to 96."""
    rng = np.random.default_rng((seed, index))
    height, width = (int(v) for v in rng.integers(64, 97, size=2))
    mask = np.zeros((height, width), np.uint8)
    if not negative:
        for _ in range(int(rng.integers(1, 3))):
            centre = (int(rng.integers(12, width - 12)), int(rng.integers(12, height - 12)))
            axes = (int(rng.integers(5, 14)), int(rng.integers(5, 14)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, thickness=-1)
    background = rng.uniform(0.15, 0.35)
    image = background + rng.normal(0.0, 0.06, size=(height, width))
    image = image + mask * rng.uniform(0.35, 0.5)
    image = cv2.GaussianBlur(image.astype(np.float32), (3, 3), 0)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask.astype(bool)


def synthetic_items(
    n: int, seed: int = 0, negative_every: int = 0, images_per_patient: int = 1
) -> list[TrainItem]:
    """n items; every `negative_every`-th one has no finding (0: none do)."""
    items = []
    for i in range(n):
        negative = negative_every > 0 and i % negative_every == negative_every - 1

        def load(i: int = i, negative: bool = negative) -> tuple[np.ndarray, np.ndarray]:
            return synthetic_case(seed, i, negative)

        items.append(
            TrainItem(
                image_id=i,
                patient_key=f"p{i // images_per_patient}",
                load_image=lambda load=load: load()[0],
                mask=lambda load=load: load()[1],
            )
        )
    return items
