"""What the Models page shows about a version: curves, validation scores, image-level
operating point, and a comparison of two versions on the same images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from core.ml.metrics import confusion_at, roc_auc, roc_curve
from core.review.worklist import ReviewRow, review_rows
from core.versions import VersionInfo, get_version
from core.workspace import Workspace
from db import queries
from db.models import Prediction


@dataclass(frozen=True)
class ImageLevelReport:
    """Image-level pneumonia call on the validation images (needs negatives and positives)."""

    n_positive: int
    n_negative: int
    threshold: float
    sensitivity: float
    specificity: float
    matrix: list[list[int]]  # [[TN, FP], [FN, TP]]
    auc: float | None
    fpr: list[float]
    tpr: list[float]


def curves(version: VersionInfo) -> list[dict]:
    """Per-epoch rows (epoch, train_loss, val_loss, val_dice, val_iou) for charts."""
    keys = ("epoch", "train_loss", "val_loss", "val_dice", "val_iou")
    return [{k: row.get(k) for k in keys if k in row} for row in version.history]


def snapshot_size(version: VersionInfo) -> dict:
    snap = version.data_snapshot
    return {
        "images": snap.get("n_images"),
        "training": snap.get("n_train"),
        "validation": snap.get("n_val"),
        "patients": snap.get("n_patients"),
        "reader": snap.get("reader") or "newest of any reader",
    }


def image_level(ws: Workspace, version_id: int, threshold: float = 0.5) -> ImageLevelReport | None:
    """Sensitivity, specificity, ROC and confusion matrix of the image-level score (max
    probability) on the version's validation images; None unless both classes are there and
    the validation images have predictions.

    A validation image is positive when its label revision had shapes of the version's label,
    negative when it was an explicit "no finding" (no revision in the data snapshot).
    """
    version = get_version(ws, version_id)
    val = version.data_snapshot.get("val") or []
    # Each row is [image_id, revision id(s)]; a negative has none (None or an empty list).
    truth = {int(image_id): bool(revs) for image_id, revs in val}
    with ws.sessions() as s:
        scores = dict(
            s.execute(
                select(Prediction.image_id, Prediction.score).where(
                    Prediction.model_version_id == version_id,
                    queries.among(s, Prediction.image_id, truth),
                )
            ).all()
        )
    ids = [i for i in truth if i in scores]
    labels = [truth[i] for i in ids]
    if not ids or all(labels) or not any(labels):
        return None
    values = [scores[i] for i in ids]
    confusion = confusion_at(values, labels, threshold)
    fpr, tpr, _ = roc_curve(values, labels)
    return ImageLevelReport(
        n_positive=sum(labels),
        n_negative=len(labels) - sum(labels),
        threshold=threshold,
        sensitivity=confusion.sensitivity,
        specificity=confusion.specificity,
        matrix=confusion.as_matrix(),
        auc=roc_auc(values, labels),
        fpr=[float(x) for x in fpr],
        tpr=[float(x) for x in tpr],
    )


@dataclass(frozen=True)
class Comparison:
    """Two versions scored on the images both have predicted and someone labelled."""

    version_a: int
    version_b: int
    image_ids: list[int]
    dice_a: list[float]
    dice_b: list[float]

    @property
    def mean_a(self) -> float | None:
        return float(np.mean(self.dice_a)) if self.dice_a else None

    @property
    def mean_b(self) -> float | None:
        return float(np.mean(self.dice_b)) if self.dice_b else None

    @property
    def b_better(self) -> int:
        return sum(b > a for a, b in zip(self.dice_a, self.dice_b, strict=True))


def compare_versions(
    ws: Workspace,
    version_a: int,
    version_b: int,
    threshold: float = 0.5,
    truth_reader: str | None = None,
) -> Comparison:
    """Per-image Dice of both versions on the same labelled images (against `truth_reader`'s
    labels, or the newest labels of any reader)."""
    rows_a = {r.image_id: r for r in review_rows(ws, version_a, threshold, truth_reader)}
    rows_b = {r.image_id: r for r in review_rows(ws, version_b, threshold, truth_reader)}
    common = sorted(i for i in rows_a.keys() & rows_b.keys() if _scored(rows_a[i], rows_b[i]))
    return Comparison(
        version_a,
        version_b,
        common,
        [rows_a[i].dice for i in common],
        [rows_b[i].dice for i in common],
    )


def _scored(a: ReviewRow, b: ReviewRow) -> bool:
    return a.dice is not None and b.dice is not None


def predicted_image_ids(ws: Workspace, version_id: int) -> set[int]:
    with ws.sessions() as s:
        return set(
            s.scalars(select(Prediction.image_id).where(Prediction.model_version_id == version_id))
        )
