"""LabelMe shapes import where labelme drew them: EXIF-rotated JPEGs are stored rotated the
way labelme shows them, and labelme's own `mask` shapes import (as polygons), keep the other
shapes of their file, and round-trip through the export into labelme."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.ingest.importer import import_paths
from core.labels.catalog import image_info, image_pixels
from core.labels.revisions import latest_by_reader

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # labelme's utils import Qt


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def stored_mask(ws, image_id: int, label: str) -> np.ndarray:
    rev = latest_by_reader(ws, image_id)["import"]
    shapes = [shape_from_dict(d) for d in rev.shapes]
    return label_mask(shapes, (rev.image_width, rev.image_height), label)


def write_labelme(path: Path, size: tuple[int, int], shapes: list[dict]) -> None:
    w, h = size
    path.write_text(
        json.dumps(
            {
                "version": "5.5.0",
                "flags": {},
                "shapes": shapes,
                "imagePath": path.with_suffix(".jpg").name,
                "imageData": None,
                "imageHeight": h,
                "imageWidth": w,
            }
        )
    )


def test_exif_rotated_jpeg_imports_rotated_as_labelme_shows_it(workspace, tmp_path):
    from labelme.utils import apply_exif_orientation

    # As the camera stored it: 90 wide, 60 high, a bright block near the top-left corner.
    raw = np.full((60, 90), 30, np.uint8)
    raw[8:28, 10:50] = 220
    exif = PILImage.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    PILImage.fromarray(raw).save(path, exif=exif, quality=95)

    # labelme's own view of the file, and a polygon drawn on it there.
    with PILImage.open(path) as im:
        shown = np.asarray(apply_exif_orientation(im).convert("L"))
    assert shown.shape == (90, 60)
    block = shown > 128
    ys, xs = np.nonzero(block)
    polygon = [
        [xs.min(), ys.min()],
        [xs.max(), ys.min()],
        [xs.max(), ys.max()],
        [xs.min(), ys.max()],
    ]
    shape = {
        "label": "lung",
        "points": np.asarray(polygon, float).tolist(),
        "shape_type": "polygon",
    }
    write_labelme(path.with_suffix(".json"), (60, 90), [shape])

    report = import_paths(workspace, [path])
    assert report.refused == [] and report.annotations == 1, report.summary()
    info = image_info(workspace, report.imported[0])
    assert (info.width, info.height) == (60, 90)
    pixels = image_pixels(workspace, info)
    assert np.array_equal(pixels, shown.astype(np.float32))  # labelme's pixels, exactly
    assert iou(stored_mask(workspace, info.id, "lung"), block) > 0.99


def mask_shape(mask: np.ndarray, x1: int, y1: int, label: str = "opacity") -> dict:
    """labelme's AI mask shape: a PNG of the box [x1, x1 + w - 1] x [y1, y1 + h - 1]."""
    buf = io.BytesIO()
    PILImage.fromarray(mask).save(buf, format="PNG")
    h, w = mask.shape
    return {
        "label": label,
        "points": [[float(x1), float(y1)], [float(x1 + w - 1), float(y1 + h - 1)]],
        "group_id": None,
        "description": "",
        "shape_type": "mask",
        "flags": {},
        "mask": base64.b64encode(buf.getvalue()).decode(),
    }


def test_labelme_mask_shapes_import_as_polygons_and_open_in_labelme(workspace, tmp_path):
    from labelme._label_file import read_label_file
    from labelme.utils import shapes_to_label

    size = (120, 100)
    image = tmp_path / "in" / "chest.jpg"
    image.parent.mkdir()
    pixels = np.random.default_rng(3).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    PILImage.fromarray(pixels).save(image, quality=95)
    # Two regions in one mask (a disc and a bar), the way labelme's AI masks come.
    yy, xx = np.mgrid[0:40, 0:50]
    mask = ((yy - 18) ** 2 + (xx - 16) ** 2 <= 14**2) | ((xx >= 38) & (yy >= 5) & (yy < 35))
    lung = {"label": "lung", "points": [[5, 60], [60, 62], [40, 95]], "shape_type": "polygon"}
    shapes = [mask_shape(mask.astype(np.uint8) * 255, 30, 12), lung]
    write_labelme(image.with_suffix(".json"), size, shapes)

    # What labelme itself rasterises from the file: the reference.
    truth = read_label_file(str(image.with_suffix(".json")))
    cls, _ = shapes_to_label((size[1], size[0]), truth.shapes, {"_": 0, "opacity": 1, "lung": 2})

    report = import_paths(workspace, [image.parent])
    assert report.refused == [], report.summary()
    image_id = report.imported[0]
    rev = latest_by_reader(workspace, image_id)["import"]
    assert sorted({(d["label"], d["shape_type"]) for d in rev.shapes}) == [
        ("lung", "polygon"),
        ("opacity", "polygon"),
    ]
    assert report.annotations == 3  # two regions of the mask, and the lung kept
    assert iou(stored_mask(workspace, image_id, "opacity"), cls == 1) > 0.99
    assert iou(stored_mask(workspace, image_id, "lung"), cls == 2) > 0.99

    from core.interchange.export import export_workspace

    export_workspace(workspace, "labelme", tmp_path / "out")
    exported = sorted((tmp_path / "out").rglob("*.json"))
    assert len(exported) == 1
    back = read_label_file(str(exported[0]))  # labelme opens it, image beside it
    again, _ = shapes_to_label((size[1], size[0]), back.shapes, {"_": 0, "opacity": 1, "lung": 2})
    assert iou(again == 1, cls == 1) > 0.99 and iou(again == 2, cls == 2) > 0.99
