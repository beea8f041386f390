"""The CLI contract: `pneumolab [--workspace DIR] import PATH...` and `images --json`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from core.cli import main

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_cli(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines  # exactly one JSON line on stdout
    return code, json.loads(lines[0])


def test_whole_cxr_folder_and_dicom_folder(capsys, tmp_path, cxr_lungs_dir, shared_data):
    # Images only (the LabelMe files beside them belong to the interchange tests).
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for p in cxr_lungs_dir.glob("*.jpg"):
        shutil.copyfile(p, folder / p.name)
    ws = tmp_path / "ws"
    code, out = run_cli(
        capsys, "--workspace", str(ws), "import", str(folder), str(shared_data / "dicom")
    )
    assert code == 0
    assert out["refused"] == []
    # 295 JPEGs, two of which decode to the same pixels, and the two different DICOM copies.
    assert (out["imported"], out["duplicates"]) == (296, 1)

    code, listing = run_cli(capsys, "--workspace", str(ws), "images", "--json")
    assert code == 0 and listing["count"] == 296
    first = listing["images"][0]
    assert {"id", "width", "height", "modality", "status"} <= set(first)
    assert sorted({im["modality"] for im in listing["images"]}) == ["CR", "OT"]
    assert [im["id"] for im in listing["images"]] == sorted(im["id"] for im in listing["images"])


def test_refusals_exit_2_and_name_each_file(capsys, tmp_path, cxr_lungs_dir):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage" * 10)
    good = sorted(cxr_lungs_dir.glob("*.jpg"))[0]
    code, out = run_cli(
        capsys,
        "--workspace",
        str(tmp_path / "ws"),
        "import",
        str(good),
        str(bad),
        str(tmp_path / "nope.dcm"),
    )
    assert code == 2
    assert out["imported"] == 1 and out["duplicates"] == 0
    assert [r["path"] for r in out["refused"]] == [str(bad), str(tmp_path / "nope.dcm")]
    assert "not a PNG, JPEG or DICOM" in out["refused"][0]["reason"]
    assert "no such file" in out["refused"][1]["reason"]


def test_images_filters(capsys, tmp_path, cxr_lungs_dir, dicom_mono1):
    ws = str(tmp_path / "ws")
    run_cli(
        capsys,
        "--workspace",
        ws,
        "import",
        str(dicom_mono1),
        str(sorted(cxr_lungs_dir.glob("*.jpg"))[0]),
    )
    _, cr = run_cli(capsys, "--workspace", ws, "images", "--json", "--modality", "CR")
    assert [(im["modality"], im["width"], im["height"]) for im in cr["images"]] == [
        ("CR", 1841, 1955)
    ]
    _, none = run_cli(capsys, "--workspace", ws, "images", "--json", "--status", "negative")
    assert none == {"images": [], "count": 0}


def test_pneumolab_home_is_the_default_workspace(capsys, tmp_path, monkeypatch, cxr_lungs_dir):
    home = tmp_path / "home"
    monkeypatch.setenv("PNEUMOLAB_HOME", str(home))
    code, out = run_cli(capsys, "import", str(sorted(cxr_lungs_dir.glob("*.jpg"))[0]))
    assert code == 0 and out["imported"] == 1
    assert (home / "pneumolab.db").is_file() and (home / "store" / "images").is_dir()
    # --workspace wins over PNEUMOLAB_HOME.
    other = tmp_path / "other"
    _, listing = run_cli(capsys, "--workspace", str(other), "images", "--json")
    assert listing["count"] == 0 and (other / "pneumolab.db").is_file()


def test_console_entry_point_in_a_fresh_process(tmp_path, dicom_mono1):
    """The installed command's module, run as a program: one JSON line on stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "--workspace", str(tmp_path / "ws"), "import", str(dicom_mono1)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "imported": 1,
        "duplicates": 0,
        "refused": [],
        "annotations": 0,
    }
