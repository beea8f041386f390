"""The reference standard: per image, the labels that count as truth for training, review
Dice and the Models page — one rule, used by all of them.

Per image and label, in order:
1. a reviewer's adjudicated revision (the newest adjudication of the image), if it has shapes
   of the label;
2. otherwise the human readers' labels: the consensus (pixel-wise majority) of every reader's
   newest human revision, or the newest of them (the default), or one named reader's;
3. otherwise, for finding labels (not anatomy), an explicit negative finding ("reviewed: no
   finding", "no pneumonia") is an empty mask.

"Human" revisions are drawn, imported or corrected ones (core.labels.provenance). A prediction
accepted as it was, or opened for correction and not yet corrected, is model output: it is not
truth until a reviewer adjudicates it, unless the caller opts in (include_model) — so a model
is never trained or scored on its own predictions by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.labels.provenance import Origin
from core.vocab import ANATOMY_LABELS, CONSENSUS, FINDINGS, says_absent
from core.workspace import Workspace
from db import queries
from db.models import (
    AnnotationRevision,
    Image,
    ImageFinding,
    LabelClass,
    ModelVersion,
    Reader,
    Review,
)


@dataclass(frozen=True)
class LabelledImage:
    """One image usable for `label`, with the shapes its reference mask is drawn from.

    shape_sets holds one list of `label` shapes per voting revision (one unless the consensus
    rule is used); an explicit negative has an empty list. revision_ids are those revisions,
    for the model version's data snapshot. reason says which rule chose them, in plain words.
    """

    image_id: int
    revision_ids: tuple[int, ...]
    patient_key: str | None
    content_hash: str
    width: int
    height: int
    shape_sets: tuple[tuple[dict, ...], ...]
    reason: str = ""
    readers: tuple[str, ...] = ()  # who voted, in shape_sets order

    def mask(self, label: str) -> np.ndarray:
        """The reference mask (original size): the one rasteriser, majority of the votes."""
        size = (self.width, self.height)
        votes = [label_mask([shape_from_dict(d) for d in shapes], size, label)
                 for shapes in self.shape_sets]  # fmt: skip
        return consensus_mask(votes)

    @property
    def negative(self) -> bool:
        """No `label` region: every vote empty, or (consensus) no majority of votes with one."""
        return sum(bool(s) for s in self.shape_sets) * 2 <= len(self.shape_sets)


def _check_label(s, label: str) -> None:
    names = sorted(s.scalars(select(LabelClass.name)))
    if label not in names:
        raise ValueError(f"unknown label {label!r}; labels in this workspace: {', '.join(names)}")


def _reader_id(s, reader: str | None) -> int | None:
    if reader is None or reader == CONSENSUS:
        return None
    rd = queries.reader_by_name(s, reader)
    if rd is None:
        known = ", ".join(sorted(s.scalars(select(Reader.name))))
        raise ValueError(f"unknown reader {reader!r}; readers: {known}, or {CONSENSUS}")
    return rd.id


def _aware(when: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones: compare them alike."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _has(rev: AnnotationRevision, label: str) -> bool:
    return any(d.get("label") == label for d in rev.shapes)


def _describe(rev: AnnotationRevision, reader: str) -> str:
    origin = Origin(rev.origin, rev.model_version_id).describe()
    return f"revision {rev.revision} of {reader} ({origin})"


def _adjudications(s, image_ids: Sequence[int] | None) -> dict[int, tuple[int, str]]:
    """image -> (revision id, reviewer) of its newest adjudication."""
    stmt = (
        select(Review.image_id, Review.revision_id, Reader.name)
        .join(Reader, Reader.id == Review.reader_id)
        .where(Review.decision == "adjudicated", Review.revision_id.is_not(None))
        .order_by(Review.id)
    )
    if image_ids is not None:
        stmt = stmt.where(queries.among(s, Review.image_id, image_ids))
    return {image_id: (rev_id, name) for image_id, rev_id, name in s.execute(stmt)}


def labelled_images(
    ws: Workspace,
    label: str,
    reader: str | None = None,
    *,
    image_ids: Sequence[int] | None = None,
    include_model: bool = False,
) -> list[LabelledImage]:
    """The reference standard of `label` for every image that has one (or only `image_ids`).

    reader: None = adjudicated, else the newest human revision; CONSENSUS = adjudicated, else
    the majority of every human reader's newest; a reader's name = that reader's newest (an
    explicit choice: no adjudication overrides it). include_model: let model-made revisions
    count as human ones. Raises ValueError for an unknown label or reader.
    """
    consensus = reader == CONSENSUS
    named = reader is not None and not consensus
    with ws.sessions() as s:
        _check_label(s, label)
        reader_id = _reader_id(s, reader)
        pinned = {} if named else _adjudications(s, image_ids)
        pinned_revs = {
            r.id: r
            for r in s.scalars(
                select(AnnotationRevision).where(
                    queries.among(s, AnnotationRevision.id, [rid for rid, _ in pinned.values()])
                )
            )
        }
        names = dict(s.execute(select(Reader.id, Reader.name)).all())
        model_labels = dict(s.execute(select(ModelVersion.id, ModelVersion.label)).all())

        def human(rev: AnnotationRevision) -> bool:
            # Only the model's own label in a model-made revision is model output: the
            # reader's shapes of other labels, carried over when they accepted it, are theirs.
            if include_model or not Origin(rev.origin).from_model:
                return True
            if rev.model_version_id is None:  # an unknown model's (an imported export's):
                return False  # which of its labels the model made is not known
            return model_labels.get(rev.model_version_id) != label

        # Each reader's newest revision and finding per image (the newest first). A reader
        # whose newest revision holds the model's output of `label` has no human vote on it.
        votes: dict[int, list[AnnotationRevision]] = {}
        drawn_at: dict[tuple[int, int], object] = {}  # (image, reader) -> newest shapes' time
        for rev, _name in queries.newest_per_reader(
            s, AnnotationRevision, image_ids=image_ids, reader_id=reader_id
        ):
            if _has(rev, label):
                drawn_at[(rev.image_id, rev.reader_id)] = rev.created_at
                if human(rev):
                    votes.setdefault(rev.image_id, []).append(rev)
        findings: dict[int, list[ImageFinding]] = {}
        if label not in ANATOMY_LABELS:
            for f, _name in queries.newest_per_reader(
                s, ImageFinding, image_ids=image_ids, reader_id=reader_id
            ):
                drew = drawn_at.get((f.image_id, f.reader_id))
                if drew is not None and _aware(drew) > _aware(f.created_at):
                    continue  # the reader's newer shapes of `label` outdate their finding
                findings.setdefault(f.image_id, []).append(f)
        chosen: dict[int, tuple[list[AnnotationRevision], list[ImageFinding], str]] = {}
        for image_id in sorted(set(votes) | set(findings) | set(pinned)):
            pin = pinned.get(image_id)
            rev = pinned_revs.get(pin[0]) if pin else None
            if rev is not None and (_has(rev, label) or label not in ANATOMY_LABELS):
                # An adjudicated revision without `label` says the finding is absent (for
                # anatomy, which every image shows, it says nothing and the readers decide).
                reason = f"adjudicated by {pin[1]}: {_describe(rev, names[rev.reader_id])}"
                if not _has(rev, label):
                    reason += f", no {label}"
                chosen[image_id] = ([rev], [], reason)
                continue
            revs = votes.get(image_id, [])
            rows = findings.get(image_id, [])
            if consensus:
                drew = {r.reader_id for r in revs}  # a reader who drew shapes has voted
                negatives = [f for f in rows if f.reader_id not in drew]
                negatives = [f for f in negatives if says_absent(f.finding, label)]
                if revs or negatives:
                    count = len(revs) + len(negatives)
                    reason = f"consensus of {count} reader(s)" if count > 1 else ""
                    if count == 1 and revs:
                        reason = f"only reader: {_describe(revs[0], names[revs[0].reader_id])}"
                    elif count == 1:
                        reason = _negative_reason(negatives[0], names)
                    chosen[image_id] = (sorted(revs, key=lambda r: r.id), negatives, reason)
                continue
            if revs:
                # A positive revision outranks a negative finding (drawn shapes are the more
                # specific label).
                newest = max(revs, key=lambda r: r.id)
                what = "newest human revision" if not named else "chosen reader's newest"
                reason = f"{what}: {_describe(newest, names[newest.reader_id])}"
                chosen[image_id] = ([newest], [], reason)
            elif rows:
                newest_f = max(rows, key=lambda f: f.id)
                if says_absent(newest_f.finding, label):
                    chosen[image_id] = ([], [newest_f], _negative_reason(newest_f, names))
        images = {
            im.id: im for im in s.scalars(select(Image).where(queries.among(s, Image.id, chosen)))
        }
        out = []
        for image_id, (revs, negatives, reason) in chosen.items():
            im = images[image_id]
            sets = [tuple(d for d in r.shapes if d.get("label") == label) for r in revs]
            sets += [()] * len(negatives)
            voters = [names[r.reader_id] for r in revs] + [names[f.reader_id] for f in negatives]
            out.append(
                LabelledImage(
                    image_id=image_id,
                    revision_ids=tuple(r.id for r in revs),
                    patient_key=im.patient_key,
                    content_hash=im.content_hash,
                    width=im.width,
                    height=im.height,
                    shape_sets=tuple(sets),
                    reason=reason,
                    readers=tuple(voters),
                )
            )
        return out


def _negative_reason(finding: ImageFinding, names: dict[int, str]) -> str:
    said = FINDINGS.get(finding.finding, finding.finding)
    return f"explicit negative: {names[finding.reader_id]} said {said!r}"


def consensus_mask(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Pixels marked by more than half of the votes (one vote: that mask; two: both)."""
    if len(masks) == 1:
        return masks[0]
    count = np.sum(np.stack(masks), axis=0)
    return count * 2 > len(masks)
