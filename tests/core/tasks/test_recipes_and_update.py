"""Recipes resolve into the train config; "Update model" learns what readers changed, records
it and predicts it first; the prediction job leaves Grad-CAM cached for the worklist's head."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core import jobs
from core.jobs import list_jobs
from core.labels.readers import add_reader
from core.labels.revisions import save_revision
from core.review import explain
from core.tasks.predict import worklist_head
from core.tasks.submit import TrainRequest, build_train_config, submit_training
from core.tasks.update import label_changes, submit_update
from core.versions import active_version, get_version
from db.models import Prediction


def test_a_recipe_resolves_to_its_stated_config_and_explicit_network_settings_win(workspace):
    best = build_train_config(workspace, TrainRequest(recipe="best", device="cpu"))
    assert (best.arch, best.encoder, best.size, best.epochs) == ("unet", "resnet18", 256, 60)
    assert (best.optimizer, best.augment_preset, best.tta, best.recipe) == (
        "adamw",
        "basic",
        True,
        "best",
    )
    assert best.decoder_channels == (128, 64, 32, 16, 8)
    assert best.postprocess == {"keep_components": 2, "fill_holes": True}  # the lung option
    assert best.device == "cpu" and best.encoder_weights is None
    small = build_train_config(workspace, TrainRequest(recipe="quick", size=64))
    assert (small.size, small.encoder, small.epochs, small.tta) == (64, "resnet18", 30, True)
    finding = build_train_config(workspace, TrainRequest(recipe="quick", label="pneumonia"))
    assert finding.postprocess is None
    # Another network than the recipe's U-Net takes the schedule, not the U-Net's decoder.
    deeplab = build_train_config(workspace, TrainRequest(recipe="quick", arch="deeplabv3"))
    assert (deeplab.arch, deeplab.decoder_channels, deeplab.epochs) == ("deeplabv3", None, 30)


def test_an_unknown_recipe_is_refused_at_submission_and_nothing_is_queued(workspace):
    with pytest.raises(ValueError, match="unknown recipe 'fast'; valid recipes: quick, best"):
        submit_training(workspace, TrainRequest(recipe="fast"))
    assert list_jobs(workspace) == []


@pytest.fixture(scope="module")
def trained(prepared_workspace, train_and_predict):
    """8 real X-rays with their lungs, a tiny model trained and its prediction job run."""
    return prepared_workspace("update", 8, lambda ws: train_and_predict(ws, activate="always"))


def test_the_prediction_job_caches_gradcam_for_the_worklist_head(trained, workspace_copy):
    ws = workspace_copy(trained)
    version = active_version(ws)
    head = worklist_head(ws, version.id, explain.REVIEW_FIRST_PAGE)
    assert head
    for image_id in head:
        assert explain.cached_heatmap(ws, image_id, version.id) is not None


def test_a_cached_heatmap_is_returned_without_recomputing(trained, workspace_copy, monkeypatch):
    ws = workspace_copy(trained)
    version = active_version(ws)
    image_id = worklist_head(ws, version.id, 1)[0]
    stored = explain.cached_heatmap(ws, image_id, version.id)

    def no_recompute(*args):
        raise AssertionError("the heatmap was computed again")

    monkeypatch.setattr(explain, "_compute", no_recompute)
    assert np.array_equal(explain.gradcam_heatmap(ws, image_id, version.id), stored)
    # Another threshold is another heatmap: not served from this one's cache.
    with pytest.raises(AssertionError, match="computed again"):
        explain.gradcam_heatmap(ws, image_id, version.id, threshold=0.3)


def test_computing_a_heatmap_stores_it_and_leaves_torch_threads_as_they_were(
    trained, workspace_copy
):
    import torch

    ws = workspace_copy(trained)
    version = active_version(ws)
    image_id = worklist_head(ws, version.id, 1)[0]
    assert explain.cached_heatmap(ws, image_id, version.id, 0.3) is None
    threads = torch.get_num_threads()
    heat = explain.gradcam_heatmap(ws, image_id, version.id, threshold=0.3)
    assert torch.get_num_threads() == threads
    assert np.array_equal(explain.cached_heatmap(ws, image_id, version.id, 0.3), heat)


def test_update_without_changed_labels_is_refused(trained, workspace_copy):
    ws = workspace_copy(trained)
    with pytest.raises(ValueError, match="no labels changed since version"):
        submit_update(ws, None)
    assert [j.kind for j in list_jobs(ws)].count("update") == 0


def test_update_learns_the_corrected_image_records_it_and_predicts_it_first(
    trained, workspace_copy
):
    ws = workspace_copy(trained)
    parent = active_version(ws)
    corrected = parent.data_snapshot["train"][0][0]
    add_reader(ws, "ann")
    box = {"label": "lung", "points": [[20, 20], [120, 200]], "shape_type": "rectangle"}
    save_revision(ws, corrected, "ann", [box])
    assert label_changes(ws).touched == (corrected,)

    job = jobs.run_job(ws, submit_update(ws, None))
    assert job.state == "succeeded", job.error
    child = get_version(ws, job.result["model_version"])
    assert child.parent_version_id == parent.id
    # Activated only if it beat its parent on the parent's validation images, scored on them
    # before the fine-tune in the same run.
    assert "parent_dice" in child.metrics
    wins = child.metrics["dice"] > child.metrics["parent_dice"]
    assert child.is_active == wins == job.result["activated"]
    assert active_version(ws).id == (child.id if wins else parent.id)
    assert child.data_snapshot["since_parent"] == {
        "parent_version": parent.id,
        "changed": [corrected],
        "added": [],
        "removed": [],
    }
    assert corrected in [i for i, _ in child.data_snapshot["train"]]
    assert child.settings["train_config"]["init_checkpoint"]  # fine-tuned, not from scratch
    assert child.settings["train_config"]["recipe"] == "update"
    # Stored in the order predicted: the corrected image first, then every other image.
    with ws.sessions() as s:
        order = list(
            s.scalars(
                select(Prediction.image_id)
                .where(Prediction.model_version_id == child.id)
                .order_by(Prediction.id)
            )
        )
    assert order[0] == corrected and job.result["predicted_first"][0] == corrected
    assert sorted(order) == sorted(
        s_id for s_id in {i for part in ("train", "val") for i, _ in parent.data_snapshot[part]}
    )
    # The update's own labels are now the snapshot: nothing left to update.
    assert label_changes(ws).touched == ()


def test_the_train_command_takes_a_recipe_into_the_request(workspace):
    from core.cli import build_parser
    from core.cli.models import _train_request

    args = build_parser().parse_args(["train", "--recipe", "best", "--device", "cpu"])
    req = _train_request(args, arch=args.arch, recipe=args.recipe)
    config = build_train_config(workspace, req)
    assert (req.recipe, config.recipe, config.size, config.tta) == ("best", "best", 256, True)


def test_an_update_keeps_the_parents_training_at_a_fifth_of_its_learning_rate(
    trained, workspace_copy
):
    ws = workspace_copy(trained)
    parent = active_version(ws)
    config = build_train_config(ws, TrainRequest(from_version=parent.id, recipe="update"))
    before = parent.settings["train_config"]
    assert (config.size, config.epochs, config.warmup_epochs) == (parent.image_size, 3, 0)
    assert (config.optimizer, config.augment_preset, config.tta) == (
        before["optimizer"],
        before["augment_preset"],
        before["tta"],
    )
    assert config.lr == pytest.approx(before["lr"] * 0.2)
    assert config.init_checkpoint.endswith(parent.checkpoint_path)
    # The network is the parent's, decoder included, whatever a recipe would build.
    parent_decoder = before.get("decoder_channels")
    assert config.decoder_channels == (tuple(parent_decoder) if parent_decoder else None)
    quick = build_train_config(ws, TrainRequest(from_version=parent.id, recipe="quick"))
    assert quick.decoder_channels == config.decoder_channels
