"""Review of a model version's predictions against the readers' labels.

The overlay is what a clinician checks first: prediction in red over ground truth in blue, their
overlap in purple, so misses (blue), false alarms (red) and agreement (purple) read at a glance.
Actions append: accepting a prediction saves a revision marked as coming from the model version;
rejecting and signing off add Review rows. Nothing is overwritten.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import func, select

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.annotating import RevisionInfo, latest_revision, save_revision
from core.catalog import display_image
from core.metrics import Box, above_threshold, components_to_boxes, pixel_counts
from core.overlay import draw_boxes, mask_to_shapes, overlay
from core.registry import get_version
from core.workspace import Workspace
from db.models import (
    AnnotationRevision,
    Image,
    ImageFinding,
    Prediction,
    Reader,
    Review,
)

NEGATIVE_FINDINGS = ("reviewed_no_finding", "no_pneumonia")

ORDERS = {
    "lowest_dice": "Lowest Dice first (model misses or over-calls the labels)",
    "uncertainty": "Most uncertain first (mean entropy of the probability map)",
    "reader_disagreement": "Readers disagree most first (1 - mean Dice between readers)",
    "model_disagreement": "Model disagrees most with any reader first",
    "image": "Image order",
}


# --- one image -------------------------------------------------------------------------------


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
    truth: np.ndarray | None  # at display size, bool; None when nobody labelled the image
    truth_reader: str | None
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


@dataclass(frozen=True)
class _Truth:
    reader: str
    shapes: list
    width: int
    height: int
    negative: bool = False

    def mask(self, label: str) -> np.ndarray:
        return label_mask(
            [shape_from_dict(d) for d in self.shapes], (self.width, self.height), label
        )


def _truth_for(ws: Workspace, image_id: int, label: str, reader: str | None) -> _Truth | None:
    """The labels to score against: `reader`'s newest revision (or the newest of anyone's)
    with shapes of `label`; else an explicit negative finding (an empty truth)."""
    with ws.sessions() as s:
        stmt = (
            select(AnnotationRevision, Reader.name)
            .join(Reader, Reader.id == AnnotationRevision.reader_id)
            .where(AnnotationRevision.image_id == image_id)
            .order_by(AnnotationRevision.id.desc())
        )
        if reader is not None:
            stmt = stmt.where(Reader.name == reader)
        newest: dict[str, AnnotationRevision] = {}
        for rev, name in s.execute(stmt):
            newest.setdefault(name, rev)
        for name, rev in newest.items():  # newest first (dicts keep insertion order)
            if any(d.get("label") == label for d in rev.shapes):
                return _Truth(name, list(rev.shapes), rev.image_width, rev.image_height)
        fstmt = (
            select(ImageFinding.finding, Reader.name)
            .join(Reader, Reader.id == ImageFinding.reader_id)
            .where(ImageFinding.image_id == image_id)
            .order_by(ImageFinding.id.desc())
            .limit(1)
        )
        if reader is not None:
            fstmt = fstmt.where(Reader.name == reader)
        finding = s.execute(fstmt).first()
        if finding and finding[0] in NEGATIVE_FINDINGS:
            image = s.get(Image, image_id)
            return _Truth(finding[1], [], image.width, image.height, negative=True)
    return None


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
) -> ImageReview:
    """Image, stored prediction and labels of one image, scored at `threshold`.

    Dice/IoU are computed at the original resolution; the arrays returned are display-sized.
    """
    version = get_version(ws, version_id)
    prob = read_probability(ws, version_id, image_id)
    gray = display_image(ws, image_id, max_side=max_side)
    truth = _truth_for(ws, image_id, version.label, truth_reader)
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
        truth_reader=truth.reader if truth else None,
        scale=gray.shape[1] / prob.shape[1],
        boxes=components_to_boxes(prob, threshold),
        dice=dice,
        iou=iou,
        pixel_accuracy=accuracy,
        score=float(prob.max()) if prob.size else 0.0,
        uncertainty=uncertainty,
    )


# --- Grad-CAM ----------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _cached_model(root: str, version_id: int, checkpoint: str):
    from core.checkpoint import load_model

    model, _spec, meta = load_model(Path(root) / checkpoint, "cpu")
    return model, meta


def gradcam_heatmap(
    ws: Workspace, image_id: int, version_id: int, threshold: float = 0.5
) -> np.ndarray:
    """Grad-CAM heatmap (float32 in [0, 1], original size) of what drove the predicted region.

    Runs on the CPU of the app process: one image takes about a second at 512 px, far less
    than a job round trip, and keeps the worker free for training.
    """
    from core.catalog import training_pixels
    from core.gradcam import SegmentationGradCam

    version = get_version(ws, version_id)
    model, meta = _cached_model(str(ws.root), version.id, version.checkpoint_path)
    image = training_pixels(ws, image_id)
    with SegmentationGradCam(
        model, size=meta.size, normalisation=meta.normalisation, threshold=threshold
    ) as cam:
        return cam.heatmap(image)


# --- the worklist ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRow:
    image_id: int
    display_name: str
    dice: float | None  # prediction vs the reference labels (None: no labels)
    uncertainty: float  # mean entropy (bits)
    score: float  # image-level score (max probability)
    n_boxes: int
    reader_disagreement: float | None  # 1 - mean pairwise Dice of readers (None: < 2 readers)
    model_disagreement: float | None  # max over readers of 1 - Dice(model, reader)
    reviews: tuple[str, ...] = field(default=())  # decisions already taken, oldest first


def _newest_by_reader(s, image_ids: Sequence[int]) -> dict[int, dict[str, AnnotationRevision]]:
    newest = (
        select(func.max(AnnotationRevision.id).label("rid"))
        .where(AnnotationRevision.image_id.in_(image_ids))
        .group_by(AnnotationRevision.image_id, AnnotationRevision.reader_id)
        .subquery()
    )
    out: dict[int, dict[str, AnnotationRevision]] = defaultdict(dict)
    rows = s.execute(
        select(AnnotationRevision, Reader.name)
        .join(newest, newest.c.rid == AnnotationRevision.id)
        .join(Reader, Reader.id == AnnotationRevision.reader_id)
        .order_by(AnnotationRevision.id.desc())
    )
    for rev, name in rows:
        out[rev.image_id][name] = rev
    return out


def _pairwise_disagreement(masks: Sequence[np.ndarray]) -> float | None:
    if len(masks) < 2:
        return None
    dices = [
        pixel_counts(masks[i], masks[j]).dice
        for i in range(len(masks))
        for j in range(i + 1, len(masks))
    ]
    return 1.0 - float(np.mean(dices))


def review_rows(
    ws: Workspace,
    version_id: int,
    threshold: float = 0.5,
    truth_reader: str | None = None,
    image_ids: Sequence[int] | None = None,
) -> list[ReviewRow]:
    """One row per image the version has predicted, with the scores the worklist sorts by."""
    version = get_version(ws, version_id)
    label = version.label
    with ws.sessions() as s:
        stmt = (
            select(Prediction, Image.display_name, Image.width, Image.height)
            .join(Image, Image.id == Prediction.image_id)
            .where(Prediction.model_version_id == version_id)
            .order_by(Prediction.image_id)
        )
        if image_ids is not None:
            stmt = stmt.where(Prediction.image_id.in_(list(image_ids)))
        preds = s.execute(stmt).all()
        ids = [p.image_id for p, *_ in preds]
        by_reader = _newest_by_reader(s, ids)
        negatives = _negatives(s, ids, truth_reader)
        decisions: dict[int, list[str]] = defaultdict(list)
        for image_id, decision in s.execute(
            select(Review.image_id, Review.decision)
            .where(Review.image_id.in_(ids))
            .order_by(Review.id)
        ):
            decisions[image_id].append(decision)
    rows = []
    for pred, name, width, height in preds:
        prob = read_probability(ws, version_id, pred.image_id)
        predicted = above_threshold(prob, threshold)
        reader_masks = {
            reader: label_mask([shape_from_dict(d) for d in rev.shapes], (width, height), label)
            for reader, rev in by_reader.get(pred.image_id, {}).items()
            if any(d.get("label") == label for d in rev.shapes)
        }
        reference = _reference(reader_masks, truth_reader)
        if reference is None and pred.image_id in negatives:
            reference = np.zeros((height, width), dtype=bool)
        model_vs = [1.0 - pixel_counts(predicted, m).dice for m in reader_masks.values()]
        rows.append(
            ReviewRow(
                image_id=pred.image_id,
                display_name=name,
                dice=None if reference is None else pixel_counts(predicted, reference).dice,
                uncertainty=pred.uncertainty,
                score=pred.score,
                n_boxes=len(pred.boxes),
                reader_disagreement=_pairwise_disagreement(list(reader_masks.values())),
                model_disagreement=max(model_vs) if model_vs else None,
                reviews=tuple(decisions.get(pred.image_id, ())),
            )
        )
    return rows


def _reference(masks: dict[str, np.ndarray], reader: str | None) -> np.ndarray | None:
    if reader is not None:
        return masks.get(reader)
    return next(iter(masks.values()), None)  # newest revision first


def _negatives(s, ids: Sequence[int], reader: str | None) -> set[int]:
    newest = select(func.max(ImageFinding.id).label("fid")).where(ImageFinding.image_id.in_(ids))
    if reader is not None:
        newest = newest.join(Reader, Reader.id == ImageFinding.reader_id).where(
            Reader.name == reader
        )
    sub = newest.group_by(ImageFinding.image_id).subquery()
    return set(
        s.scalars(
            select(ImageFinding.image_id)
            .join(sub, sub.c.fid == ImageFinding.id)
            .where(ImageFinding.finding.in_(NEGATIVE_FINDINGS))
        )
    )


def order_rows(rows: Sequence[ReviewRow], order: str) -> list[ReviewRow]:
    """Most informative first; rows without the needed labels go last, in image order."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
    if order == "image":
        return sorted(rows, key=lambda r: r.image_id)
    if order == "uncertainty":
        return sorted(rows, key=lambda r: (-r.uncertainty, r.image_id))

    def key(r: ReviewRow) -> tuple:
        value = {
            "lowest_dice": r.dice,
            "reader_disagreement": None
            if r.reader_disagreement is None
            else -r.reader_disagreement,
            "model_disagreement": None if r.model_disagreement is None else -r.model_disagreement,
        }[order]
        return (value is None, value if value is not None else 0.0, r.image_id)

    return sorted(rows, key=key)


