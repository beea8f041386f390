"""Which labels a training run learns from: per image, the revision(s) and findings that count.

The rule is one per request: a named reader's newest labels, the newest of any reader, or the
consensus (pixel-wise majority) of every reader's newest. Explicit negatives ("reviewed: no
finding", "no pneumonia") are empty masks for finding labels, never for anatomy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from core.vocab import ANATOMY_LABELS, CONSENSUS, NEGATIVE_FINDINGS
from core.workspace import Workspace
from db import queries
from db.models import AnnotationRevision, Image, ImageFinding, LabelClass, Reader


@dataclass(frozen=True)
class LabelledImage:
    """One image usable for training `label`, with the shapes its mask is drawn from.

    shape_sets holds one list of `label` shapes per voting revision (one unless the consensus
    rule is used); an explicit negative has an empty list. revision_ids are those revisions,
    for the model version's data snapshot.
    """

    image_id: int
    revision_ids: tuple[int, ...]
    patient_key: str | None
    content_hash: str
    width: int
    height: int
    shape_sets: tuple[tuple[dict, ...], ...]

    @property
    def negative(self) -> bool:
        return not any(self.shape_sets)


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


def labelled_images(ws: Workspace, label: str, reader: str | None = None) -> list[LabelledImage]:
    """Images usable to learn `label`: the chosen revision(s) have shapes of that label, or
    (for finding labels, not anatomy) the newest finding is an explicit negative and no chosen
    revision has such shapes. Raises ValueError for an unknown label or reader."""
    consensus = reader == CONSENSUS
    with ws.sessions() as s:
        _check_label(s, label)
        reader_id = _reader_id(s, reader)
        # Each reader's newest revision and finding per image; without the consensus rule
        # only the newest of those that speak about `label` counts.
        votes: dict[int, list[AnnotationRevision]] = {}
        for rev, _name in queries.newest_per_reader(s, AnnotationRevision, reader_id=reader_id):
            if any(d.get("label") == label for d in rev.shapes):
                votes.setdefault(rev.image_id, []).append(rev)
        if not consensus:
            votes = {i: [max(revs, key=lambda r: r.id)] for i, revs in votes.items()}
        negatives: dict[int, int] = {}  # image -> number of readers saying "nothing there"
        if label not in ANATOMY_LABELS:
            findings: dict[int, list[ImageFinding]] = {}
            for f, _name in queries.newest_per_reader(s, ImageFinding, reader_id=reader_id):
                findings.setdefault(f.image_id, []).append(f)
            for image_id, rows in findings.items():
                if consensus:  # a reader who drew shapes has voted already
                    drew = {r.reader_id for r in votes.get(image_id, [])}
                    rows = [f for f in rows if f.reader_id not in drew]
                else:
                    rows = [max(rows, key=lambda f: f.id)]
                count = sum(f.finding in NEGATIVE_FINDINGS for f in rows)
                if count:
                    negatives[image_id] = count
        ids = sorted(set(votes) | set(negatives))
        images = {im.id: im for im in s.scalars(select(Image).where(Image.id.in_(ids)))}
        out = []
        for image_id in ids:
            im, revs = images[image_id], sorted(votes.get(image_id, []), key=lambda r: r.id)
            sets = [tuple(d for d in r.shapes if d.get("label") == label) for r in revs]
            # A reader's "no finding" is an empty vote in the consensus; otherwise a positive
            # revision outranks a negative finding (drawn shapes are the more specific label).
            if consensus:
                sets += [()] * negatives.get(image_id, 0)
            elif not sets:
                sets = [()]
            out.append(
                LabelledImage(
                    image_id=image_id,
                    revision_ids=tuple(r.id for r in revs),
                    patient_key=im.patient_key,
                    content_hash=im.content_hash,
                    width=im.width,
                    height=im.height,
                    shape_sets=tuple(sets),
                )
            )
        return out


def consensus_mask(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Pixels marked by more than half of the votes (one vote: that mask; two: both)."""
    if len(masks) == 1:
        return masks[0]
    count = np.sum(np.stack(masks), axis=0)
    return count * 2 > len(masks)
