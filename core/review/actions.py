"""Review actions. They append: accepting a prediction saves a revision marked as coming from
the model version; rejecting and signing off add Review rows. Nothing is overwritten."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core.accounts import audit, require
from core.labels.revisions import RevisionInfo, latest_revision, save_revision
from core.ml.metrics import above_threshold
from core.review.overlay import mask_to_shapes
from core.review.view import read_probability
from core.versions import get_version
from core.vocab import REVIEW_DECISIONS, REVIEWER_ROLES
from core.workspace import Workspace
from db.models import AnnotationRevision, Image, Reader, Review


@dataclass(frozen=True)
class ReviewInfo:
    id: int
    image_id: int
    reader: str
    model_version_id: int | None
    decision: str
    comment: str | None
    created_at: datetime
    revision_id: int | None = None  # the adjudicated revision


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
    revision_id: int | None = None,
) -> ReviewInfo:
    if decision not in REVIEW_DECISIONS:
        raise ValueError(f"unknown decision {decision!r}; one of {', '.join(REVIEW_DECISIONS)}")
    with ws.sessions.begin() as s:
        rd = s.scalar(select(Reader).where(Reader.name == reader))
        if rd is None:
            raise ValueError(f"unknown reader {reader!r}; pick a reader in the sidebar")
        image = s.get(Image, image_id)
        if image is None:
            raise ValueError(f"image {image_id} is not in this workspace")
        if decision == "adjudicated":
            if rd.role not in REVIEWER_ROLES:
                raise PermissionError(
                    f"{reader} is an {rd.role}: only a reviewer or an admin can adjudicate"
                )
            rev = s.get(AnnotationRevision, revision_id) if revision_id is not None else None
            if rev is None or rev.image_id != image_id:
                raise ValueError(f"revision {revision_id} is not a revision of image {image_id}")
        row = Review(
            image_id=image_id,
            reader_id=rd.id,
            model_version_id=version_id,
            revision_id=revision_id,
            decision=decision,
            comment=(comment or "").strip() or None,
        )
        s.add(row)
        if decision == "signed_off":
            image.status = "reviewed"
        s.flush()
        return ReviewInfo(
            row.id, image_id, reader, version_id, decision, row.comment, row.created_at,
            revision_id,
        )  # fmt: skip


def accept_prediction(
    ws: Workspace,
    image_id: int,
    version_id: int,
    reader: str,
    threshold: float = 0.5,
    comment: str | None = None,
) -> RevisionInfo:
    """Save the prediction as `reader`'s annotation: a revision with source "model" and the
    version id, keeping the reader's shapes of other labels. Returns the new revision.
    `reader` is the account reviewing (PermissionDenied unless it may review)."""
    require(ws, reader, "review")
    note = comment or f"accepted prediction of model version {version_id}"
    revision = _save_prediction(ws, image_id, version_id, reader, threshold, "model", note)
    _add_review(ws, image_id, reader, "accepted", version_id, comment)
    audit(ws, reader, "accept", f"image {image_id}", {"model_version": version_id})
    return revision


def start_correction(
    ws: Workspace, image_id: int, version_id: int, reader: str, threshold: float = 0.5
) -> RevisionInfo:
    """Pre-annotation: save the prediction as the reader's newest revision (source "model",
    tool "pre-annotation") so the annotator opens on it; the reader's corrected save follows
    as a normal revision based on it. PermissionDenied unless `reader` may review."""
    require(ws, reader, "review")
    note = f"prediction of model version {version_id}, to be corrected"
    revision = _save_prediction(ws, image_id, version_id, reader, threshold, "pre-annotation", note)
    _add_review(ws, image_id, reader, "corrected", version_id, "opened in the annotator")
    audit(ws, reader, "correct", f"image {image_id}", {"model_version": version_id})
    return revision


def reject_prediction(
    ws: Workspace, image_id: int, version_id: int, reader: str, comment: str | None = None
) -> ReviewInfo:
    """Record that the prediction is wrong; the reader's labels stay as they are.
    PermissionDenied unless `reader` may review."""
    require(ws, reader, "review")
    get_version(ws, version_id)
    review = _add_review(ws, image_id, reader, "rejected", version_id, comment)
    audit(ws, reader, "reject", f"image {image_id}", {"model_version": version_id})
    return review


def sign_off(
    ws: Workspace,
    image_id: int,
    reader: str,
    comment: str | None = None,
    version_id: int | None = None,
) -> ReviewInfo:
    """Reviewer sign-off of an image's labels; the image's status becomes "reviewed".
    PermissionDenied unless `reader` may review."""
    require(ws, reader, "review")
    review = _add_review(ws, image_id, reader, "signed_off", version_id, comment)
    audit(ws, reader, "sign_off", f"image {image_id}", {"model_version": version_id})
    return review


def adjudicate(
    ws: Workspace, image_id: int, revision_id: int, reviewer: str, comment: str | None = None
) -> ReviewInfo:
    """A reviewer makes one revision (any reader's, a model-made one too) the image's reference
    standard for training and review, until a later adjudication. Raises PermissionError for
    an annotator (PermissionDenied, a PermissionError, once the workspace has accounts),
    ValueError for a revision of another image."""
    require(ws, reviewer, "review")
    review = _add_review(
        ws, image_id, reviewer, "adjudicated", None, comment, revision_id=revision_id
    )
    audit(ws, reviewer, "adjudicate", f"image {image_id}", {"revision_id": revision_id})
    return review


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
                r.id,
                r.image_id,
                name,
                r.model_version_id,
                r.decision,
                r.comment,
                r.created_at,
                r.revision_id,
            )  # fmt: skip
            for r, name in rows
        ]
