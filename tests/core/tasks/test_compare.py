"""Architecture comparison (core.tasks.compare): the same patient-wise split for every
architecture, one version each, none activated, the report equal to what the versions store.
Real X-rays with their lungs, tiny runs (1 epoch at 32 px)."""

from __future__ import annotations

import json

import pytest

from core import jobs
from core.cli import main
from core.tasks.compare import SCORES, split_of
from core.tasks.submit import TrainRequest, submit_compare
from core.tasks.train import train
from core.versions import active_version, get_version, list_versions

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = {"label": "lung", "encoder": "resnet18", "size": 32, "epochs": 1, "batch_size": 4}


@pytest.fixture
def ws(imported_workspace):
    """6 real X-rays with their lungs and one trained, active version (so that the comparison
    has an active model to leave alone)."""
    ws = imported_workspace(6)
    train(ws, TrainRequest(**TINY, arch="unet", device="cpu"))
    return ws


def _check_report(ws, report: dict, archs: list[str], active_before: int) -> None:
    assert list(report["comparison"]) == archs
    versions = [get_version(ws, report["comparison"][a]["model_version"]) for a in archs]
    assert [v.arch for v in versions] == archs
    assert len({v.id for v in versions}) == len(archs)
    # The same patient-wise split: the same training and validation images in each snapshot.
    splits = [split_of(v) for v in versions]
    assert all(s == splits[0] for s in splits) and splits[0][1]
    assert report["same_split"] is True
    assert (report["n_train"], report["n_val"]) == tuple(len(part) for part in splits[0])
    # The same budget: every run had all its epochs, early stopping off.
    assert all(len(v.history) == report["epochs"] for v in versions)
    assert all(v.settings["early_stopping_patience"] is None for v in versions)
    # None activated by the comparison.
    assert active_version(ws).id == active_before
    assert not any(v.is_active for v in versions)
    for arch, version in zip(archs, versions, strict=True):
        row = report["comparison"][arch]
        for field in ("val_dice", "val_iou", "pixel_accuracy", "best_epoch", "duration_s"):
            assert field in row, field
        for field, key in SCORES.items():
            assert row.get(field) == version.metrics.get(key), field
        assert row["best_epoch"] == version.metrics["best_epoch"]
        assert row["active"] is False
        assert row["duration_s"] == round(version.duration_s, 1)


def test_cli_compare_trains_each_architecture_on_the_same_split(ws, capsys):
    before = active_version(ws).id
    capsys.readouterr()
    args = ["--workspace", str(ws.root), "compare", "--arch", "unet,segnet", "--device", "cpu"]
    args += ["--label", "lung", "--size", "32", "--epochs", "1", "--encoder", "resnet18"]
    args += ["--batch-size", "4"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    _check_report(ws, report, ["unet", "segnet"], before)
    assert len(list_versions(ws)) == 3


def test_compare_job_reports_what_the_versions_store(ws):
    before = active_version(ws).id
    job_id = submit_compare(ws, ["segnet", "unet"], TrainRequest(**TINY, device="cpu"))
    done = jobs.run_job(ws, job_id)
    assert done.state == "succeeded", done.error
    _check_report(ws, done.result, ["segnet", "unet"], before)
    assert "[segnet]" in done.log_tail and "comparison done" in done.log_tail


@pytest.mark.parametrize(
    ("archs", "extra", "message"),
    [
        (["unet", "segnetx"], {}, "unknown architecture 'segnetx'"),
        ([], {}, "choose architectures"),
        (["unet", "segnet"], {"encoder_weights": "w.pth"}, "SegNet takes no encoder weights"),
        (["unet", "segnet"], {"size": 50}, "multiple of 32"),
    ],
)
def test_bad_comparisons_are_refused_before_anything_is_queued(workspace, archs, extra, message):
    with pytest.raises(ValueError, match=message):
        submit_compare(workspace, archs, TrainRequest(**{**TINY, **extra}))
    assert jobs.list_jobs(workspace) == []
