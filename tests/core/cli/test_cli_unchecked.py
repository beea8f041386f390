"""Unchecked input on the command line (issue 13): huge or malformed ids, a training size of 0
and a LabelMe imagePath leading out of the evaluation folder are refused the way every bad
input is: exit status 2, one JSON line naming the problem, no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
HUGE = "99999999999999999999"


def _labelme(folder: Path, stem: str, image_path: str, size: tuple[int, int] = (64, 48)) -> Path:
    """A LabelMe file with one lung polygon, declaring `image_path` as its image."""
    width, height = size
    doc = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [
            {
                "label": "lung",
                "points": [[4, 4], [40, 6], [20, 30]],
                "group_id": None,
                "shape_type": "polygon",
                "flags": {},
            }
        ],
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(doc))
    return path


def _png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    width, height = size
    pixels = np.linspace(0, 255, width * height, dtype=np.uint8).reshape(height, width)
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.fixture
def eval_folder(tmp_path) -> Path:
    """One image with its LabelMe file: enough for evaluate to get as far as the model."""
    folder = tmp_path / "eval"
    folder.mkdir()
    _png(folder / "a.png")
    _labelme(folder, "a", "a.png")
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ["activate", HUGE],
        ["activate", "9223372036854775808"],
        ["activate", "²"],
        ["activate", "-1"],
        ["train", "--from-version", HUGE],
        ["train", "--from-version", "²"],
        ["predict", "--model", HUGE, "x.png", "--out", "o"],
    ],
)
def test_bad_model_ids_exit_2_with_one_json_error_line(tmp_path, args, run_cli):
    code, out, err = run_cli("--workspace", str(tmp_path / "ws"), *args)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "neither a version id nor 'active'" in out["error"]
    assert "whole numbers from 1 to 2,147,483,647" in out["error"]


def test_evaluate_with_a_huge_model_id_exits_2(tmp_path, eval_folder, run_cli):
    code, out, err = run_cli(
        "--workspace", str(tmp_path / "ws"), "evaluate", "--model", HUGE,
        "--labelme", str(eval_folder), "--device", "cpu",
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "neither a version id nor 'active'" in out["error"]


def test_train_size_0_is_refused_not_replaced_by_the_default(tmp_path, run_cli):
    ws = str(tmp_path / "ws")
    code, out, err = run_cli("--workspace", ws, "train", "--size", "0")
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "size must be a multiple of 32" in out["error"]
    # Negative sizes and no or negative epochs stay refused the same way.
    for flag, value, message in [
        ("--size", "-32", "size must be a multiple of 32"),
        ("--epochs", "0", "epochs and batch_size must be at least 1"),
        ("--epochs", "-3", "epochs and batch_size must be at least 1"),
    ]:
        code, out, err = run_cli("--workspace", ws, "train", flag, value)
        assert code == 2 and "Traceback" not in err, err[-2000:]
        assert message in out["error"], (flag, value, out)


def test_evaluate_refuses_an_image_path_outside_the_folder_and_does_not_read_it(tmp_path, run_cli):
    # The target is a real image outside the folder: followed, it would pair and evaluate
    # would go on to the model (and report "no model version is active").
    outside = _png(tmp_path / "secret.png")
    folder = tmp_path / "deep" / "eval"
    folder.mkdir(parents=True)
    escape = os.path.relpath(outside, folder)
    assert escape.startswith("..")
    _labelme(folder, "climbs", escape)
    _labelme(folder, "absolute", str(outside))
    (folder / "sub").mkdir()
    _labelme(folder / "sub", "nested", "../../../secret.png")

    code, out, err = run_cli(
        "--workspace", str(tmp_path / "ws"), "evaluate", "--labelme", str(folder),
        "--device", "cpu",
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "no model version is active" not in out["error"]
    assert "no LabelMe JSON with its image found" in out["error"]
    assert out["error"].count("points outside") == 3


def test_labelme_pairs_keep_paths_inside_the_folder_and_refuse_the_rest(tmp_path):
    from core.cli.models import _labelme_pairs

    _png(tmp_path / "passwd.png")
    folder = tmp_path / "eval"
    (folder / "images").mkdir(parents=True)
    (folder / "json").mkdir()
    inside = _png(folder / "images" / "b.png")
    _labelme(folder / "json", "b", "../images/b.png")  # labelme's own layout: stays inside
    _labelme(folder / "json", "windows", "..\\images\\b.png")
    _labelme(folder / "json", "out", "../../passwd.png")
    # A `..` after a linked folder is taken as written, never through the link's target: from
    # link/ the operating system's `..` would be elsewhere/, which holds a passwd.png.
    (tmp_path / "elsewhere" / "inner").mkdir(parents=True)
    _png(tmp_path / "elsewhere" / "passwd.png")
    (folder / "link").symlink_to(tmp_path / "elsewhere" / "inner", target_is_directory=True)
    _labelme(folder / "json", "via-link", "../link/../passwd.png")

    pairs, refused = _labelme_pairs(folder)
    names = {js.name: image for image, js in pairs}
    assert names == {"b.json": inside, "windows.json": inside}
    assert [Path(r["path"]).name for r in refused] == ["out.json"]
    assert all("outside" in r["reason"] for r in refused)
