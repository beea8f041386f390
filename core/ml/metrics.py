"""Segmentation and image-level metrics on numpy arrays.

Convention for 0/0: a ratio whose denominator is zero is 1.0 when the prediction and the
truth are both empty (nothing to find, nothing found: a perfect answer for a negative image)
and 0.0 otherwise (e.g. precision when nothing was predicted on a positive image).

Image-level ROC, AUC and confusion matrices are sklearn.metrics', imported on first use:
sklearn (with scipy) takes about a second to import, and pages import this module for Box
and above_threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

SEGMENTATION_KEYS = ("dice", "iou", "pixel_accuracy", "precision", "recall")


@dataclass(frozen=True)
class PixelCounts:
    """Pixel confusion counts of one binary prediction against its truth (or a pooled sum)."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: PixelCounts) -> PixelCounts:
        return PixelCounts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    def _ratio(self, num: int, den: int) -> float:
        if den == 0:
            return 1.0 if self.tp + self.fp + self.fn == 0 else 0.0
        return num / den

    @property
    def dice(self) -> float:
        return self._ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def pixel_accuracy(self) -> float:
        total = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.tn) / total if total else 1.0

    @property
    def precision(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    def scores(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in SEGMENTATION_KEYS}


def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> PixelCounts:
    """Confusion counts of two same-shaped masks (anything non-zero is foreground)."""
    if pred.shape != truth.shape:
        raise ValueError(f"Prediction shape {pred.shape} differs from truth shape {truth.shape}.")
    p, t = pred.astype(bool), truth.astype(bool)
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return PixelCounts(tp, fp, fn, int(p.size) - tp - fp - fn)


def segmentation_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice, IoU, pixel accuracy, precision and recall of one image."""
    return pixel_counts(pred, truth).scores()


def summarise_counts(per_image: Sequence[PixelCounts]) -> dict[str, float]:
    """Mean of per-image scores (keys as SEGMENTATION_KEYS) and pooled scores ("pooled_*").

    The per-image mean weighs every image equally (the clinician's view); pooled sums the pixels
    of all images first, so big masks dominate (the usual segmentation-benchmark view).
    """
    if not per_image:
        raise ValueError("No images to score.")
    out = {key: float(np.mean([getattr(c, key) for c in per_image])) for key in SEGMENTATION_KEYS}
    pooled = sum(per_image[1:], per_image[0])
    out.update({f"pooled_{key}": value for key, value in pooled.scores().items()})
    return out


def dataset_scores(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> dict[str, float]:
    """Per-image mean and pooled scores over a set of (prediction, truth) mask pairs."""
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} truths.")
    return summarise_counts([pixel_counts(p, t) for p, t in zip(preds, truths, strict=True)])


# --- image level -----------------------------------------------------------------------------


def image_score(prob: np.ndarray, kind: str = "max", threshold: float = 0.5) -> float:
    """Image-level finding score from a probability map.

    kind="max": highest pixel probability; kind="area": fraction of pixels above threshold.
    """
    if kind == "max":
        return float(prob.max()) if prob.size else 0.0
    if kind == "area":
        return (
            float(np.count_nonzero(above_threshold(prob, threshold))) / prob.size
            if prob.size
            else 0.0
        )
    raise ValueError(f"Unknown image score kind {kind!r}; valid: area, max.")


@dataclass(frozen=True)
class BinaryConfusion:
    """Image-level confusion matrix at one operating point (positive = finding present)."""

    tp: int
    fp: int
    fn: int
    tn: int
    threshold: float

    @property
    def sensitivity(self) -> float:
        """Share of positive images flagged (NaN without positives)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def specificity(self) -> float:
        """Share of negative images left unflagged (NaN without negatives)."""
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")

    def as_matrix(self) -> list[list[int]]:
        """[[TN, FP], [FN, TP]] (rows: truth negative/positive; columns: predicted)."""
        return [[self.tn, self.fp], [self.fn, self.tp]]


def _as_label_arrays(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, ...]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"Need one label per score, got {s.shape} scores, {y.shape} labels.")
    return s, y


def confusion_at(
    scores: Sequence[float], labels: Sequence[bool], threshold: float
) -> BinaryConfusion:
    """Confusion matrix when images with score >= threshold are called positive."""
    s, y = _as_label_arrays(scores, labels)
    if s.size == 0:  # sklearn refuses empty input; an empty set is simply all zeros
        return BinaryConfusion(0, 0, 0, 0, threshold=float(threshold))
    from sklearn.metrics import confusion_matrix

    tn, fp, fn, tp = confusion_matrix(y, s >= threshold, labels=[False, True]).ravel()
    return BinaryConfusion(
        tp=int(tp), fp=int(fp), fn=int(fn), tn=int(tn), threshold=float(threshold)
    )


def _check_both_classes(y: np.ndarray, what: str) -> None:
    # sklearn only warns and returns NaN here; an undefined curve is an error for our callers.
    if y.all() or not y.any():
        raise ValueError(f"{what} needs both positive and negative images.")


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (ties count one half, as in the Mann-Whitney U statistic).

    Raises ValueError when only one class is present: the AUC is undefined there.
    """
    s, y = _as_label_arrays(scores, labels)
    _check_both_classes(y, "ROC AUC")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def roc_curve(
    scores: Sequence[float], labels: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates, thresholds), from (0,0) to (1,1).

    One point per distinct score (sklearn's drop_intermediate=False: no operating point is
    dropped); thresholds[i] is the lowest score called positive at point i (inf for the
    first point).
    """
    s, y = _as_label_arrays(scores, labels)
    _check_both_classes(y, "A ROC curve")
    from sklearn.metrics import roc_curve as sk_roc_curve

    fpr, tpr, thresholds = sk_roc_curve(y, s, pos_label=True, drop_intermediate=False)
    return fpr, tpr, thresholds


# --- connected components --------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixel coordinates; x1/y1 are exclusive (x1 - x0 = width)."""

    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def above_threshold(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The one rule for a positive pixel, used by masks, boxes and areas: prob > threshold."""
    return prob > threshold


def components_to_boxes(prob: np.ndarray, threshold: float = 0.5, min_area: int = 1) -> list[Box]:
    """Boxes around 8-connected regions of prob > threshold, largest confidence first.

    confidence is the mean probability inside the component (not the max: a single hot pixel
    on a faint blob should not make the whole finding look certain).
    """
    if prob.ndim != 2:
        raise ValueError(f"Expected a 2-D probability map, got shape {prob.shape}.")
    binary = above_threshold(prob, threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes = []
    for label in range(1, n):  # 0 is the background
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area:
            continue
        confidence = float(prob[labels == label].mean())
        boxes.append(Box(x, y, x + w, y + h, confidence))
    return sorted(boxes, key=lambda b: b.confidence, reverse=True)
