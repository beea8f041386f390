"""Post-processing of a predicted mask, an option per label: keep the N largest connected
components and fill holes. Anatomy has a known shape ("lung": two components, no holes);
findings do not, so labels without an entry are left as predicted.

Applied to probability maps so that stored predictions, review scores and exports agree:
pixels of dropped components are pushed just below the threshold, filled holes just above
it, everything else keeps its probability. OpenCV is imported on first use: the Train page
reads the per-label options through the recipes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PostProcess:
    """keep_components: keep only the N largest 8-connected components (None: all).
    fill_holes: fill background regions that do not touch the image border."""

    keep_components: int | None = None
    fill_holes: bool = False

    def __post_init__(self) -> None:
        if self.keep_components is not None and self.keep_components < 1:
            raise ValueError(f"keep_components must be >= 1 or None, got {self.keep_components}.")

    @property
    def active(self) -> bool:
        return self.keep_components is not None or self.fill_holes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PostProcess | None:
        if not data:
            return None
        return cls(data.get("keep_components"), bool(data.get("fill_holes", False)))


# The option per label. A label not listed here is not post-processed.
LABEL_POSTPROCESS: dict[str, PostProcess] = {
    "lung": PostProcess(keep_components=2, fill_holes=True),
}


def postprocess_for(label: str) -> PostProcess | None:
    """The label's post-processing option, or None when it has none."""
    return LABEL_POSTPROCESS.get(label)


def keep_largest_components(mask: np.ndarray, n: int) -> np.ndarray:
    """The n largest 8-connected components of a 2-D bool mask (ties: the lower label)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    if count - 1 <= n:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.argsort(-areas, kind="stable")[:n]
    return np.isin(labels, keep)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """mask with every background region that does not touch the border filled in."""
    import cv2

    mask = mask.astype(bool)
    background = (~mask).astype(np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    if count <= 1:
        return mask
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = (labels > 0) & ~np.isin(labels, border)
    return mask | holes


def clean_mask(mask: np.ndarray, option: PostProcess | None) -> np.ndarray:
    """A 2-D bool mask after the label's post-processing (unchanged for None)."""
    out = mask.astype(bool)
    if option is None:
        return out
    if option.keep_components is not None:
        out = keep_largest_components(out, option.keep_components)
    if option.fill_holes:
        out = fill_holes(out)
    return out


# Far enough from the threshold to survive 8-bit storage of the probability map.
MARGIN = 2.0 / 255.0


def postprocess_probability(
    prob: np.ndarray, option: PostProcess | None, threshold: float = 0.5
) -> np.ndarray:
    """prob whose thresholded mask is clean_mask(prob > threshold): dropped pixels get
    min(p, threshold - MARGIN), filled ones max(p, threshold + MARGIN)."""
    if option is None or not option.active:
        return prob
    mask = prob > threshold
    cleaned = clean_mask(mask, option)
    if np.array_equal(mask, cleaned):
        return prob
    out = prob.astype(np.float32, copy=True)
    dropped, added = mask & ~cleaned, cleaned & ~mask
    out[dropped] = np.minimum(out[dropped], max(threshold - MARGIN, 0.0))
    out[added] = np.maximum(out[added], min(threshold + MARGIN, 1.0))
    return out