# --- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewInfo:
    id: int
    image_id: int
    reader: str
    model_version_id: int | None
    decision: str
    comment: str | None
    created_at: datetime


def prediction_shapes(
    ws: Workspace, image_id: int, version_id: int, threshold: float = 0.5
) -> list[dict]:
    """The prediction at `threshold` as polygons of the version's label (original pixels)."""
    version = get_version(ws, version_id)
    prob = read_probability(ws, version_id, image_id)
    return mask_to_shapes(above_threshold(prob, threshold), version.label)


def _save_prediction(
    ws: Workspace,
    image_id: int,
    version_id: int,
    reader: str,
    threshold: float,
    tool: str,
    comment: str,
) -> RevisionInfo:
    """Save the reader's newest shapes with this version's label replaced by the prediction's
    polygons, as a revision with source "model" and the version id."""
    version = get_version(ws, version_id)
    current = latest_revision(ws, image_id, reader)
    kept = [d for d in (current.shapes if current else []) if d.get("label") != version.label]
    predicted = prediction_shapes(ws, image_id, version.id, threshold)
    if not predicted:
        raise ValueError(
            f"the prediction has no {version.label!r} region above threshold {threshold:.2f}; "
            "lower the threshold, or reject the prediction instead"
        )
    saved = save_revision(
        ws,
        image_id,
        reader,
        kept + predicted,
        based_on=current.revision if current else None,
        tool=tool,
        source="model",
        model_version_id=version.id,
        comment=comment,
    )
    return saved.revision


