"""Pure rendering for review: prediction red over ground truth blue (overlap purple), Grad-CAM
heatmaps, boxes with confidence, and prediction masks turned into editable polygons.

numpy + OpenCV only (no database, no torch), so every colour rule is unit-testable.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from core.ml.metrics import Box

# RGB. Purple sits between the two so overlap reads as "both", and stays far from either.
PREDICTION_RGB = (255, 0, 0)
TRUTH_RGB = (0, 0, 255)
OVERLAP_RGB = (190, 0, 255)
BOX_RGB = (255, 214, 0)


def overlay(
    gray: np.ndarray,
    prediction: np.ndarray | None,
    truth: np.ndarray | None,
    opacity: float = 0.5,
) -> np.ndarray:
    """RGB uint8 image: `prediction` red, `truth` blue, both purple, blended over `gray`.

    gray is (H, W) uint8; the masks are (H, W) booleans or None. opacity 0 shows the X-ray
    alone, 1 paints the regions in their full colours.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    pred = _mask_like(prediction, gray)
    true = _mask_like(truth, gray)
    for region, colour in (
        (pred & ~true, PREDICTION_RGB),
        (true & ~pred, TRUTH_RGB),
        (pred & true, OVERLAP_RGB),
    ):
        rgb[region] = (1.0 - opacity) * rgb[region] + opacity * np.asarray(colour, np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _mask_like(mask: np.ndarray | None, gray: np.ndarray) -> np.ndarray:
    if mask is None:
        return np.zeros(gray.shape, dtype=bool)
    if mask.shape != gray.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {gray.shape}")
    return mask.astype(bool, copy=False)


def heatmap_overlay(gray: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """RGB uint8: a Grad-CAM heatmap in [0, 1] (jet colours) blended over `gray`."""
    if heat.shape != gray.shape:
        heat = cv2.resize(heat, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    return np.clip(np.rint((1 - opacity) * rgb + opacity * colour), 0, 255).astype(np.uint8)


def draw_boxes(rgb: np.ndarray, boxes: Sequence[Box], scale: float = 1.0) -> np.ndarray:
    """Copy of `rgb` with each box outlined and its confidence written above it.

    Boxes are in original-image pixels; `scale` maps them to `rgb` (display / original)."""
    out = rgb.copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for box in boxes:
        x0, y0 = round(box.x0 * scale), round(box.y0 * scale)
        x1, y1 = round(box.x1 * scale) - 1, round(box.y1 * scale) - 1
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_RGB, thickness)
        cv2.putText(
            out,
            f"{box.confidence:.2f}",
            (x0 + 2, max(y0 - 4, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            BOX_RGB,
            thickness,
            cv2.LINE_AA,
        )
    return out


def mask_to_shapes(
    mask: np.ndarray, label: str, min_area: int = 16, tolerance: float = 1.0
) -> list[dict]:
    """Polygons (LabelMe-style shape dicts, original pixels) outlining a binary mask.

    One polygon per outer contour; regions under `min_area` pixels are specks, not findings.
    `tolerance` (pixels) simplifies the outline so a reader can still edit it.
    """
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    shapes = []
    for contour in sorted(contours, key=cv2.contourArea, reverse=True):
        if cv2.contourArea(contour) < min_area:
            continue
        points = cv2.approxPolyDP(contour, tolerance, True)[:, 0, :]
        if len(points) < 3:
            continue
        shapes.append(
            {
                "label": label,
                "points": [[float(x), float(y)] for x, y in points],
                "shape_type": "polygon",
            }
        )
    return shapes
