"""Models page, "Compare architectures" (AppTest): Start queues a comparison job; a finished
one shows its architectures side by side with their validation curves."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import jobs
from core.tasks.submit import TrainRequest, submit_compare
from core.workspace import Workspace

ARCHS = ["unet", "segnet"]


def _compare(ws: Workspace) -> None:
    request = TrainRequest(label="lung", encoder="resnet18", size=32, epochs=2, batch_size=4,
                           device="cpu")  # fmt: skip
    done = jobs.run_job(ws, submit_compare(ws, ARCHS, request))
    assert done.state == "succeeded", done.error


@pytest.fixture(scope="module")
def compared(prepared_workspace) -> Path:
    """6 real X-rays with their lungs and a finished U-Net / SegNet comparison (built once)."""
    return prepared_workspace("compare", 6, _compare)


def test_a_finished_comparison_shows_scores_side_by_side_and_curves(
    compared, workspace_copy, point_app, open_app
):
    ws = workspace_copy(compared)
    point_app(ws.root)
    at = open_app("models")
    assert not at.exception
    result = jobs.latest_job(ws, "compare").result["comparison"]
    table = at.dataframe[-1].value
    assert list(table["architecture"]) == ["U-Net", "SegNet"]
    assert list(table["version"]) == [result[a]["model_version"] for a in ARCHS]
    assert list(table["val Dice"]) == pytest.approx([result[a]["val_dice"] for a in ARCHS])
    assert list(table["val IoU"]) == pytest.approx([result[a]["val_iou"] for a in ARCHS])
    assert "pixel accuracy" in table and "image AUC" in table
    # Version details (loss, Dice) and the comparison's Dice and loss curves.
    assert len(at.get("vega_lite_chart")) == 4
    texts = "\n".join(str(m.value) for m in (*at.markdown, *at.caption))
    assert "succeeded" in texts and "the same for each" in texts


def test_start_queues_a_comparison_job(imported_workspace, tmp_path, point_app, open_app):
    ws = imported_workspace(4)
    point_app(ws.root)
    at = open_app("models", models_arch_size=64)
    assert not at.exception
    at.multiselect(key="models_arch_archs").set_value(["deeplabv3", "segnet"])
    at.number_input(key="models_arch_epochs").set_value(2)
    at = next(b for b in at.button if b.label == "Start comparison").click().run()
    assert not at.exception and not at.error
    job = jobs.latest_job(ws, "compare")
    assert job is not None and job.state == "queued"
    assert job.settings["archs"] == ["deeplabv3", "segnet"]
    assert (job.settings["request"]["size"], job.settings["request"]["epochs"]) == (64, 2)
    assert job.settings["request"]["activate"] == "never"
