"""Model factory: every architecture builds, with 1-channel input, and fails clearly."""

from __future__ import annotations

import pytest
import torch
import torchvision

from core.ml.models import create_model
from core.vocab import ARCHITECTURES, ENCODERS


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_map_one_channel_to_one_logit_map(arch):
    model = create_model(arch, "resnet18").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 1, 64, 64)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="deeplabv3, deeplabv3plus, segnet, unet"):
        create_model("pspnet")
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50"):
        create_model("unet", "vgg16")


@pytest.fixture
def resnet18_file(tmp_path):
    """A torchvision ResNet-18 state dict (random here; ImageNet weights have the same keys)."""
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    return path


def test_local_encoder_weights_are_loaded(resnet18_file):
    # smp's set_in_channels(1, pretrained=True) (encoders/_utils.py patch_first_conv) sums
    # the RGB first conv to one channel; fc.* is ignored.
    file_state = torch.load(resnet18_file, weights_only=True)
    model = create_model("unet", "resnet18", encoder_weights=resnet18_file)
    expected = file_state["conv1.weight"].sum(dim=1, keepdim=True)
    assert model.encoder.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.equal(model.encoder.conv1.weight.detach(), expected)
    assert torch.equal(model.encoder.layer4[1].conv2.weight, file_state["layer4.1.conv2.weight"])
    assert torch.equal(model.encoder.bn1.running_mean, file_state["bn1.running_mean"])


# SegNet has its own VGG-16-bn encoder and refuses weights files (tests/core/ml/test_segnet.py).
@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - {"segnet"}))
def test_models_with_local_weights_take_one_channel(arch, resnet18_file):
    model = create_model(arch, "resnet18", encoder_weights=resnet18_file).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64))
    assert out.shape == (1, 1, 64, 64)


def test_rgb_models_keep_the_file_weights_as_they_are(resnet18_file):
    file_state = torch.load(resnet18_file, weights_only=True)
    model = create_model("unet", "resnet18", in_channels=3, encoder_weights=resnet18_file)
    assert torch.equal(model.encoder.conv1.weight.detach(), file_state["conv1.weight"])


def test_two_channel_models_share_the_rgb_weights_out(resnet18_file):
    # patch_first_conv for 2 channels: channel i takes RGB channel i % 3, scaled by 3/2.
    rgb = torch.load(resnet18_file, weights_only=True)["conv1.weight"]
    model = create_model("unet", "resnet18", in_channels=2, encoder_weights=resnet18_file)
    expected = torch.stack([rgb[:, 0], rgb[:, 1]], dim=1) * 1.5
    assert torch.allclose(model.encoder.conv1.weight.detach(), expected)


def test_every_architecture_and_encoder_a_page_offers_builds():
    for arch in ARCHITECTURES:
        for encoder in ENCODERS:
            create_model(arch, encoder)


def test_wrong_depth_weights_say_what_to_check(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(ValueError, match="depth"):
        create_model("unet", "resnet18", encoder_weights=path)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        create_model("unet", "resnet18", encoder_weights=tmp_path / "nothere.pth")
