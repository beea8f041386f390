"""Export page (AppTest): the .zip it offers opens in the real labelme package with the same
shapes as in the database; filters by reader and status."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.labels.revisions import latest_by_reader, save_revision
from core.workspace import Workspace
from db.models import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def ws(app_env, imported_workspace) -> Workspace:
    ws = imported_workspace(3, root=app_env)
    with ws.sessions() as s:
        first = s.scalar(select(Image.id).order_by(Image.id))
    box = {"label": "pneumonia", "points": [[40, 50], [120, 160]], "shape_type": "rectangle"}
    save_revision(ws, first, "reader", [box])
    return ws


def export(open_app, **choices) -> tuple[AppTest, Path]:
    at = open_app("export")
    for key, value in choices.items():
        widget = at.radio(key=key) if key == "export_format" else at.selectbox(key=key)
        widget.set_value(value)
    next(b for b in at.button if b.label == "Prepare export").click()
    at.run()
    assert not at.exception
    assert [b.label for b in at.get("download_button")] == ["Download .zip"]
    zips = sorted((Path(os.environ["PNEUMOLAB_HOME"]) / "exports").glob("*.zip"))
    assert len(zips) == 1
    return at, zips[0]


def test_export_all_readers_opens_in_labelme_with_the_stored_shapes(ws, tmp_path, open_app):
    from labelme._label_file import read_label_file
    from labelme.utils import shape_to_mask

    at, zip_path = export(open_app, export_format="all")
    assert "3 image(s)" in at.success[0].value
    out = tmp_path / "unzipped"
    zipfile.ZipFile(zip_path).extractall(out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert len([f for f in files if f.startswith("labelme/import/")]) == 3
    assert len([f for f in files if f.startswith("labelme/reader/")]) == 1
    assert {"coco/import.json", "coco/reader.json"} <= set(files)
    with ws.sessions() as s:
        by_name = {im.display_name: im.id for im in s.scalars(select(Image))}
    for json_path in sorted((out / "labelme").rglob("*.json")):
        data = read_label_file(str(json_path))  # labelme loads the image beside it, checks size
        image_id = by_name[json_path.stem]
        reader = json_path.parent.name
        rev = latest_by_reader(ws, image_id)[reader]
        for label in {d["label"] for d in rev.shapes}:
            ours = label_mask(
                [shape_from_dict(d) for d in rev.shapes], (rev.image_width, rev.image_height), label
            )
            theirs = np.zeros_like(ours)
            for shape in data.shapes:
                if shape["label"] == label:
                    theirs |= shape_to_mask(
                        (rev.image_height, rev.image_width), shape["points"], shape["shape_type"]
                    )
            assert (ours != theirs).mean() < 0.002, (json_path, label)
    # A mask per label of the export (lung, pneumonia) for each image of each reader.
    masks = sorted(p.relative_to(out / "masks").as_posix() for p in (out / "masks").rglob("*.png"))
    assert len(masks) == 2 * (3 + 1)
    assert [m for m in masks if m.startswith("reader/")] == [
        "reader/IMG-000001_lung.png",  # the reader drew only a box on the first image
        "reader/IMG-000001_pneumonia.png",
    ]


def test_export_one_reader_is_flat_and_only_theirs(ws, open_app):
    _, zip_path = export(open_app, export_format="labelme", export_reader="reader")
    names = zipfile.ZipFile(zip_path).namelist()
    labelme_files = [n for n in names if n.startswith("labelme/") and n.endswith(".json")]
    assert len(labelme_files) == 1 and labelme_files[0].count("/") == 1
    data = json.loads(zipfile.ZipFile(zip_path).read(labelme_files[0]))
    assert [s["label"] for s in data["shapes"]] == ["pneumonia"]
    assert not [n for n in names if n.startswith(("masks/", "coco/"))]


def test_export_filtered_by_status(ws, open_app):
    _, zip_path = export(open_app, export_format="masks", export_status="negative")
    names = zipfile.ZipFile(zip_path).namelist()
    assert not [n for n in names if n.endswith(".png")]  # no image is a negative
