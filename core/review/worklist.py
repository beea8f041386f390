"""The review worklist: one row per predicted image with the scores it can be sorted by, and
the ordering strategies (lowest Dice, uncertainty, disagreement) that put the most
informative images first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.labels.reference import labelled_images
from core.ml.metrics import above_threshold, pixel_counts
from core.review.view import read_probability
from core.versions import get_version
from core.workspace import Workspace
from db import queries
from db.models import AnnotationRevision, Image, Prediction, Review


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
    """image -> {reader: newest revision}, newest reader first."""
    out: dict[int, dict[str, AnnotationRevision]] = defaultdict(dict)
    for rev, name in queries.newest_per_reader(s, AnnotationRevision, image_ids=image_ids):
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
    """One row per image the version has predicted, with the scores the worklist sorts by.
    Dice is against the reference standard (core.labels.reference; truth_reader as there)."""
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
            stmt = stmt.where(queries.among(s, Prediction.image_id, image_ids))
        preds = s.execute(stmt).all()
        ids = [p.image_id for p, *_ in preds]
        by_reader = _newest_by_reader(s, ids)
        decisions: dict[int, list[str]] = defaultdict(list)
        for image_id, decision in s.execute(
            select(Review.image_id, Review.decision)
            .where(queries.among(s, Review.image_id, ids))
            .order_by(Review.id)
        ):
            decisions[image_id].append(decision)
    references = {li.image_id: li for li in labelled_images(ws, label, truth_reader, image_ids=ids)}
    rows = []
    for pred, name, width, height in preds:
        prob = read_probability(ws, version_id, pred.image_id)
        predicted = above_threshold(prob, threshold)
        reader_masks = {
            reader: label_mask([shape_from_dict(d) for d in rev.shapes], (width, height), label)
            for reader, rev in by_reader.get(pred.image_id, {}).items()
            if any(d.get("label") == label for d in rev.shapes)
        }
        ref = references.get(pred.image_id)
        reference = ref.mask(label) if ref is not None else None
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


@dataclass(frozen=True)
class Ordering:
    """A worklist ordering strategy: a description and the value it sorts by (None: the row
    lacks what the strategy needs, and goes last). Most informative first."""

    description: str
    value: Callable[[ReviewRow], float | None]
    descending: bool = True


ORDERINGS: dict[str, Ordering] = {
    "lowest_dice": Ordering(
        "Lowest Dice first (model misses or over-calls the labels)",
        lambda r: r.dice,
        descending=False,
    ),
    "uncertainty": Ordering(
        "Most uncertain first (mean entropy of the probability map)", lambda r: r.uncertainty
    ),
    "reader_disagreement": Ordering(
        "Readers disagree most first (1 - mean Dice between readers)",
        lambda r: r.reader_disagreement,
    ),
    "model_disagreement": Ordering(
        "Model disagrees most with any reader first", lambda r: r.model_disagreement
    ),
    "image": Ordering("Image order", lambda r: float(r.image_id), descending=False),
}
ORDERS: dict[str, str] = {name: o.description for name, o in ORDERINGS.items()}


def order_rows(rows: Sequence[ReviewRow], order: str) -> list[ReviewRow]:
    """Most informative first; rows without the needed labels go last, in image order."""
    if order not in ORDERINGS:
        raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERINGS)}")
    strategy = ORDERINGS[order]

    def key(r: ReviewRow) -> tuple:
        value = strategy.value(r)
        if value is None:
            return (True, 0.0, r.image_id)
        return (False, -value if strategy.descending else value, r.image_id)

    return sorted(rows, key=key)
