"""Import of LabelMe sidecars and export layouts on small made-up images (fast)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from annotations.labelme_io import read_labelme
from core.ingest.importer import import_paths
from core.interchange.export import export_workspace
from core.labels.readers import get_or_create_reader
from core.labels.revisions import latest_revision, revision_history, save_revision

REPO_ROOT = Path(__file__).resolve().parents[3]
W, H = 64, 48
LUNG = [[4.5, 4.0], [30.0, 5.5], [28.0, 40.0], [6.0, 38.25]]


def make_image(folder: Path, name: str, seed: int, shapes: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (H, W), dtype=np.uint8)
    path = folder / f"{name}.png"
    PIL.Image.fromarray(pixels).save(path)
    if shapes is not None:
        doc = {
            "version": "5.5.0",
            "flags": {},
            "shapes": shapes,
            "imagePath": path.name,
            "imageData": None,
            "imageHeight": H,
            "imageWidth": W,
        }
        path.with_suffix(".json").write_text(json.dumps(doc))
    return path


def polygon(label: str = "lung", points=LUNG, **extra) -> dict:
    return {"label": label, "points": points, "shape_type": "polygon", **extra}


def test_sidecar_import_stores_shapes_as_drawn_once(workspace, tmp_path):
    box = {"label": "pneumonia", "points": [[50, 40], [40, 10]], "shape_type": "rectangle"}
    make_image(tmp_path / "in", "a", 1, [polygon(line_color=None), box])
    report = import_paths(workspace, [tmp_path / "in"]).summary()
    assert report == {"imported": 1, "duplicates": 0, "refused": [], "annotations": 2}
    image_id = 1
    rev = latest_revision(workspace, image_id, "import")
    assert rev.source == "import" and rev.tool == "labelme-import"
    assert rev.shapes[0]["points"] == LUNG and rev.shapes[0]["line_color"] is None
    assert rev.shapes[1]["points"] == [[40.0, 10.0], [50.0, 40.0]]  # box normalised
    # The same folder again: nothing new.
    again = import_paths(workspace, [tmp_path / "in"]).summary()
    assert again == {"imported": 0, "duplicates": 1, "refused": [], "annotations": 0}
    assert len(revision_history(workspace, image_id, "import")) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"shapes": [', r"its LabelMe JSON: not valid JSON at line 1.*truncated"),
        (
            json.dumps({"shapes": [polygon(points=[[1, 1], [2, 2]])], "imagePath": "a.png"}),
            r"its LabelMe JSON: shape #0 'lung' \(polygon\): needs at least 3 points",
        ),
        (
            json.dumps({"shapes": [], "imagePath": "a.png", "imageWidth": 10, "imageHeight": 9}),
            r"image size mismatch: declared 10x9 but image 64x48",
        ),
    ],
)
def test_bad_sidecar_keeps_the_image_and_says_why(workspace, tmp_path, content, message):
    make_image(tmp_path / "in", "a", 2).with_suffix(".json").write_text(content)
    report = import_paths(workspace, [tmp_path / "in"])
    assert len(report.imported) == 1 and report.annotations == 0
    (refusal,) = report.refused
    assert refusal.path.endswith("a.png")
    assert refusal.reason.startswith("annotations not imported: ")
    assert re.search(message, refusal.reason), refusal.reason
    get_or_create_reader(workspace, "import")
    assert latest_revision(workspace, report.imported[0], "import") is None


@pytest.fixture
def two_readers(workspace, tmp_path):
    """Two images imported with sidecars, plus a second reader's newer labels on image 1."""
    make_image(tmp_path / "in", "a", 3, [polygon()])
    make_image(tmp_path / "in", "b", 4, [polygon("lung", [[1, 1], [60, 2], [30, 40]])])
    import_paths(workspace, [tmp_path / "in"])
    get_or_create_reader(workspace, "Dr. Ada")
    save_revision(workspace, 1, "Dr. Ada", [polygon("pneumonia", [[10, 10], [20, 10], [15, 30]])])
    save_revision(workspace, 1, "Dr. Ada", [polygon("pneumonia", [[11, 10], [20, 10], [15, 30]])])
    return workspace