def _add_review(
    ws: Workspace,
    image_id: int,
    reader: str,
    decision: str,
    version_id: int | None,
    comment: str | None,
) -> ReviewInfo:
    with ws.sessions.begin() as s:
        rd = s.scalar(select(Reader).where(Reader.name == reader))
        if rd is None:
            raise ValueError(f"unknown reader {reader!r}; pick a reader in the sidebar")
        image = s.get(Image, image_id)
        if image is None:
            raise ValueError(f"image {image_id} is not in this workspace")
        row = Review(
            image_id=image_id,
            reader_id=rd.id,
            model_version_id=version_id,
            decision=decision,
            comment=(comment or "").strip() or None,
        )
        s.add(row)
        if decision == "signed_off":
            image.status = "reviewed"
        s.flush()
        return ReviewInfo(
            row.id, image_id, reader, version_id, decision, row.comment, row.created_at
        )


def accept_prediction(
    ws: Workspace,
    image_id: int,
    version_id: int,
    reader: str,
    threshold: float = 0.5,
    comment: str | None = None,
) -> RevisionInfo:
    """Save the prediction as `reader`'s annotation: a revision with source "model" and the
    version id, keeping the reader's shapes of other labels. Returns the new revision."""
    note = comment or f"accepted prediction of model version {version_id}"
    revision = _save_prediction(ws, image_id, version_id, reader, threshold, "model", note)
    _add_review(ws, image_id, reader, "accepted", version_id, comment)
    return revision


