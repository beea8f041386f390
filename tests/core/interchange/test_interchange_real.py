"""The real set through our LabelMe import and export, checked by labelme 6.3.1 itself.

The whole folder ../shared/data/cxr-lungs/images (295 X-rays, 590 human lung polygons; two
JPEGs decode to identical pixels, so 294 images) is imported once for this module, exported
as LabelMe + masks + COCO, and every exported file is read back by labelme and pycocotools.
"""

from __future__ import annotations

import json
import os
import shutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import PIL.Image
import pytest
from labelme._label_file import read_label_file
from labelme.utils import shape_to_mask
from loguru import logger
from pycocotools.coco import COCO

from annotations.labelme_io import read_labelme
from annotations.rasterise import rasterise, shape_mask
from core.ingest.importer import import_paths
from core.interchange.export import export_items, export_workspace
from core.workspace import Workspace

logger.disable("labelme")


@pytest.fixture(scope="module")
def real(tmp_path_factory, import_real_images):
    root = tmp_path_factory.mktemp("real-set")
    ws = Workspace.open(root / "ws")
    report = import_real_images(ws, None)  # the whole folder
    summary = export_workspace(ws, "all", root / "export")
    yield {"ws": ws, "report": report, "summary": summary, "out": root / "export", "root": root}
    ws.dispose()


def _source_polygons(cxr_lungs_dir) -> dict[tuple, str]:
    """Each source file's shapes as stored (validated, clipped to its image) -> file name."""
    out = {}
    for path in sorted(cxr_lungs_dir.glob("*.json")):
        size = PIL.Image.open(path.with_suffix(".jpg")).size
        lf = read_labelme(path, image_size=size)  # validated and clipped, as import stores them
        out[tuple(s.points for s in lf.shapes)] = path.name
    return out


def test_real_set_imports_every_image_and_polygon(real, cxr_lungs_dir):
    report = real["report"].summary()
    assert report["refused"] == []
    assert (report["imported"], report["duplicates"]) == (294, 1)
    assert report["annotations"] == 590
    summary = real["summary"]
    assert summary["images"] == summary["labelme_files"] == summary["masks"] == 294
    assert summary["shapes"] == 588 and summary["readers"] == ["import"]
    # Every exported image carries exactly one source file's polygons, as drawn.
    sources = _source_polygons(cxr_lungs_dir)
    matched = []
    for item in export_items(real["ws"]):
        assert [s.label for s in item.shapes] == ["lung", "lung"]
        matched.append(sources[tuple(s.points for s in item.shapes)])
    assert len(set(matched)) == 294


def test_labelme_reads_every_export_and_its_masks_equal_ours(real):
    folder = real["out"] / "labelme" / "import"
    files = sorted(folder.glob("*.json"))
    assert len(files) == 294
    for path in files:
        theirs = read_label_file(str(path))  # raises on anything labelme cannot load
        ours = read_labelme(path)
        assert (folder / theirs.image_path).is_file()
        size = ours.image_size
        assert len(theirs.shapes) == len(ours.shapes) == 2
        for t, o in zip(theirs.shapes, ours.shapes, strict=True):
            assert t["shape_type"] == o.shape_type == "polygon"
            expected = shape_to_mask((size[1], size[0]), t["points"], t["shape_type"])
            np.testing.assert_array_equal(shape_mask(o, size), expected, err_msg=path.name)
        png = real["out"] / "masks" / "import" / f"{path.stem}_lung.png"
        union = np.asarray(PIL.Image.open(png)).astype(bool)
        np.testing.assert_array_equal(union, rasterise(ours.shapes, size)["lung"])


def test_coco_export_loads_in_pycocotools_with_the_same_polygons(real):
    api = COCO(str(real["out"] / "coco" / "import.json"))
    images = api.loadImgs(api.getImgIds())
    assert len(images) == 294 and len(api.getAnnIds()) == 588
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == ["lung"]
    by_name = {f"images/{it.display_name}.png": it for it in export_items(real["ws"])}
    for image in images:
        assert (real["out"] / "coco" / image["file_name"]).is_file()
        item = by_name[image["file_name"]]
        assert (image["width"], image["height"]) == (item.width, item.height)
        anns = api.loadAnns(api.getAnnIds(imgIds=[image["id"]]))
        flat = [[v for p in s.points for v in p] for s in item.shapes]
        assert [a["segmentation"][0] for a in anns] == flat
        assert [a["area"] for a in anns] == [
            int(shape_mask(s, image_size(item)).sum()) for s in item.shapes
        ]


def image_size(item) -> tuple[int, int]:
    return item.width, item.height


def test_export_imports_back_with_identical_polygons(real):
    folder = real["out"] / "labelme" / "import"
    stored = {it.display_name: it.shapes for it in export_items(real["ws"])}
    # Every file parses back to exactly the stored shapes...
    for path in sorted(folder.glob("*.json")):
        assert read_labelme(path).shapes == stored[path.stem]
    # ...and a folder of exported files imports through the product into a fresh workspace
    # with the same polygons (a sample keeps this fast; the parse above covers all files).
    sample = real["root"] / "sample"
    sample.mkdir()
    names = sorted(stored)[::30]
    for name in names:
        for suffix in (".png", ".json"):
            shutil.copy(folder / f"{name}{suffix}", sample / f"{name}{suffix}")
    fresh = Workspace.open(real["root"] / "fresh")
    try:
        report = import_paths(fresh, [sample]).summary()
        assert report["refused"] == [] and report["imported"] == len(names)
        again = export_items(fresh)
        assert [it.shapes for it in again] == [stored[n] for n in names]
    finally:
        fresh.dispose()


def test_reimporting_the_export_into_the_same_workspace_adds_nothing(real):
    # The exported image is pixel-identical (deduplicated) and its polygons equal the stored
    # revision, so a round trip through files creates no new image or revision.
    folder = real["out"] / "labelme" / "import"
    before = {it.display_name: it.shapes for it in export_items(real["ws"])}
    names = sorted(before)[:40]
    subset = real["root"] / "subset"
    subset.mkdir()
    for name in names:
        for suffix in (".png", ".json"):
            shutil.copy(folder / f"{name}{suffix}", subset / f"{name}{suffix}")
    report = import_paths(real["ws"], [subset]).summary()
    assert report == {"imported": 0, "duplicates": 40, "refused": [], "annotations": 0}
    assert json.dumps(sorted(before)) == json.dumps(
        sorted(it.display_name for it in export_items(real["ws"]))
    )
