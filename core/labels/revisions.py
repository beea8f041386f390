"""Annotation services: save a reader's shapes as a new revision, read them back, findings.

Revisions are append-only. A save says which revision it was based on; if that reader has
saved since (a second tab, say), the save is still kept — nothing is lost — and the result
reports the conflict so the UI can let the reader choose. Newest wins on display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from annotations.shapes import shape_from_dict, shape_to_dict, validate_shapes
from core.vocab import FINDINGS, NEGATIVE_FINDINGS, REVISION_SOURCES
from core.workspace import Workspace
from db import queries
from db.models import AnnotationRevision, Image, ImageFinding, Reader


@dataclass(frozen=True)
class RevisionInfo:
    id: int
    image_id: int
    reader: str
    revision: int
    created_at: datetime
    tool: str
    source: str
    model_version_id: int | None
    shapes: list[dict]
    image_width: int
    image_height: int


@dataclass(frozen=True)
class SaveResult:
    revision: RevisionInfo
    conflict: RevisionInfo | None  # a newer save this one was not based on


def _info(rev: AnnotationRevision, reader: str) -> RevisionInfo:
    return RevisionInfo(
        id=rev.id,
        image_id=rev.image_id,
        reader=reader,
        revision=rev.revision,
        created_at=rev.created_at,
        tool=rev.tool,
        source=rev.source,
        model_version_id=rev.model_version_id,
        shapes=list(rev.shapes),
        image_width=rev.image_width,
        image_height=rev.image_height,
    )


def _reader(s, name: str) -> Reader:
    reader = s.scalar(select(Reader).where(Reader.name == name))
    if reader is None:
        raise ValueError(f"unknown reader {name!r}; pick a reader in the sidebar or add one")
    return reader


def save_revision(
    ws: Workspace,
    image_id: int,
    reader: str,
    shapes: Sequence[dict],
    *,
    based_on: int | None = None,
    tool: str = "manual",
    source: str = "manual",
    model_version_id: int | None = None,
    comment: str | None = None,
) -> SaveResult:
    """Validate `shapes` (original-pixel LabelMe-style dicts) and store them as a new revision.

    Raises ValueError (ShapeError) naming the bad shape; then nothing is saved.
    """
    if source not in REVISION_SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(REVISION_SOURCES)}")
    with ws.sessions.begin() as s:
        image = s.get(Image, image_id)
        if image is None:
            raise ValueError(f"image {image_id} is not in this workspace")
        size = (image.width, image.height)
        valid = validate_shapes([shape_from_dict(d) for d in shapes], size)
        rd = _reader(s, reader)
        latest = _newest(s, AnnotationRevision, image_id, rd.id)
        latest_no = latest.revision if latest else 0
        conflict = _info(latest, rd.name) if latest and based_on != latest_no else None
        rev = AnnotationRevision(
            image_id=image_id,
            reader_id=rd.id,
            revision=latest_no + 1,
            based_on_revision=based_on,
            tool=tool,
            source=source,
            model_version_id=model_version_id,
            image_width=image.width,
            image_height=image.height,
            shapes=[shape_to_dict(sh) for sh in valid],
            comment=comment,
        )
        s.add(rev)
        s.flush()
        _refresh_status(s, image)
        return SaveResult(_info(rev, rd.name), conflict)


def latest_revision(ws: Workspace, image_id: int, reader: str) -> RevisionInfo | None:
    with ws.sessions() as s:
        rd = _reader(s, reader)
        rev = _newest(s, AnnotationRevision, image_id, rd.id)
        return _info(rev, rd.name) if rev else None


def revision_history(ws: Workspace, image_id: int, reader: str) -> list[RevisionInfo]:
    with ws.sessions() as s:
        rd = _reader(s, reader)
        revs = s.scalars(
            select(AnnotationRevision)
            .where(AnnotationRevision.image_id == image_id, AnnotationRevision.reader_id == rd.id)
            .order_by(AnnotationRevision.revision.desc())
        )
        return [_info(r, rd.name) for r in revs]


def latest_by_reader(ws: Workspace, image_id: int) -> dict[str, RevisionInfo]:
    """Each reader's newest revision of one image (readers' labels side by side)."""
    with ws.sessions() as s:
        rows = queries.newest_per_reader(s, AnnotationRevision, image_ids=[image_id])
        return {name: _info(rev, name) for rev, name in rows}


def set_finding(ws: Workspace, image_id: int, reader: str, finding: str) -> None:
    """Record an image-level finding (append-only; the newest per reader counts)."""
    if finding not in FINDINGS:
        raise ValueError(f"unknown finding {finding!r}; choose one of {', '.join(FINDINGS)}")
    with ws.sessions.begin() as s:
        image = s.get(Image, image_id)
        if image is None:
            raise ValueError(f"image {image_id} is not in this workspace")
        rd = _reader(s, reader)
        s.add(ImageFinding(image_id=image_id, reader_id=rd.id, finding=finding))
        s.flush()
        _refresh_status(s, image)


def latest_finding(ws: Workspace, image_id: int, reader: str) -> str | None:
    with ws.sessions() as s:
        rd = _reader(s, reader)
        row = _newest(s, ImageFinding, image_id, rd.id)
        return row.finding if row else None


def _newest(s, model, image_id: int, reader_id: int):
    """One reader's newest revision (or finding) of one image, None if there is none."""
    rows = queries.newest_per_reader(s, model, image_ids=[image_id], reader_id=reader_id)
    return rows[0][0] if rows else None


def _refresh_status(s, image: Image) -> None:
    """Denormalised worklist status: labelled if any reader's newest revision has shapes,
    negative if the newest finding is an explicit negative and no reader's newest revision has
    shapes, else unlabelled."""
    revisions = queries.newest_per_reader(s, AnnotationRevision, image_ids=[image.id])
    if any(rev.shapes for rev, _ in revisions):
        image.status = "labelled"
        return
    findings = queries.newest_per_reader(s, ImageFinding, image_ids=[image.id])
    newest = findings[0][0].finding if findings else None  # newest first
    image.status = "negative" if newest in NEGATIVE_FINDINGS else "unlabelled"
