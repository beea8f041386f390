"""Saving what a reader drew: the rules a draft meets before it becomes a revision (and its
image-level finding), one service call per Save click."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from core.accounts import require
from core.labels.revisions import RevisionInfo, save_revision, set_finding
from core.vocab import FINDINGS
from core.workspace import Workspace
from db.models import Draft, Image, Reader


class DraftRefused(ValueError):
    """The draft cannot be saved as it is; the message says why and what to do. Nothing was
    stored."""


@dataclass(frozen=True)
class DraftSaved:
    revision: RevisionInfo | None  # None when nothing had changed since base_revision
    conflict: RevisionInfo | None = None  # a newer save of this reader the draft was not based on
    clipped: list[int] = field(default_factory=list)  # 1-based shapes clipped at the image edge


def save_draft(
    ws: Workspace,
    image_id: int,
    reader: str,
    shapes: Sequence[dict],
    finding: str | None,
    *,
    base_revision: int | None,
    saved_finding: str | None = None,
    changed: bool = True,
    open_shapes: bool = False,
    problems: Sequence[str] = (),
    tool: str = "canvas",
) -> DraftSaved:
    """Store a reader's draft (original-pixel shapes + finding) as a new revision.

    Refuses (DraftRefused) an unfinished polygon or polyline, shapes the canvas could not read,
    "reviewed: no finding" with shapes, and an empty draft without a finding. A draft that has
    not changed since its base revision stores nothing. `reader` is the account saving: one
    that may not label gets PermissionDenied, before anything else is looked at.
    """
    require(ws, reader, "label")
    if finding is not None and finding not in FINDINGS:
        # Checked first: the revision must not be stored and its finding then refused.
        raise DraftRefused(
            f"Not saved: {finding!r} is not a finding; choose one of {', '.join(FINDINGS)}."
        )
    if open_shapes:
        raise DraftRefused(
            "Not saved: a polygon or polyline is still open. Close it by clicking its first "
            "point, or undo it (canvas toolbar), then save again."
        )
    if problems:
        raise DraftRefused("Not saved: " + "; ".join(problems))
    if finding == "reviewed_no_finding" and shapes:
        raise DraftRefused(
            "Not saved: 'Reviewed: no finding' is for images without shapes. Delete the "
            "shapes or choose another finding."
        )
    if not shapes and finding is None:
        raise DraftRefused(
            "Nothing to save: draw a shape, or choose 'Reviewed: no finding' to record that "
            "this image has none."
        )
    if base_revision is not None and not changed:
        return DraftSaved(revision=None)
    with ws.sessions() as s:
        image = s.get(Image, image_id)
        if image is None:
            raise DraftRefused(f"Not saved: image {image_id} is not in this workspace.")
        width, height = image.width, image.height
    clipped = [
        i + 1
        for i, d in enumerate(shapes)
        if any(not (0 <= x <= width - 1 and 0 <= y <= height - 1) for x, y in d["points"])
    ]
    try:
        result = save_revision(ws, image_id, reader, shapes, based_on=base_revision, tool=tool)
    except ValueError as e:
        raise DraftRefused(
            f"Not saved: {e}. Fix or delete that shape, then save again. Nothing was stored."
        ) from e
    if finding is not None and finding != saved_finding:
        set_finding(ws, image_id, reader, finding)
    return DraftSaved(result.revision, result.conflict, clipped)


# --- autosaved drafts -------------------------------------------------------------------------
# What a reader has drawn but not saved, kept on the server apart from revisions (one row per
# reader and image in the drafts table, migration 0007), so a reload, a closed tab or an
# app restart brings it back. Saving a revision discards it.

MAX_DRAFT_CHARS = 4_000_000


def _reader_id(s, reader: str) -> int | None:
    return s.query(Reader.id).filter(Reader.name == reader).scalar()


def store_draft(ws: Workspace, image_id: int, reader: str, draft: dict) -> None:
    """Keep `draft` (JSON: shapes, finding, window, base revision...) as the reader's draft of
    the image, replacing the previous one. PermissionDenied for an account that may not
    label; DraftRefused for a reader or image not in the workspace, or a draft too large to
    be one reader's drawing; nothing is stored then."""
    require(ws, reader, "label")
    text = json.dumps(draft, separators=(",", ":"), allow_nan=False)
    if len(text) > MAX_DRAFT_CHARS:
        raise DraftRefused("Draft not kept: it is larger than any drawing of one image can be.")
    for attempt in range(3):
        try:
            with ws.sessions() as s:
                if s.get(Image, image_id) is None:
                    raise DraftRefused(
                        f"Draft not kept: image {image_id} is not in this workspace."
                    )
                reader_id = _reader_id(s, reader)
                if reader_id is None:
                    raise DraftRefused(f"Draft not kept: no reader {reader!r} in this workspace.")
                row = s.get(Draft, (reader_id, image_id))
                if row is None:
                    s.add(Draft(reader_id=reader_id, image_id=image_id, payload=text))
                else:
                    row.payload = text
                s.commit()
            return
        except IntegrityError:  # another tab stored the first draft at the same moment
            if attempt == 2:
                raise


def load_draft(ws: Workspace, image_id: int, reader: str) -> dict | None:
    """The reader's autosaved draft of the image, or None."""
    with ws.sessions() as s:
        reader_id = _reader_id(s, reader)
        row = s.get(Draft, (reader_id, image_id)) if reader_id is not None else None
        if row is None:
            return None
        try:
            found = json.loads(row.payload)
        except ValueError:
            return None
    return found if isinstance(found, dict) else None


def discard_draft(ws: Workspace, image_id: int, reader: str) -> None:
    """Forget the reader's draft of the image (after a save, or when they discard it)."""
    require(ws, reader, "label")
    with ws.sessions() as s:
        reader_id = _reader_id(s, reader)
        row = s.get(Draft, (reader_id, image_id)) if reader_id is not None else None
        if row is not None:
            s.delete(row)
            s.commit()