def start_correction(
    ws: Workspace, image_id: int, version_id: int, reader: str, threshold: float = 0.5
) -> RevisionInfo:
    """Pre-annotation: save the prediction as the reader's newest revision (source "model",
    tool "pre-annotation") so the annotator opens on it; the reader's corrected save follows
    as a normal revision based on it."""
    note = f"prediction of model version {version_id}, to be corrected"
    revision = _save_prediction(ws, image_id, version_id, reader, threshold, "pre-annotation", note)
    _add_review(ws, image_id, reader, "corrected", version_id, "opened in the annotator")
    return revision


def reject_prediction(
    ws: Workspace, image_id: int, version_id: int, reader: str, comment: str | None = None
) -> ReviewInfo:
    """Record that the prediction is wrong; the reader's labels stay as they are."""
    get_version(ws, version_id)
    return _add_review(ws, image_id, reader, "rejected", version_id, comment)


def sign_off(
    ws: Workspace,
    image_id: int,
    reader: str,
    comment: str | None = None,
    version_id: int | None = None,
) -> ReviewInfo:
    """Reviewer sign-off of an image's labels; the image's status becomes "reviewed"."""
    return _add_review(ws, image_id, reader, "signed_off", version_id, comment)


def review_history(ws: Workspace, image_id: int) -> list[ReviewInfo]:
    with ws.sessions() as s:
        rows = s.execute(
            select(Review, Reader.name)
            .join(Reader, Reader.id == Review.reader_id)
            .where(Review.image_id == image_id)
            .order_by(Review.id)
        ).all()
        return [
            ReviewInfo(
                r.id, r.image_id, name, r.model_version_id, r.decision, r.comment, r.created_at
            )
            for r, name in rows
        ]


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
            s.scalar(
                select(func.count(Prediction.id)).where(Prediction.model_version_id == version_id)
            ),
            s.scalar(
                select(func.max(Prediction.created_at)).where(
                    Prediction.model_version_id == version_id
                )
            ),
        )
