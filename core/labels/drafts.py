"""Saving what a reader drew: the rules a draft meets before it becomes a revision (and its
image-level finding), one service call per Save click."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.labels.revisions import RevisionInfo, save_revision, set_finding
from core.workspace import Workspace
from db.models import Image


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
    not changed since its base revision stores nothing.
    """
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
