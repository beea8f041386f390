"""LabelMe JSON beside an imported image: its shapes become a revision of the importing
account (of the reader "import" on a workspace without accounts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from annotations.labelme_io import DEFAULT_LIMITS, LabelFileError, LabelMeLimits, loads_labelme
from annotations.shapes import shape_to_dict
from core.accounts import has_accounts
from core.imaging.formats import MAX_PIXELS, MAX_SIDE
from core.ingest.sources import max_file_bytes
from core.interchange.export import PROVENANCE_KEY
from core.labels.readers import ensure_label, get_or_create_reader
from core.labels.revisions import save_revision_once
from core.workspace import Workspace
from db.models import Image

IMPORT_READER = "import"


def labelme_limits() -> LabelMeLimits:
    """The parser's limits with ours: a LabelMe file is capped like any imported file
    (PNEUMOLAB_MAX_FILE_MB, and at most DEFAULT_LIMITS.max_bytes), embedded images like
    imported images."""
    return replace(
        DEFAULT_LIMITS,
        max_bytes=min(DEFAULT_LIMITS.max_bytes, max_file_bytes()),
        max_image_pixels=MAX_PIXELS,
        max_image_side=MAX_SIDE,
    )


def import_labelme_sidecar(
    ws: Workspace,
    image_id: int,
    data: bytes,
    created: bool,
    source: str = "LabelMe JSON",
    imported_by: str | None = None,
) -> int:
    """Store a LabelMe file's shapes as a revision; returns shapes stored. Its reader is the
    importing account (`imported_by`) once the workspace has accounts, its provenance
    "imported from LabelMe by <account>"; before that, the reader "import".

    Shapes are stored as drawn (validated and clipped to the image). A file whose shapes equal
    an earlier import revision of this image adds nothing, so importing a folder again is a
    no-op. Raises ValueError naming the file, shape and rule when the file is malformed or
    does not fit the image; then nothing is stored.
    """
    del created  # a duplicate image's sidecar is still a reader's drawing: keep it too
    with ws.sessions() as s:
        image = s.get(Image, image_id)
        size = (image.width, image.height)
    try:
        label_file = loads_labelme(data, source=source, image_size=size, limits=labelme_limits())
    except LabelFileError as e:
        raise ValueError(str(e)) from e
    shapes = [shape_to_dict(sh) for sh in label_file.shapes]
    if imported_by and has_accounts(ws):
        reader_name = imported_by
        comment = f"imported from LabelMe by {imported_by}"
    else:
        reader_name = get_or_create_reader(ws, IMPORT_READER, role="annotator").name
        comment = None
    for label in sorted({d["label"] for d in shapes}):
        ensure_label(ws, label)
    # The equality check and the save are one transaction: two processes importing the same
    # file at once store it once.
    ours = label_file.extra.get(PROVENANCE_KEY)  # a file of our own export says where from
    claimed = ours.get("origin") if isinstance(ours, Mapping) else None
    saved = save_revision_once(
        ws,
        image_id,
        reader_name,
        shapes,
        tool="labelme-import",
        source="import",
        comment=comment,
        claimed_origin=claimed if isinstance(claimed, str) else None,
    )
    return len(shapes) if saved else 0
