"""Review of one image under a model version: prediction in red over ground truth in blue,
their overlap in purple, so misses (blue), false alarms (red) and agreement (purple) read at a
glance, with per-image Dice/IoU and component boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy import func, select

from core.labels.catalog import display_image
from core.labels.reference import labelled_images
from core.labels.revisions import others_visible_to
from core.ml.metrics import Box, above_threshold, components_to_boxes, pixel_counts
from core.review.overlay import draw_boxes, overlay
from core.versions import get_version
from core.workspace import Workspace
from db.models import AnnotationRevision, Image, ImageFinding, Prediction, Review


@dataclass(frozen=True)
class ImageReview:
    """Everything the review page draws for one image under one model version."""

    image_id: int
    display_name: str
    version_id: int
    label: str
    threshold: float
    gray: np.ndarray  # display rendition, uint8
    probability: np.ndarray  # at display size, float32 in [0, 1]
    truth: np.ndarray | None  # at display size, bool; None when the image has no reference
    truth_reader: str | None  # whose labels are the reference (the first voter)
    truth_reason: str | None  # which rule of the reference standard chose them, in words
    scale: float  # display pixels per original pixel
    boxes: list[Box]  # original pixels
    dice: float | None
    iou: float | None
    pixel_accuracy: float | None
    score: float
    uncertainty: float

    @property
    def prediction(self) -> np.ndarray:
        return self.probability > self.threshold

    def render(self, opacity: float = 0.5, boxes: bool = True) -> np.ndarray:
        rgb = overlay(self.gray, self.prediction, self.truth, opacity)
        return draw_boxes(rgb, self.boxes, self.scale) if boxes else rgb


def read_probability(ws: Workspace, version_id: int, image_id: int) -> np.ndarray:
    """The stored probability map (float32 in [0, 1], original size). LookupError if none."""
    with ws.sessions() as s:
        rel = s.scalar(
            select(Prediction.probability_path).where(
                Prediction.model_version_id == version_id, Prediction.image_id == image_id
            )
        )
    if rel is None:
        raise LookupError(
            f"model version {version_id} has no prediction for image {image_id}; "
            "run a prediction job for this version first"
        )
    data = cv2.imread(str(ws.store_dir / rel), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise LookupError(f"prediction file {rel} is missing or unreadable; predict again")
    return data.astype(np.float32) / 255.0


def _resize_to(array: np.ndarray, shape: tuple[int, int], nearest: bool) -> np.ndarray:
    if array.shape == shape:
        return array
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    out = cv2.resize(array.astype(np.float32), (shape[1], shape[0]), interpolation=interp)
    return out > 0.5 if nearest else out


def load_review(
    ws: Workspace,
    image_id: int,
    version_id: int,
    threshold: float = 0.5,
    truth_reader: str | None = None,
    max_side: int = 1024,
    viewer: str | None = None,
) -> ImageReview:
    """Image, stored prediction and reference labels of one image, scored at `threshold`.
    truth_reader: None = the reference standard (core.labels.reference), "consensus", or a
    reader's name. A `viewer` who may not see other readers' labels (an annotator, where the
    admin hides them: core.labels.revisions.others_visible_to) is shown their own labels as
    the ground truth, whatever truth_reader says.

    Dice/IoU are computed at the original resolution; the arrays returned are display-sized.
    """
    if viewer is not None and not others_visible_to(ws, viewer):
        truth_reader = viewer
    version = get_version(ws, version_id)
    prob = read_probability(ws, version_id, image_id)
    gray = display_image(ws, image_id, max_side=max_side)
    found = labelled_images(ws, version.label, truth_reader, image_ids=[image_id])
    truth = found[0] if found else None
    dice = iou = accuracy = None
    truth_small = None
    predicted = above_threshold(prob, threshold)
    if truth is not None:
        mask = truth.mask(version.label)
        counts = pixel_counts(predicted, mask)
        dice, iou, accuracy = counts.dice, counts.iou, counts.pixel_accuracy
        truth_small = _resize_to(mask, gray.shape, nearest=True)
    with ws.sessions() as s:
        pred_row = s.scalar(
            select(Prediction).where(
                Prediction.model_version_id == version_id, Prediction.image_id == image_id
            )
        )
        name = s.get(Image, image_id).display_name
        uncertainty = pred_row.uncertainty
    return ImageReview(
        image_id=image_id,
        display_name=name,
        version_id=version_id,
        label=version.label,
        threshold=threshold,
        gray=gray,
        probability=_resize_to(prob, gray.shape, nearest=False),
        truth=truth_small,
        truth_reader=truth.readers[0] if truth and truth.readers else None,
        truth_reason=truth.reason if truth else None,
        scale=gray.shape[1] / prob.shape[1],
        boxes=components_to_boxes(prob, threshold),
        dice=dice,
        iou=iou,
        pixel_accuracy=accuracy,
        score=float(prob.max()) if prob.size else 0.0,
        uncertainty=uncertainty,
    )


def versions_with_predictions(ws: Workspace) -> list[int]:
    """Version ids that have stored predictions, newest first."""
    with ws.sessions() as s:
        return list(
            s.scalars(
                select(Prediction.model_version_id)
                .distinct()
                .order_by(Prediction.model_version_id.desc())
            )
        )


def review_stamp(ws: Workspace, version_id: int) -> tuple:
    """Changes whenever labels, findings or this version's predictions change: a cache key
    for the worklist scores, cheap to read on every page run."""
    with ws.sessions() as s:
        return (
            s.scalar(select(func.max(AnnotationRevision.id))),
            s.scalar(select(func.max(ImageFinding.id))),
            s.scalar(select(func.max(Review.id))),  # adjudications change the reference
            s.scalar(
                select(func.count(Prediction.id)).where(Prediction.model_version_id == version_id)
            ),
            s.scalar(
                select(func.max(Prediction.created_at)).where(
                    Prediction.model_version_id == version_id
                )
            ),
        )
