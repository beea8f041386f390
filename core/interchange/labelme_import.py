"""LabelMe JSON beside an imported image: its shapes become a revision of the import reader."""

from __future__ import annotations

from annotations.labelme_io import LabelFileError, loads_labelme
from annotations.shapes import shape_to_dict
from core.labels.readers import ensure_label, get_or_create_reader
from core.labels.revisions import revision_history, save_revision
from core.workspace import Workspace
from db.models import Image

IMPORT_READER = "import"


def import_labelme_sidecar(
    ws: Workspace, image_id: int, data: bytes, created: bool, source: str = "LabelMe JSON"
) -> int:
    """Store a LabelMe file's shapes as a revision of reader "import"; returns shapes stored.

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
        label_file = loads_labelme(data, source=source, image_size=size)
    except LabelFileError as e:
        raise ValueError(str(e)) from e
    shapes = [shape_to_dict(sh) for sh in label_file.shapes]
    reader = get_or_create_reader(ws, IMPORT_READER, role="annotator")
    history = revision_history(ws, image_id, reader.name)
    if any(rev.shapes == shapes for rev in history):
        return 0
    for label in sorted({d["label"] for d in shapes}):
        ensure_label(ws, label)
    save_revision(
        ws,
        image_id,
        reader.name,
        shapes,
        based_on=history[0].revision if history else None,
        tool="labelme-import",
        source="import",
    )
    return len(shapes)
