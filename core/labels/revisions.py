"""Annotation services: save a reader's shapes as a new revision, read them back, findings.

Revisions are append-only. A save says which revision it was based on; if that reader has
saved since (a second tab, say), the save is still kept — nothing is lost — and the result
reports the conflict so the UI can let the reader choose. Newest wins on display.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from annotations.shapes import shape_from_dict, shape_to_dict, validate_shapes
from core.accounts import account_settings, get_account, has_accounts, require
from core.accounts.audit import add_audit
from core.labels.provenance import Origin, origin_of_save
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
    origin: str = "drawn"  # core.labels.provenance

    @property
    def provenance(self) -> str:
        """Where the shapes came from, in plain words ("corrected from model v3"; "imported
        from LabelMe by alice" for a LabelMe import made by an account)."""
        if self.origin == "imported" and self.tool == "labelme-import" and self.reader != "import":
            return f"imported from LabelMe by {self.reader}"
        return Origin(self.origin, self.model_version_id).describe()


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
        origin=rev.origin,
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

    Safe when the same reader saves the same image at the same moment (two tabs, another
    process): each save becomes its own revision, numbered in turn, and a save not based on
    the newest revision reports it as the conflict. Raises ValueError (ShapeError) naming the
    bad shape, PermissionDenied when `reader` (the account saving) may not label; then
    nothing is saved. A manual save is an audit row "save".
    """
    require(ws, reader, "label")
    stored = _checked_shapes(ws, image_id, shapes, source)

    def add(s: Session) -> SaveResult:
        result = _add_revision(
            s, image_id, reader, stored, based_on, tool, source, model_version_id, comment
        )
        if source == "manual":
            detail = {"revision": result.revision.revision, "shapes": len(stored)}
            add_audit(s, reader, "save", f"image {image_id}", detail)
        return result

    return _in_write_transaction(ws, add)


def save_revision_once(
    ws: Workspace,
    image_id: int,
    reader: str,
    shapes: Sequence[dict],
    *,
    tool: str,
    source: str,
    comment: str | None = None,
    claimed_origin: str | None = None,
) -> SaveResult | None:
    """Store `shapes` as the reader's new revision, based on its newest, unless one of the
    reader's revisions of this image already holds exactly these shapes: then store nothing
    and return None. The look and the save are one transaction, so processes importing the
    same file at once store it once. The import's own check (permission "import") comes
    first. `claimed_origin`: the origin the imported file states (provenance.origin_of_save)."""
    require(ws, reader, "import")
    stored = _checked_shapes(ws, image_id, shapes, source)

    def once(s: Session) -> SaveResult | None:
        _locked_image(s, image_id)  # before looking: a concurrent import waits until we saved
        rd = _reader(s, reader)
        earlier = s.scalars(
            select(AnnotationRevision.shapes).where(
                AnnotationRevision.image_id == image_id, AnnotationRevision.reader_id == rd.id
            )
        )
        if any(shapes_of == stored for shapes_of in earlier):
            return None
        newest = _newest(s, AnnotationRevision, image_id, rd.id)
        based_on = newest.revision if newest else None
        return _add_revision(
            s, image_id, reader, stored, based_on, tool, source, None, comment, claimed_origin
        )

    return _in_write_transaction(ws, once)


def _checked_shapes(
    ws: Workspace, image_id: int, shapes: Sequence[dict], source: str
) -> list[dict]:
    """The stored form of `shapes`, validated against the image (outside the write lock:
    an image's size never changes)."""
    if source not in REVISION_SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(REVISION_SOURCES)}")
    with ws.sessions() as s:
        image = s.get(Image, image_id)
        if image is None:
            raise ValueError(f"image {image_id} is not in this workspace")
        size = (image.width, image.height)
    valid = validate_shapes([shape_from_dict(d) for d in shapes], size)
    return [shape_to_dict(sh) for sh in valid]


def _add_revision(
    s: Session,
    image_id: int,
    reader: str,
    stored: list[dict],
    based_on: int | None,
    tool: str,
    source: str,
    model_version_id: int | None,
    comment: str | None,
    claimed_origin: str | None = None,
) -> SaveResult:
    """Number and add the revision, inside a write transaction (`_in_write_transaction`)."""
    image = _locked_image(s, image_id)
    rd = _reader(s, reader)
    latest = _newest(s, AnnotationRevision, image_id, rd.id)
    latest_no = latest.revision if latest else 0
    conflict = _info(latest, rd.name) if latest and based_on != latest_no else None
    base = None
    if based_on is not None:
        base_row = s.scalar(
            select(AnnotationRevision).where(
                AnnotationRevision.image_id == image_id,
                AnnotationRevision.reader_id == rd.id,
                AnnotationRevision.revision == based_on,
            )
        )
        base = Origin(base_row.origin, base_row.model_version_id) if base_row else None
    origin = origin_of_save(source, tool, model_version_id, base, claimed_origin)
    rev = AnnotationRevision(
        image_id=image_id,
        reader_id=rd.id,
        revision=latest_no + 1,
        based_on_revision=based_on,
        tool=tool,
        source=source,
        origin=origin.origin,
        model_version_id=origin.model_version_id,
        image_width=image.width,
        image_height=image.height,
        shapes=stored,
        comment=comment,
    )
    s.add(rev)
    s.flush()
    _refresh_status(s, image)
    return SaveResult(_info(rev, rd.name), conflict)


def _locked_image(s: Session, image_id: int) -> Image:
    """The image row, locked until the transaction ends (PostgreSQL SELECT ... FOR UPDATE;
    SQLite's BEGIN IMMEDIATE already holds the whole database): saves and findings of one
    image take turns, so each reads the newest revision and status the one before wrote."""
    image = s.get(Image, image_id, with_for_update=True)
    if image is None:
        raise ValueError(f"image {image_id} is not in this workspace")
    return image


_T = TypeVar("_T")
_ATTEMPTS = 8


def _in_write_transaction(ws: Workspace, work: Callable[[Session], _T]) -> _T:
    """work(session) in one transaction holding the write lock, committed; started afresh
    (bounded) when a concurrent writer won a race the locks did not prevent: a revision
    number taken meanwhile, a lock wait past SQLite's busy timeout, a PostgreSQL
    serialization failure or deadlock. Other errors, and the last attempt's, propagate."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with ws.write_sessions.begin() as s:
                return work(s)
        except (IntegrityError, OperationalError) as e:
            if attempt == _ATTEMPTS or not _lost_a_race(e):
                raise
            time.sleep(random.uniform(0.0, 0.02 * attempt))  # let the winner commit
    raise AssertionError("unreachable")


def _lost_a_race(e: IntegrityError | OperationalError) -> bool:
    code = getattr(e.orig, "sqlstate", None)  # psycopg
    text = str(e.orig).lower()
    if isinstance(e, IntegrityError):
        return code == "23505" or "unique constraint failed" in text
    return code in ("40001", "40P01") or "database is locked" in text


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


def others_visible_to(ws: Workspace, viewer: str) -> bool:
    """Whether `viewer` may see other readers' labels: reviewers and admins always; an
    annotator where the admin allows it (the annotators_see_others account setting); no one
    who is not an enabled account once accounts exist."""
    if not has_accounts(ws):
        return True
    account = get_account(ws, viewer)
    if account is None or account.disabled:
        return False
    return account.role != "annotator" or account_settings(ws).annotators_see_others


def labels_visible_to(ws: Workspace, image_id: int, viewer: str) -> dict[str, RevisionInfo]:
    """latest_by_reader as `viewer` may see it: every reader's newest revision, or only the
    viewer's own where others' labels are hidden from them (others_visible_to)."""
    latest = latest_by_reader(ws, image_id)
    if others_visible_to(ws, viewer):
        return latest
    return {name: rev for name, rev in latest.items() if name == viewer}


def set_finding(ws: Workspace, image_id: int, reader: str, finding: str) -> None:
    """Record an image-level finding (append-only; the newest per reader counts). Findings
    of one image, by any reader, are recorded one after the other, so the image's status is
    computed from all of them. PermissionDenied when `reader` (the account saving) may not
    label; an audit row "save"."""
    if finding not in FINDINGS:
        raise ValueError(f"unknown finding {finding!r}; choose one of {', '.join(FINDINGS)}")
    require(ws, reader, "label")

    def add(s: Session) -> None:
        image = _locked_image(s, image_id)
        rd = _reader(s, reader)
        s.add(ImageFinding(image_id=image_id, reader_id=rd.id, finding=finding))
        s.flush()
        _refresh_status(s, image)
        add_audit(s, reader, "save", f"image {image_id}", {"finding": finding})

    _in_write_transaction(ws, add)


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
