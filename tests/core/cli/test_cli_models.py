"""The model commands end to end on a workspace of real chest X-rays with lung polygons:
import -> train -> evaluate on other files -> predict -> models -> fine-tune, and bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.cli import main
from core.ingest.importer import import_paths
from core.labels.reference import labelled_images
from core.ml.checkpoint import load_model
from core.ml.dataset import ResizedCache
from core.ml.inference import predict_probabilities
from core.ml.metrics import dataset_scores
from core.tasks.train import train_items
from core.versions import get_version, list_versions
from core.workspace import Workspace
from db.models import Image

REPO = Path(__file__).resolve().parents[3]
# In-process commands train and predict: one thread is fastest on a shared 2-core machine.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _pick_images(labels_csv: Path) -> tuple[list[dict], list[dict]]:
    """12 images for the workspace (3 patients with 2 images each, 6 with one) and 4 other
    patients' images for evaluation."""
    rows = sorted(csv.DictReader(labels_csv.open()), key=lambda r: r["image"])
    by_patient: dict[str, list[dict]] = {}
    for row in rows:
        by_patient.setdefault(row["patient_id"], []).append(row)
    pairs = [p for p in by_patient.values() if len(p) >= 2][:3]
    singles = [p for p in by_patient.values() if len(p) == 1]
    train = [r for p in pairs for r in p[:2]] + [p[0] for p in singles[:6]]
    return train, [p[0] for p in singles[6:10]]


