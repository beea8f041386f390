"""SegNet (core.ml.segnet): shapes, unpooling at the encoder's argmax, gradients, the registry,
checkpoints, Grad-CAM and a tiny training run through the product's training engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.ml.checkpoint import CheckpointMeta, load_model, save_checkpoint
from core.ml.dataset import patient_split
from core.ml.gradcam import SegmentationGradCam, target_layer
from core.ml.models import ModelSpec, create_model
from core.ml.segnet import BLOCK_CONVS, SegNet
from core.ml.training.config import TrainConfig
from core.ml.training.loop import train_model
from core.ml.training.synthetic import synthetic_items

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def small(width: int = 4) -> SegNet:
    torch.manual_seed(0)
    return SegNet(in_channels=1, classes=1, width=width)


@pytest.mark.parametrize("size", [(64, 64), (72, 40), (33, 47)])
def test_output_has_the_input_size_even_when_it_is_odd(size):
    with torch.no_grad():
        out = small().eval()(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, *size)


def test_vgg16_bn_layout_13_convs_in_5_blocks_mirrored():
    model = SegNet()
    convs = [len(b) for b in model.encoder.blocks]
    assert convs == list(BLOCK_CONVS) == [2, 2, 3, 3, 3]
    encoder_convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in encoder_convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert encoder_convs[0].in_channels == 1
    decoder_convs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    # 12 in the decoder + the segmentation head = 13, mirroring the encoder.
    assert len(decoder_convs) == 12
    assert model.segmentation_head.out_channels == 1
    assert all(isinstance(b[0][1], torch.nn.BatchNorm2d) for b in model.encoder.blocks)
    assert model.encoder.pool.return_indices


def test_unpooling_puts_values_back_at_the_encoders_argmax():
    model = small()
    x = torch.tensor(
        [[[[1.0, 5.0, 0.0, 2.0], [3.0, 4.0, 7.0, 1.0], [9.0, 0.0, 1.0, 1.0], [2.0, 8.0, 6.0, 3.0]]]]
    )
    pooled, indices = model.encoder.pool(x)
    assert pooled.flatten().tolist() == [5.0, 7.0, 9.0, 6.0]
    assert indices.flatten().tolist() == [1, 6, 8, 14]  # flat positions in the 4x4 map
    restored = model.decoder.unpool(pooled, indices, output_size=x.shape[-2:])
    expected = torch.zeros_like(x)
    for row, col in [(0, 1), (1, 2), (2, 0), (3, 2)]:
        expected[0, 0, row, col] = x[0, 0, row, col]
    assert torch.equal(restored, expected)


def test_decoder_unpools_with_the_indices_of_the_mirror_encoder_block():
    # Odd size: a 5-row map pools to 2 rows; only output_size brings the 5th row back.
    model = small().eval()
    x = torch.rand(1, 1, 40, 40)
    features, indices, sizes = model.encoder(x)
    assert [tuple(s[-2:]) for s in sizes] == [(40, 40), (20, 20), (10, 10), (5, 5), (2, 2)]
    seen = []

    def hook(_module, args, _out):
        seen.append(args[1] if len(args) > 1 else None)

    handle = model.decoder.unpool.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model.decoder(features, indices, sizes)
    finally:
        handle.remove()
    assert len(seen) == 5
    for used, own in zip(seen, reversed(indices), strict=True):
        assert torch.equal(used, own)


def test_gradient_reaches_the_first_encoder_conv():
    model = small().train()
    model(torch.rand(2, 1, 64, 64)).mean().backward()
    first = model.encoder.blocks[0][0][0].weight.grad
    assert first is not None and float(first.abs().sum()) > 0
    assert model.segmentation_head.weight.grad is not None


def test_registered_as_segnet_in_the_model_factory():
    model = create_model("segnet", "resnet18")
    assert isinstance(model, SegNet)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_segnet_refuses_encoder_weights(tmp_path):
    with pytest.raises(ValueError, match="no encoder weights"):
        create_model("segnet", "resnet34", encoder_weights=tmp_path / "vgg.pth")


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = create_model("segnet", "resnet34")
    model.train()
    with torch.no_grad():  # move the batch-norm statistics away from their initial values
        model(torch.rand(4, 1, 64, 64))
    model.eval()
    spec = ModelSpec("segnet", "resnet34")
    path = save_checkpoint(tmp_path / "segnet.pt", model, CheckpointMeta(spec=spec, size=64))
    loaded, loaded_spec, meta = load_model(path)
    assert loaded_spec == spec and isinstance(loaded, SegNet) and meta.size == 64
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("layer", ["decoder", "encoder"])
def test_gradcam_runs_on_segnet(layer):
    model = small(8).eval()
    expected = model.decoder if layer == "decoder" else model.encoder.blocks[-1]
    assert target_layer(model, layer) is expected
    image = np.random.default_rng(0).random((70, 50)).astype(np.float32)
    with SegmentationGradCam(model, size=64, layer=layer) as cam:
        heat = cam.heatmap(image)
    assert heat.shape == (70, 50) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and 0.0 <= heat.min() <= heat.max() <= 1.0


def test_tiny_training_run_lowers_the_loss(tmp_path):
    items = synthetic_items(16, seed=0)
    train, val = patient_split(items, 0.25, seed=0)
    config = TrainConfig(
        arch="segnet",
        encoder="resnet18",
        size=32,
        epochs=4,
        batch_size=4,
        lr=1e-3,
        warmup_epochs=0,
        early_stopping_patience=None,
        device="cpu",
        num_workers=0,
        augment=False,
    )
    result = train_model(config, train, val, tmp_path / "run")
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    model, spec, _ = load_model(result.best_checkpoint)
    assert spec.arch == "segnet" and isinstance(model, SegNet)
