"""Short CPU training runs on synthetic shapes: convergence, checkpoints, cancellation."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core.ml.checkpoint import CheckpointMeta, load_model, read_checkpoint, save_checkpoint
from core.ml.dataset import ResizedCache, patient_split
from core.ml.inference import predict_probabilities
from core.ml.metrics import dataset_scores, roc_auc
from core.ml.models import ModelSpec, create_model
from core.ml.progress import NullProgress
from core.ml.training.config import TrainConfig, TrainingCancelled
from core.ml.training.loop import train_model
from core.ml.training.synthetic import synthetic_items

FAST = {"arch": "unet", "encoder": "resnet18", "size": 64, "device": "cpu", "num_workers": 0}


class Recorder(NullProgress):
    def __init__(self, stop_at_step: int | None = None) -> None:
        self.steps = 0
        self.epochs: list[dict] = []
        self.stop_at_step = stop_at_step

    def on_step(self, epoch, step, steps, loss):
        self.steps += 1

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append(metrics)

    def should_stop(self):
        return self.stop_at_step is not None and self.steps >= self.stop_at_step


@pytest.fixture(scope="module")
def converged(tmp_path_factory, torch_one_thread):
    items = synthetic_items(40, seed=0, negative_every=5)
    train, val = patient_split(items, 0.25, seed=0)
    config = TrainConfig(
        **FAST, epochs=6, batch_size=8, lr=3e-3, warmup_epochs=0, early_stopping_patience=None
    )
    progress = Recorder()
    # One thread, timed in CPU seconds: the minute is the run's own compute, which other
    # processes on a shared CI machine cannot stretch (idle threads of a starved thread pool
    # would spin and count too). On an idle machine the wall time is about the same.
    start = time.process_time()
    result = train_model(config, train, val, tmp_path_factory.mktemp("run"), progress)
    return result, time.process_time() - start, val, progress


def test_synthetic_shapes_converge_within_a_minute(converged):
    result, cpu_seconds, _, progress = converged
    assert result.val_metrics["dice"] > 0.8
    assert cpu_seconds < 60
    assert len(result.history) == len(progress.epochs) == 6
    assert result.best_checkpoint.is_file()
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    # The run reports its best epoch (the first with the highest validation Dice).
    best = max(result.history, key=lambda h: h["val_dice"])
    assert (result.best_epoch, result.val_metrics["dice"]) == (best["epoch"], best["val_dice"])
    # The validation set has images without a finding: every image with one scores higher
    # (about 0.98 against 0.39 at most for those without, on this data and seed).
    assert result.val_metrics["image_auc"] == 1.0


def test_best_checkpoint_reproduces_its_validation_dice(converged):
    result, _, val, _ = converged
    model, spec, meta = load_model(result.best_checkpoint)
    assert (spec.arch, spec.encoder, meta.size) == ("unet", "resnet18", 64)
    assert meta.epoch == result.best_epoch
    cache = ResizedCache(64)
    pairs = [cache.get(item) for item in val]
    images = [image.astype(np.float32) / 255 for image, _ in pairs]
    probs = predict_probabilities(model, images, 64, "cpu", 4, meta.normalisation)
    truths = [mask for _, mask in pairs]
    scores = dataset_scores([p > 0.5 for p in probs], truths)
    assert scores["dice"] == pytest.approx(result.val_metrics["dice"], abs=1e-6)
    auc = roc_auc([float(p.max()) for p in probs], [bool(t.any()) for t in truths])
    assert auc == pytest.approx(result.val_metrics["image_auc"], abs=1e-6)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    torch.manual_seed(1)
    model = create_model("deeplabv3plus", "resnet18")
    model.train()
    with torch.no_grad():  # move batch-norm statistics away from their defaults
        for _ in range(3):
            model(torch.rand(4, 1, 64, 64))
    model.eval()
    meta = CheckpointMeta(ModelSpec("deeplabv3plus", "resnet18"), 64, epoch=3)
    path = save_checkpoint(tmp_path / "m.pt", model, meta)
    loaded, _, loaded_meta = load_model(path)
    images = [np.random.default_rng(i).random((80 + i, 70)).astype(np.float32) for i in range(3)]
    before = predict_probabilities(model, images, 64)
    after = predict_probabilities(loaded, images, 64)
    for a, b, image in zip(before, after, images, strict=True):
        assert a.shape == image.shape
        assert np.array_equal(a, b)
    assert loaded_meta.epoch == 3
    assert not list(tmp_path.glob("*.tmp"))  # the atomic save left no temporary file


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PneumoLab checkpoint"):
        read_checkpoint(bad)


def test_cancel_stops_at_the_next_step_and_keeps_the_last_complete_checkpoint(tmp_path):
    items = synthetic_items(12)
    train, val = patient_split(items, 0.25, seed=0)
    config = TrainConfig(**FAST, epochs=5, batch_size=4, warmup_epochs=0)
    # 9 training images in batches of 4: the last batch of one is dropped (batch norm).
    steps_per_epoch = 2
    progress = Recorder(stop_at_step=steps_per_epoch + 1)
    with pytest.raises(TrainingCancelled) as info:
        train_model(config, train, val, tmp_path, progress)
    assert info.value.epoch == 2
    assert info.value.best_checkpoint == tmp_path / "best.pt"
    assert read_checkpoint(info.value.best_checkpoint)[1].epoch == 1


def test_resized_images_are_cached_on_disk_for_the_next_run(tmp_path):
    calls = []
    items = synthetic_items(4)
    keyed = [
        type(it)(it.image_id, it.patient_key, _counting(it.load_image, calls), it.mask, f"k{i}")
        for i, it in enumerate(items)
    ]
    first = ResizedCache(32, tmp_path)
    first.warm(keyed, threads=1)
    second = ResizedCache(32, tmp_path)
    second.warm(keyed, threads=1)
    assert (first.decoded, second.decoded, len(calls)) == (4, 0, 4)
    for item in keyed:
        assert np.array_equal(first.get(item)[0], second.get(item)[0])
        assert np.array_equal(first.get(item)[1], second.get(item)[1])


def _counting(load, calls):
    def wrapped():
        calls.append(1)
        return load()

    return wrapped


def test_unusable_settings_are_refused_before_training():
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig(size=100)
    with pytest.raises(ValueError, match="valid names"):
        TrainConfig(loss="l2")
