"""The "update" job kind: "Update model" after corrections.

When readers have changed labels since the active version was trained, fine-tune that version
on the current labels with the short "update" recipe, on the changed images plus a replay
sample of the rest (so it does not forget them), validated on the parent's validation images.
Then predict the changed images and the next ones of the review worklist first, the rest
after, and explain the worklist's head (Grad-CAM). The new version's data snapshot records
what changed since the parent: the images whose reference labels are new or different.

Torch-free at import (the Review page submits updates); training and prediction load it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.accounts import audit, require
from core.jobs.queue import submit_job
from core.labels.reference import labelled_images
from core.tasks.submit import TrainRequest
from core.versions import VersionInfo, get_version
from core.workspace import Workspace

if TYPE_CHECKING:
    from core.ml.dataset import TrainItem

REPLAY_IMAGES = 40  # unchanged images trained alongside the changed ones
MAX_VAL_IMAGES = 16  # of the parent's validation images, to choose the epoch
NEXT_IN_WORKLIST = 10  # predicted right after the changed images


@dataclass(frozen=True)
class LabelChanges:
    """What changed since `version` was trained: images whose reference revisions differ
    (changed), images labelled since (added), images whose labels are gone (removed)."""

    version_id: int
    changed: tuple[int, ...]
    added: tuple[int, ...]
    removed: tuple[int, ...]

    @property
    def touched(self) -> tuple[int, ...]:
        """Images to learn from and to predict first: changed and added."""
        return self.changed + self.added

    def to_dict(self) -> dict:
        return {
            "parent_version": self.version_id,
            "changed": list(self.changed),
            "added": list(self.added),
            "removed": list(self.removed),
        }


def _snapshot_revisions(version: VersionInfo) -> dict[int, tuple[int, ...]]:
    snap = version.data_snapshot or {}
    return {
        int(image_id): tuple(revs)
        for part in ("train", "val")
        for image_id, revs in snap.get(part, [])
    }


def label_changes(ws: Workspace, version_ref: int | str = "active") -> LabelChanges:
    """Images whose reference labels (same label, reader rule and model-label setting as the
    version's training) differ from those in the version's data snapshot."""
    version = get_version(ws, version_ref)
    settings = version.settings or {}
    before = _snapshot_revisions(version)
    now = labelled_images(
        ws,
        version.label,
        settings.get("reader"),
        include_model=bool(settings.get("include_model_labels", False)),
    )
    current = {li.image_id: tuple(li.revision_ids) for li in now}
    changed = tuple(i for i in sorted(current) if i in before and current[i] != before[i])
    added = tuple(i for i in sorted(current) if i not in before)
    removed = tuple(i for i in sorted(before) if i not in current)
    return LabelChanges(version.id, changed, added, removed)


def update_request(ws: Workspace, version: VersionInfo, created_by: str | None) -> TrainRequest:
    """The fine-tune request of an update: the parent's label and reference rule, the short
    "update" recipe, activated only if it beats its parent on the parent's validation images
    (current labels, measured before and after the fine-tune in the same run); otherwise the
    parent stays active and the Models page can still activate the update."""
    settings = version.settings or {}
    return TrainRequest(
        label=version.label,
        from_version=version.id,
        reader=settings.get("reader"),
        include_model_labels=bool(settings.get("include_model_labels", False)),
        device=settings.get("device", "auto"),
        seed=int(settings.get("seed", 0)),
        recipe="update",
        activate="if_better",
        created_by=created_by,
    )


def _rank(seed: int, item: TrainItem) -> str:
    return hashlib.sha256(f"{seed}\x00{item.image_id}".encode()).hexdigest()


def update_split(
    items: Sequence[TrainItem],
    touched: Sequence[int],
    parent_val: Sequence[int],
    seed: int = 0,
    replay: int = REPLAY_IMAGES,
    max_val: int = MAX_VAL_IMAGES,
) -> tuple[list[TrainItem], list[TrainItem]]:
    """(train, val) of an update, patient-wise: val is up to max_val of the parent's
    validation images (their patients stay out of training); train is every touched image of
    another patient plus `replay` unchanged ones. ValueError when nothing is left to learn."""
    from core.ml.dataset import patient_of

    parent_val_set = set(parent_val)
    val = sorted(
        (it for it in items if it.image_id in parent_val_set), key=lambda i: _rank(seed, i)
    )
    val = val[:max_val]
    val_patients = {patient_of(it) for it in val}
    usable = [it for it in items if patient_of(it) not in val_patients]
    touched_set = set(touched)
    learn = [it for it in usable if it.image_id in touched_set]
    if not learn:
        raise ValueError(
            "the changed labels are all on validation patients of the active version; "
            "train a new version to learn from them"
        )
    others = sorted(
        (it for it in usable if it.image_id not in touched_set), key=lambda i: _rank(seed, i)
    )
    train_set = learn + others[:replay]
    if len(train_set) < 2:
        raise ValueError("need at least 2 training images for an update; label more images")
    if not val:  # a parent without a stored split: hold out one patient of the replay
        raise ValueError("the active version has no validation images to check an update on")
    return train_set, val


def update_model(
    ws: Workspace,
    version_ref: int | str = "active",
    created_by: str | None = None,
    progress=None,
) -> tuple[VersionInfo, LabelChanges]:
    """Fine-tune `version_ref` on what changed since it was trained and register the result
    (activated if it beats its parent: update_request). ValueError when no labels changed."""
    from core.tasks.train import train

    require(ws, created_by, "train")
    parent = get_version(ws, version_ref)
    changes = label_changes(ws, parent.id)
    if not changes.touched:
        raise ValueError(
            f"no labels changed since version {parent.id} was trained; nothing to update"
        )
    req = update_request(ws, parent, created_by)
    parent_val = [int(i) for i, _ in (parent.data_snapshot or {}).get("val", [])]
    version = train(
        ws,
        req,
        progress,
        split=lambda items: update_split(items, changes.touched, parent_val, req.seed),
        snapshot_extra={"since_parent": changes.to_dict(), "rule": "update"},
    )
    assert version is not None, "updates run in one process, never under torchrun"
    return version, changes


def submit_update(ws: Workspace, created_by: str | None, version_ref: int | str = "active") -> int:
    """Queue "Update model" for the active version (PermissionDenied unless created_by may
    train; ValueError when no labels changed since it was trained). Returns the job id."""
    require(ws, created_by, "train")
    version = get_version(ws, version_ref)
    if not label_changes(ws, version.id).touched:
        raise ValueError(
            f"no labels changed since version {version.id} was trained; nothing to update"
        )
    job = submit_job(ws, "update", {"model": version.id, "created_by": created_by}, created_by)
    audit(ws, created_by, "train", f"job {job}", {"kind": "update", "model_version": version.id})
    return job


def refresh_order(ws: Workspace, parent_id: int, touched: Sequence[int], n_next: int) -> list[int]:
    """Images to predict first after an update: the touched ones, then the next ones of the
    parent's worklist (the page the reader was working through)."""
    from core.tasks.predict import worklist_head

    head = list(dict.fromkeys(touched))
    try:
        upcoming = worklist_head(ws, parent_id, len(head) + n_next)
    except LookupError:
        upcoming = []
    return head + [i for i in upcoming if i not in set(head)][:n_next]


def _score(dice: float | None) -> str:
    return "unknown" if dice is None else f"{dice:.4f}"


def run_update_job(ws: Workspace, job_id: int, settings: dict, reporter) -> dict:
    """The "update" job: fine-tune, then predict the changed images and the next ones of the
    worklist first, the rest after, then Grad-CAM for the worklist's head."""
    from core.review.explain import REVIEW_FIRST_PAGE, precompute_heatmaps
    from core.tasks.predict import predict_workspace, worklist_head

    version, changes = update_model(
        ws, settings.get("model", "active"), settings.get("created_by"), reporter
    )
    dice, parent_dice = version.metrics.get("dice"), version.metrics.get("parent_dice")
    reporter.on_log(
        f"version {version.id}: fine-tuned version {changes.version_id} on "
        f"{len(changes.touched)} changed image(s); validation Dice {_score(dice)} against "
        f"the parent's {_score(parent_dice)} on the same images: "
        + (
            "activated"
            if version.is_active
            else f"version {changes.version_id} stays active (the Models page can activate "
            f"version {version.id})"
        )
    )
    first = refresh_order(ws, changes.version_id, changes.touched, NEXT_IN_WORKLIST)

    def first_done(n: int) -> None:
        reporter.on_log(f"predictions refreshed for the {n} changed and next images")

    result = predict_workspace(
        ws,
        version.id,
        device=settings.get("device", "auto"),
        progress=reporter.set_progress,
        should_stop=reporter.should_stop,
        first=first,
        on_first_done=first_done,
    )
    explained = precompute_heatmaps(
        ws, version.id, worklist_head(ws, version.id, REVIEW_FIRST_PAGE), 0.5, reporter.should_stop
    )
    return {
        "model_version": version.id,
        "parent_version": changes.version_id,
        "activated": version.is_active,
        "val_dice": dice,
        "parent_val_dice": parent_dice,
        "changed": list(changes.touched),
        "predicted_first": first,
        "predicted": result["predicted"],
        "gradcam_precomputed": explained,
    }