def _link(rows: list[dict], images: Path, folder: Path, manifest: bool) -> None:
    folder.mkdir()
    for row in rows:
        for suffix in (".jpg", ".json"):
            name = Path(row["image"]).with_suffix(suffix).name
            (folder / name).symlink_to(images / name)
    if manifest:  # the patient column lets the import pseudonymise patients for the split
        with (folder / "manifest.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["image", "patient_id"])
            writer.writerows([r["image"], r["patient_id"]] for r in rows)


def run_main(capsys, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(list(args))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return code, json.loads(lines[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cxr_lungs_dir: Path, run_cli):
    root = tmp_path_factory.mktemp("cli")
    train_rows, eval_rows = _pick_images(cxr_lungs_dir.parent / "labels.csv")
    _link(train_rows, cxr_lungs_dir, root / "src", manifest=True)
    _link(eval_rows, cxr_lungs_dir, root / "eval", manifest=False)
    ws = Workspace.open(root / "ws")
    report = import_paths(ws, [root / "src"])
    labelled = labelled_images(ws, "lung")
    ws.dispose()
    # The LabelMe JSON beside each image arrives as a revision of reader "import".
    assert len(report.imported) == 12 and len(labelled) == 12, report.summary()
    code, out, err = run_cli(
        "--workspace", str(root / "ws"), "train", "--label", "lung", "--arch", "unet",
        "--encoder", "resnet18", "--size", "64", "--epochs", "2", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, (out, err)
    return root, out, err


@pytest.fixture
def ws(trained):
    ws = Workspace.open(trained[0] / "ws")
    yield ws
    ws.dispose()


def test_train_prints_the_new_version_and_its_validation_dice(trained, ws):
    _, out, err = trained
    version = get_version(ws, out["model_version"])
    assert version.is_active and out["val_dice"] == version.val_dice
    # It says what it trained in (float32 on CPU; mixed precision is for CUDA).
    assert out["precision"] == version.settings["precision"] == "float32"
    assert out["n_train"] + out["n_val"] == 12 and out["n_val"] >= 1
    assert len(version.history) == 2 and "epoch 2/2" in err
    # The version keeps the scores of its best epoch (the first with the highest Dice)...
    best = max(version.history, key=lambda h: h["val_dice"])
    assert (out["best_epoch"], out["val_dice"]) == (best["epoch"], best["val_dice"])
    # ...and its checkpoint scores that Dice again on the validation images of its snapshot.
    checkpoint = ws.root / version.checkpoint_path
    assert checkpoint.is_file()
    val_ids = {image_id for image_id, _revs in version.data_snapshot["val"]}
    model, _, meta = load_model(checkpoint)
    items = train_items(ws, labelled_images(ws, "lung"), "lung")
    cache = ResizedCache(meta.size)
    pairs = [cache.get(item) for item in items if item.image_id in val_ids]
    assert len(pairs) == out["n_val"]
    images = [image.astype(np.float32) / 255 for image, _ in pairs]
    probs = predict_probabilities(model, images, meta.size, "cpu", 4, meta.normalisation)
    scores = dataset_scores([p > 0.5 for p in probs], [mask for _, mask in pairs])
    assert scores["dice"] == pytest.approx(out["val_dice"], abs=1e-6)


def test_split_keeps_each_patient_on_one_side(trained, ws):
    snapshot = get_version(ws, trained[1]["model_version"]).data_snapshot
    with ws.sessions() as s:
        patient = {im.id: im.patient_key for im in s.query(Image)}
    train_patients = {patient[image_id] for image_id, _revs in snapshot["train"]}
    val_patients = {patient[image_id] for image_id, _revs in snapshot["val"]}
    assert None not in train_patients | val_patients
    assert train_patients.isdisjoint(val_patients)
    assert snapshot["n_patients"] == 9 == len(train_patients | val_patients)
    # Every image's snapshot names the revision its mask came from.
    assert all(len(revs) == 1 for _id, revs in snapshot["train"] + snapshot["val"])


def test_evaluate_and_predict_agree_on_files_outside_the_workspace(trained, capsys, tmp_path):
    root = trained[0]
    code, ev = run_main(
        capsys, "--workspace", str(root / "ws"), "evaluate", "--model", "active",
        "--labelme", str(root / "eval"), "--label", "lung", "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and ev["n_images"] == 4 and ev["skipped"] == []

    out = tmp_path / "pred"
    images = sorted((root / "eval").glob("*.jpg"))
    code, pr = run_main(
        capsys, "--workspace", str(root / "ws"), "predict", "--model", "active",
        *map(str, images), "--out", str(out), "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and pr["predicted"] == 4 and pr["refused"] == []
    index = json.loads((out / "index.json").read_text())
    # No source name under out/ (it may identify a patient): outputs are numbered in the
    # order the inputs were given.
    assert [entry["input"] for entry in index] == [1, 2, 3, 4]
    written = " ".join([(out / "index.json").read_text(), *(p.name for p in out.iterdir())])
    assert not any(image_path.stem in written for image_path in images)
    counts = []
    for entry, image_path in zip(index, images, strict=True):
        stem = out / entry["output"]
        prob = cv2.imread(f"{stem}_prob.png", cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(f"{stem}_mask.png", cv2.IMREAD_UNCHANGED)
        boxes = json.loads(Path(f"{stem}_boxes.json").read_text())
        height, width = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE).shape
        assert prob.shape == mask.shape == (height, width)
        assert (boxes["width"], boxes["height"]) == (width, height)
        assert set(np.unique(mask)) <= {0, 255}
        # One box per 8-connected region of the mask: its bounding box, and as confidence the
        # region's mean probability (the written map is rounded to 1/255), highest first.
        n_components, labels, stats, _ = cv2.connectedComponentsWithStats(
            (mask > 0).astype(np.uint8), connectivity=8
        )
        assert len(boxes["boxes"]) == n_components - 1
        regions = {
            (x, y, x + w, y + h): prob[labels == k].mean() / 255
            for k, (x, y, w, h, _area) in enumerate(stats.tolist())
            if k > 0
        }
        found = {(b["x0"], b["y0"], b["x1"], b["y1"]): b["confidence"] for b in boxes["boxes"]}
        assert found == pytest.approx(regions, abs=1 / 255)
        confidences = [b["confidence"] for b in boxes["boxes"]]
        assert confidences == sorted(confidences, reverse=True)
        shapes = json.loads(image_path.with_suffix(".json").read_text())["shapes"]
        truth = label_mask([shape_from_dict(d) for d in shapes], (width, height), "lung")
        pred = mask > 0
        tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
        counts.append((tp, fp, fn, pred.size - tp - fp - fn))
    # evaluate scores exactly what predict writes, at the original image size.
    tp, fp, fn, tn = np.array(counts, dtype=float).T  # per image; every image has lungs
    expected = {
        "dice": np.mean(2 * tp / (2 * tp + fp + fn)),
        "iou": np.mean(tp / (tp + fp + fn)),
        "pixel_accuracy": np.mean((tp + tn) / (tp + fp + fn + tn)),
        "pooled_dice": 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()),
    }
    assert {key: ev[key] for key in expected} == pytest.approx(expected, abs=1e-6)


def test_models_lists_and_fine_tuning_makes_a_child_version(trained, capsys):
    root, first, _ = trained
    checkpoint = root / "ws" / get_version(Workspace.open(root / "ws"), 1).checkpoint_path
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    code, out = run_main(
        capsys, "--workspace", str(root / "ws"), "train", "--from-version",
        str(first["model_version"]), "--epochs", "1", "--device", "cpu", "--activate", "never",
    )  # fmt: skip
    assert code == 0 and not out["active"]
    code, listed = run_main(capsys, "--workspace", str(root / "ws"), "models")
    by_id = {m["id"]: m for m in listed["models"]}
    child = by_id[out["model_version"]]
    assert child["parent_version_id"] == first["model_version"]
    assert (child["arch"], child["encoder"], child["size"]) == ("unet", "resnet18", 64)
    assert [m["id"] for m in listed["models"] if m["active"]] == [first["model_version"]]
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before  # parent untouched
    code, activated = run_main(
        capsys, "--workspace", str(root / "ws"), "activate", str(out["model_version"])
    )
    assert code == 0 and activated == {"active": out["model_version"]}
    run_main(capsys, "--workspace", str(root / "ws"), "activate", str(first["model_version"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--label", "heart"], "unknown label 'heart'; labels in this workspace"),
        (["train", "--label", "pneumonia"], "only 0 image(s) have 'pneumonia' labels"),
        (["train", "--arch", "pspnet"], "Unknown architecture 'pspnet'; valid names"),
        (["train", "--encoder", "vgg16"], "Unknown encoder 'vgg16'; valid names"),
        (["train", "--from-version", "99"], "model version 99 does not exist"),
        (["evaluate", "--labelme", "/no/such/folder"], "is not a folder"),
        (["predict", "--model", "99", "x.png", "--out", "o"], "model version 99 does not exist"),
        (["activate", "99"], "model version 99 does not exist"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(trained, ws, capsys, args, message):
    versions = len(list_versions(ws))
    code, out = run_main(capsys, "--workspace", str(trained[0] / "ws"), *args)
    assert code == 2 and message in out["error"]
    assert len(list_versions(ws)) == versions  # nothing registered, nothing lost


def test_torchrun_trains_in_two_processes_and_registers_one_version(trained, tmp_path):
    """`torchrun -m core.cli train`: both ranks train their shard (gloo on CPU), rank 0 alone
    saves the checkpoint, registers the version and prints the result."""
    copy = tmp_path / "ws"
    shutil.copytree(trained[0] / "ws", copy, symlinks=True)
    ws = Workspace.open(copy)
    before = {v.id for v in list_versions(ws)}
    runs_before = set(ws.models_dir.iterdir())
    ws.dispose()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "core.cli", "--workspace", str(copy), "train", "--label", "lung", "--arch", "unet",
         "--encoder", "resnet18", "--size", "64", "--epochs", "1", "--device", "cpu",
         "--activate", "never"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, done.stdout  # one result, from rank 0
    out = lines[0]
    assert out["device"] == "cpu x2 processes"
    ws = Workspace.open(copy)
    try:
        new = {v.id for v in list_versions(ws)} - before
        assert new == {out["model_version"]}
        version = get_version(ws, out["model_version"])
        assert (ws.root / version.checkpoint_path).is_file()
        # The other rank leaves no empty run folder behind.
        assert set(ws.models_dir.iterdir()) - runs_before == {
            (ws.root / version.checkpoint_path).parent
        }
    finally:
        ws.dispose()
