"""Exports you can trust (issue 13, Export): unique file names for every reader and label,
findings as labelme flags, provenance in each file, in one piece or not at all, and a round
trip through `pneumolab import`. The real labelme package is the judge of every file."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from labelme._label_file import read_label_file
from loguru import logger

from annotations.labelme_io import read_labelme
from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.ingest.importer import import_paths
from core.interchange.export import PROVENANCE_KEY, ExportError, export_workspace
from core.labels.catalog import display_image
from core.labels.readers import add_label, add_reader
from core.labels.revisions import latest_by_reader, revision_history, save_revision, set_finding
from core.versions import register_version
from core.vocab import FINDINGS
from db.models import ModelVersion

logger.disable("labelme")
REPO = Path(__file__).resolve().parents[3]
CHINESE = "李医生"  # its filesystem-safe form used to be "reader", the default reader's name
LEFT = [[100.0, 120.0], [400.0, 110.0], [380.0, 700.0], [120.0, 680.0]]
RIGHT = [[600.0, 120.0], [900.0, 130.0], [880.0, 690.0], [620.0, 700.0]]


def polygon(label: str, points: list[list[float]]) -> dict:
    return {"label": label, "points": points, "shape_type": "polygon"}


@pytest.fixture
def two_xrays(workspace, cxr_lungs_dir, tmp_path):
    """Two real X-rays (with their LabelMe lungs, reader "import"); reader "李医生" draws
    "left lung", the default reader "reader" draws "left_lung" on the first one."""
    folder = tmp_path / "in"
    folder.mkdir()
    for jpg in sorted(cxr_lungs_dir.glob("*.jpg"))[:2]:
        for path in (jpg, jpg.with_suffix(".json")):
            (folder / path.name).write_bytes(path.read_bytes())
    report = import_paths(workspace, [folder])
    assert not report.refused and len(report.imported) == 2
    first = report.imported[0]
    add_reader(workspace, CHINESE)
    add_label(workspace, "left lung")
    add_label(workspace, "left_lung")
    save_revision(workspace, first, CHINESE, [polygon("left lung", LEFT)])
    save_revision(workspace, first, "reader", [polygon("left_lung", RIGHT)])
    return workspace, report.imported


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_readers_and_labels_whose_safe_names_collide_each_get_their_own_files(two_xrays, tmp_path):
    ws, (first, second) = two_xrays
    out = tmp_path / "export"
    summary = export_workspace(ws, "all", out)

    # The counts are the files on disk, and nothing was written twice.
    jsons = sorted(out.glob("labelme/*/*.json"))
    masks = sorted(out.glob("masks/*/*.png"))
    assert summary["labelme_files"] == len(jsons) == 4  # import x2, 李医生, reader
    assert summary["masks"] == len(masks) == 4 * 3  # every label of the export, per file
    assert summary["coco_files"] == len(list(out.glob("coco/*.json"))) == 3
    assert summary["files"] == len(files_under(out))

    folders = summary["reader_folders"]
    assert folders["reader"] == "reader" and folders["import"] == "import"  # names kept
    assert folders[CHINESE] not in ("reader", "import") and folders[CHINESE].isascii()
    parts = summary["label_files"]
    assert parts["left_lung"] == "left_lung" and parts["lung"] == "lung"
    assert parts["left lung"] != "left_lung"
    # Stable: the same names again give the same files.
    assert export_workspace(ws, "all", tmp_path / "again")["reader_folders"] == folders

    # labelme opens every file; each holds its own reader's newest shapes.
    stems = {first: f"IMG-{first:06d}", second: f"IMG-{second:06d}"}
    for reader, folder in folders.items():
        for image_id, rev in ((i, latest_by_reader(ws, i).get(reader)) for i in stems):
            if rev is None:
                assert not (out / "labelme" / folder / f"{stems[image_id]}.json").exists()
                continue
            data = read_label_file(str(out / "labelme" / folder / f"{stems[image_id]}.json"))
            assert data.other_data[PROVENANCE_KEY]["reader"] == reader
            assert [s["label"] for s in data.shapes] == [d["label"] for d in rev.shapes]
            assert [s["points"] for s in data.shapes] == [d["points"] for d in rev.shapes]
            shapes = [shape_from_dict(d) for d in rev.shapes]
            size = (rev.image_width, rev.image_height)
            for label, part in parts.items():
                png = out / "masks" / folder / f"{stems[image_id]}_{part}.png"
                mask = np.asarray(PIL.Image.open(png)).astype(bool)
                np.testing.assert_array_equal(mask, label_mask(shapes, size, label), str(png))
    left = out / "masks" / folders[CHINESE] / f"{stems[first]}_{parts['left lung']}.png"
    assert np.asarray(
        PIL.Image.open(left)
    ).any()  # 李医生's "left lung" is not hidden behind reader's "left_lung"

    # The zip holds the same files under the same unique names.
    zsummary = export_workspace(ws, "all", tmp_path / "export.zip", zip_output=True)
    with zipfile.ZipFile(tmp_path / "export.zip") as zf:
        names = zf.namelist()
    assert len(names) == len(set(names)) == zsummary["files"] == summary["files"]
    assert sorted(names) == sorted(p.relative_to(out).as_posix() for p in files_under(out))


@pytest.mark.parametrize("finding", list(FINDINGS))
def test_each_finding_is_a_labelme_flag(two_xrays, tmp_path, finding):
    ws, (first, second) = two_xrays
    set_finding(ws, first, CHINESE, "uncertain")
    set_finding(ws, first, CHINESE, finding)  # the newest finding counts
    out = tmp_path / "export"
    folder = export_workspace(ws, "labelme", out)["reader_folders"][CHINESE]
    data = read_label_file(str(out / "labelme" / folder / f"IMG-{first:06d}.json"))
    assert data.flags == {name: name == finding for name in FINDINGS}
    assert data.other_data[PROVENANCE_KEY]["finding"] == finding
    # A reader without a finding: every flag offered, none set (what labelme shows unticked).
    other = read_label_file(str(out / "labelme" / "import" / f"IMG-{second:06d}.json"))
    assert other.flags == dict.fromkeys(FINDINGS, False)


def test_each_file_says_who_drew_it_which_revision_and_from_what(two_xrays, dicom_mono1, tmp_path):
    ws, (first, second) = two_xrays
    (dicom,) = import_paths(ws, [dicom_mono1]).imported  # 16-bit: windowed, encoded anew
    save_revision(ws, dicom, CHINESE, [polygon("lung", LEFT)])
    version = register_version(
        ws,
        ModelVersion(
            label="lung", arch="unet", encoder="resnet18", image_size=256,
            checkpoint_path="checkpoints/v1.pt", device="cpu", duration_s=1.0, metrics={},
        ),
        "never",
    )  # fmt: skip
    for reader in (CHINESE, "reader"):  # both accept the model's lungs on the second image
        save_revision(
            ws, second, reader, [polygon("lung", RIGHT)], tool="review-accept", source="model",
            model_version_id=version.id,
        )  # fmt: skip
    save_revision(ws, second, CHINESE, [polygon("lung", LEFT)], based_on=1)  # then corrects
    save_revision(ws, first, CHINESE, [polygon("left lung", RIGHT)], based_on=1)
    out = tmp_path / "export"
    summary = export_workspace(ws, "labelme", out, reader=CHINESE)  # flat: no reader level
    assert summary["labelme_files"] == 3
    drawn = read_label_file(str(out / "labelme" / f"IMG-{first:06d}.json"))
    corrected = read_label_file(str(out / "labelme" / f"IMG-{second:06d}.json"))
    newest = revision_history(ws, first, CHINESE)[0]
    assert drawn.other_data[PROVENANCE_KEY] == {
        "reader": CHINESE,
        "revision": 2,
        "origin": "drawn",
        "model_version": None,
        "source": "manual",
        "tool": "manual",
        "created_at": newest.created_at.isoformat(),
        "finding": None,
    }
    prov = corrected.other_data[PROVENANCE_KEY]
    assert (prov["revision"], prov["origin"], prov["model_version"]) == (2, "corrected", version.id)
    export_workspace(ws, "labelme", tmp_path / "reader", reader="reader")
    accepted = read_label_file(str(tmp_path / "reader" / "labelme" / f"IMG-{second:06d}.json"))
    prov = accepted.other_data[PROVENANCE_KEY]
    assert (prov["revision"], prov["origin"], prov["model_version"]) == (1, "accepted", version.id)
    assert (prov["source"], prov["tool"]) == ("model", "review-accept")
    imported = export_workspace(ws, "labelme", tmp_path / "import", reader="import")
    assert imported["labelme_files"] == 2
    for image_id in (first, second):
        doc = read_label_file(str(tmp_path / "import" / "labelme" / f"IMG-{image_id:06d}.json"))
        assert doc.other_data[PROVENANCE_KEY]["origin"] == "imported"
    # The file's other keys are labelme's own, and ours reads the same provenance back.
    assert set(drawn.other_data) == {PROVENANCE_KEY}
    assert read_labelme(out / "labelme" / f"IMG-{first:06d}.json").extra == {
        PROVENANCE_KEY: drawn.other_data[PROVENANCE_KEY]
    }
    # The image beside it is the display rendition, pixel for pixel.
    for image_id in (first, second, dicom):
        png = np.asarray(PIL.Image.open(out / "labelme" / f"IMG-{image_id:06d}.png"))
        np.testing.assert_array_equal(png, display_image(ws, image_id, max_side=None))


def test_export_into_a_path_through_a_file_fails_cleanly(two_xrays, tmp_path):
    ws, _ = two_xrays
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export's parent folder should be")
    before = sorted(p.name for p in tmp_path.iterdir())
    for out, zip_output in ((blocker / "export", False), (blocker / "export.zip", True)):
        with pytest.raises(ExportError, match="Part of that path is a file, not a folder"):
            export_workspace(ws, "all", out, zip_output=zip_output)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert blocker.read_text().startswith("a file")


def _noise_png(path: Path, side: int) -> None:
    pixels = np.random.default_rng(7).integers(0, 256, (side, side), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(path)


def pneumolab(*args: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """`pneumolab ...` in a fresh process. With `file_size_limit` it may not write a file past
    that many bytes: the kernel then refuses the write (EFBIG, binding root too), as a full
    disk refuses one, for real, in the middle of an export."""

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        preexec_fn=limit_file_size if file_size_limit is not None else None,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_write_failing_midway_leaves_nothing_and_says_what_to_do(workspace, tmp_path):
    # Small images first (their files fit under the limit), then one whose PNG cannot.
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        _noise_png(folder / f"small{k}.png", 40 + k)
    _noise_png(folder / "zbig.png", 1600)  # ~2.5 MB of incompressible pixels
    report = import_paths(workspace, [folder])
    assert len(report.imported) == 4
    for image_id in report.imported:
        save_revision(workspace, image_id, "reader", [polygon("lung", [[1, 1], [30, 2], [9, 30]])])
    workspace.dispose()  # the CLI opens it on its own
    targets = tmp_path / "targets"
    targets.mkdir()
    old_zip = targets / "export.zip"
    old_zip.write_bytes(b"an earlier export")
    ws = str(workspace.root)
    for args in (("all", str(targets / "export")), ("all", str(old_zip), "--zip")):
        done = pneumolab("--workspace", ws, "export", *args, file_size_limit=1_000_000)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        (line,) = done.stdout.strip().splitlines()
        error = json.loads(line)["error"]
        assert error.startswith(f"cannot write the export to {args[1]}: File too large.")
        assert "Nothing was left behind." in error
        # Nothing half-written: no export folder, no temporary folder or file beside it.
        assert sorted(p.name for p in targets.iterdir()) == ["export.zip"]
        assert old_zip.read_bytes() == b"an earlier export"  # the earlier export is intact
    # Without the limit the same export succeeds, in the same place.
    done = pneumolab("--workspace", ws, "export", "all", str(targets / "export"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["labelme_files"] == 4


def test_export_page_shows_why_the_export_could_not_be_written(two_xrays, monkeypatch):
    from streamlit.testing.v1 import AppTest

    ws, _ = two_xrays
    (ws.root / "exports").write_text("a file where the exports folder should be")
    monkeypatch.setenv("PNEUMOLAB_HOME", str(ws.root))
    monkeypatch.setenv("PNEUMOLAB_AUTOSTART_WORKER", "0")
    monkeypatch.delenv("PNEUMOLAB_DATABASE_URL", raising=False)
    monkeypatch.delenv("PNEUMOLAB_STORE", raising=False)
    monkeypatch.syspath_prepend(str(REPO / "app"))
    from core.accounts import create_account, start_session

    admin = create_account(ws, "admin", "admin", password="correct horse battery staple")
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.session_state["auth_token"] = start_session(ws, admin)  # as the login form does
    at.switch_page("app_pages/export.py")
    at.run()
    next(b for b in at.button if b.label == "Prepare export").click()
    at.run()
    assert not at.exception
    (error,) = at.error
    assert "Part of that path is a file, not a folder" in error.value
    assert not at.get("download_button")


def test_the_export_imports_back_without_duplicate_revisions(two_xrays, tmp_path):
    ws, (first, second) = two_xrays
    set_finding(ws, first, CHINESE, "pneumonia")
    out = tmp_path / "export"
    export_workspace(ws, "labelme", out)
    # The files carry flags and provenance, and our reader keeps them as labelme does.
    for path in out.glob("labelme/*/*.json"):
        ours = read_labelme(path)
        assert set(ours.flags) == set(FINDINGS) and PROVENANCE_KEY in ours.extra
    # The import reader's own files come back as they are: nothing new.
    done = pneumolab("--workspace", str(ws.root), "import", str(out / "labelme" / "import"))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert (report["imported"], report["duplicates"], report["annotations"]) == (0, 2, 0)
    assert report["refused"] == []
    # Every reader's files, twice: the images are known, and no shapes are stored twice.
    counts = []
    for _ in range(2):
        done = pneumolab("--workspace", str(ws.root), "import", str(out / "labelme"))
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        assert (report["imported"], report["refused"]) == (0, [])
        history = revision_history(ws, first, "import") + revision_history(ws, second, "import")
        counts.append(len(history))
        shapes = [json.dumps(rev.shapes) for rev in history]
        assert len(shapes) == len(set(shapes))
    assert report["annotations"] == 0 and counts[0] == counts[1]


def test_a_stored_image_cut_short_is_named_not_exported(two_xrays, tmp_path):
    """The 8-bit fast path copies stored PNG bytes as they are; a truncated one is refused
    with the image's name and what to do, and nothing is left behind."""
    workspace, ids = two_xrays
    with workspace.sessions() as s:
        from db.models import Image

        rel = s.get(Image, ids[0]).storage_path
    stored = workspace.store_dir / rel
    stored.write_bytes(stored.read_bytes()[:-200])
    target = tmp_path / "out"
    with pytest.raises(ExportError) as e:
        export_workspace(workspace, "all", target)
    assert "its stored pixels cannot be read" in str(e.value)
    assert "re-import that image" in str(e.value)
    assert not target.exists()


def test_model_output_stays_model_output_through_an_export_and_back(two_xrays, tmp_path):
    """A prediction accepted as it was is exported with origin "accepted"; imported again it
    must not become an "imported" (human) revision that the reference standard trusts."""
    from core.labels.reference import labelled_images

    ws, (first, _second) = two_xrays
    save_revision(ws, first, "reader", [polygon("lung", LEFT)], source="model")
    out = tmp_path / "export"
    export_workspace(ws, "labelme", out)
    report = import_paths(ws, [out / "labelme" / "reader"])
    assert report.refused == [] and report.annotations == 1
    newest = max(revision_history(ws, first, "import"), key=lambda rev: rev.revision)
    assert newest.shapes[0]["points"] == LEFT and newest.origin == "accepted"
    for reference in labelled_images(ws, "lung", image_ids=[first]):
        assert newest.id not in reference.revision_ids  # model output is not the truth
    with_model = labelled_images(ws, "lung", image_ids=[first], include_model=True)
    assert [r.revision_ids for r in with_model] == [(newest.id,)]  # counted only on request