def test_export_writes_each_readers_newest_labels_in_its_own_folder(two_readers, tmp_path):
    out = tmp_path / "out"
    summary = export_workspace(two_readers, "all", out)
    assert summary["readers"] == ["Dr. Ada", "import"]
    assert (summary["images"], summary["annotation_sets"], summary["labelme_files"]) == (2, 3, 3)
    assert summary["masks"] == 3 * 2  # every label of the export, per image and reader
    ada = read_labelme(out / "labelme" / "Dr._Ada" / "IMG-000001.json")
    assert [s.points[0] for s in ada.shapes] == [(11.0, 10.0)]  # newest revision only
    assert ada.image_path == "IMG-000001.png"
    assert (out / "labelme" / "Dr._Ada" / "IMG-000001.png").is_file()
    empty = np.asarray(PIL.Image.open(out / "masks" / "Dr._Ada" / "IMG-000001_lung.png"))
    assert empty.shape == (H, W) and not empty.any()
    assert sorted(p.name for p in (out / "coco").glob("*.json")) == ["Dr._Ada.json", "import.json"]
    # No source file names or reader-given names beyond the safe folder name leak into files.
    names = [p.name for p in out.rglob("*")]
    assert not any(n.startswith(("a.", "b.")) for n in names)


def test_export_of_one_reader_is_flat_and_can_embed_image_data(two_readers, tmp_path):
    out = tmp_path / "out"
    summary = export_workspace(two_readers, "labelme", out, reader="import", image_data=True)
    assert summary["labelme_files"] == 2 and summary["masks"] == 0
    doc = json.loads((out / "labelme" / "IMG-000002.json").read_text())
    png = (out / "labelme" / "IMG-000002.png").read_bytes()
    assert base64.b64decode(doc["imageData"]) == png
    assert not (out / "masks").exists() and not (out / "coco").exists()
    with pytest.raises(ValueError, match=r"unknown reader 'nobody'; readers: Dr. Ada, import"):
        export_workspace(two_readers, "labelme", tmp_path / "x", reader="nobody")
    with pytest.raises(ValueError, match="unknown export format 'yolo'"):
        export_workspace(two_readers, "yolo", tmp_path / "x")


def test_zip_export_holds_the_same_files(two_readers, tmp_path):
    folder = tmp_path / "folder"
    export_workspace(two_readers, "all", folder)
    summary = export_workspace(two_readers, "all", tmp_path / "export.zip", zip_output=True)
    assert summary["out"] == str(tmp_path / "export.zip")
    with zipfile.ZipFile(tmp_path / "export.zip") as zf:
        assert zf.testzip() is None
        names = sorted(zf.namelist())
        expected = sorted(
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
        )
        assert names == expected
        inside = json.loads(zf.read("labelme/import/IMG-000002.json"))
    assert inside == json.loads((folder / "labelme" / "import" / "IMG-000002.json").read_text())
    assert not list(tmp_path.glob("*.part"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_import_and_export_print_one_json_line(tmp_path):
    make_image(tmp_path / "in", "a", 5, [polygon()])
    ws = str(tmp_path / "ws")
    done = _cli("--workspace", ws, "import", str(tmp_path / "in"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "imported": 1,
        "duplicates": 0,
        "refused": [],
        "annotations": 1,
    }
    for fmt in ("labelme", "masks", "coco"):
        done = _cli("--workspace", ws, "export", fmt, str(tmp_path / fmt))
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["format"] == fmt
    assert (tmp_path / "labelme" / "labelme" / "import" / "IMG-000001.json").is_file()
    assert (tmp_path / "masks" / "masks" / "import" / "IMG-000001_lung.png").is_file()
    assert (tmp_path / "coco" / "coco" / "import.json").is_file()
    done = _cli("--workspace", ws, "export", "all", str(tmp_path / "e.zip"), "--zip")
    assert done.returncode == 0 and zipfile.is_zipfile(tmp_path / "e.zip")
    done = _cli("--workspace", ws, "export", "labelme", str(tmp_path / "x"), "--reader", "nobody")
    assert done.returncode == 2 and "unknown reader 'nobody'" in json.loads(done.stdout)["error"]
