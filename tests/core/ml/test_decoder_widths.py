"""U-Net decoder widths: a recipe's narrower decoder is built, stored in the checkpoint, read
back and fine-tuned as the same network; wrong widths are refused with what to give."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.ml.checkpoint import load_model, read_checkpoint
from core.ml.dataset import patient_split
from core.ml.inference import predict_probabilities
from core.ml.models import ModelSpec, create_model
from core.ml.training.config import TrainConfig
from core.ml.training.loop import train_model
from core.ml.training.synthetic import synthetic_items

NARROW = (64, 32, 16, 16, 8)
FAST = {"arch": "unet", "encoder": "resnet18", "size": 64, "device": "cpu", "num_workers": 0}


def _widths(model) -> list[int]:
    return [block.conv2[0].out_channels for block in model.decoder.blocks]


def test_narrow_decoder_is_built_with_the_widths_asked_for():
    model = create_model("unet", "resnet18", decoder_channels=NARROW).eval()
    assert _widths(model) == list(NARROW)
    default = create_model("unet", "resnet18")
    assert _widths(default) == [256, 128, 64, 32, 16]
    narrow_params = sum(p.numel() for p in model.decoder.parameters())
    assert narrow_params < sum(p.numel() for p in default.decoder.parameters()) / 4
    with torch.no_grad():
        assert model(torch.rand(2, 1, 64, 64)).shape == (2, 1, 64, 64)


def test_wrong_widths_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="5 positive whole numbers"):
        TrainConfig(arch="unet", decoder_channels=(64, 32, 16))
    with pytest.raises(ValueError, match="5 positive whole numbers"):
        TrainConfig(arch="unet", decoder_channels=(64, 32, 0, 16, 8))
    with pytest.raises(ValueError, match="deeplabv3 has no such decoder"):
        TrainConfig(arch="deeplabv3", decoder_channels=NARROW)
    # A stored config (JSON) gives a list: it is the same setting.
    assert TrainConfig(arch="unet", decoder_channels=list(NARROW)).decoder_channels == NARROW


def test_old_checkpoint_specs_read_as_the_default_decoder():
    assert ModelSpec.from_dict(
        {"arch": "unet", "encoder": "resnet18", "in_channels": 1, "classes": 1}
    ) == ModelSpec("unet", "resnet18")
    assert "decoder_channels" not in ModelSpec("unet", "resnet18").to_dict()
    spec = ModelSpec("unet", "resnet18", 1, 1, NARROW)
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_a_narrow_run_checkpoints_and_fine_tunes_as_the_same_network(tmp_path, torch_one_thread):
    items = synthetic_items(16, seed=2)
    train, val = patient_split(items, 0.25, seed=0)
    config = TrainConfig(**FAST, decoder_channels=NARROW, epochs=2, batch_size=4)
    first = train_model(config, train, val, tmp_path / "first")
    _state, meta = read_checkpoint(first.best_checkpoint)
    assert meta.spec.decoder_channels == NARROW
    assert tuple(meta.config["decoder_channels"]) == NARROW
    model, spec, _meta = load_model(first.best_checkpoint)
    assert _widths(model) == list(NARROW) and spec == meta.spec
    image = np.random.default_rng(0).random((70, 90)).astype(np.float32)
    assert predict_probabilities(model, [image], 64)[0].shape == (70, 90)

    # Fine-tuning keeps the parent's decoder; asking for other widths says what to do.
    tuned = train_model(
        TrainConfig(**FAST, epochs=1, batch_size=4, init_checkpoint=str(first.best_checkpoint)),
        train,
        val,
        tmp_path / "tuned",
    )
    assert read_checkpoint(tuned.best_checkpoint)[1].spec.decoder_channels == NARROW
    # Before its first step a fine-tune scores its parent on the same validation images:
    # the parent's own best validation Dice, what an update has to beat.
    assert first.initial_metrics is None
    assert tuned.initial_metrics["dice"] == pytest.approx(first.val_metrics["dice"], abs=1e-6)
    other = TrainConfig(
        **FAST,
        epochs=1,
        batch_size=4,
        decoder_channels=(128, 64, 32, 16, 8),
        init_checkpoint=str(first.best_checkpoint),
    )
    with pytest.raises(ValueError, match="leave decoder_channels out to fine-tune it"):
        train_model(other, train, val, tmp_path / "other")
