"""Model factory: every architecture builds, with 1-channel input, and fails clearly."""

from __future__ import annotations

import pytest
import torch
import torchvision

from core.ml.models import ARCHITECTURES, create_model


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_map_one_channel_to_one_logit_map(arch):
    model = create_model(arch, "resnet18").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 1, 64, 64)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="deeplabv3, deeplabv3plus, unet"):
        create_model("segnet")
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50"):
        create_model("unet", "vgg16")


def test_local_encoder_weights_are_loaded(tmp_path):
    # A torchvision ResNet-18 state dict (random here; ImageNet weights have the same keys):
    # RGB first conv is summed to one channel, fc.* is ignored.
    resnet = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = create_model("unet", "resnet18", encoder_weights=path)
    expected = resnet.state_dict()["conv1.weight"].sum(dim=1, keepdim=True)
    assert torch.equal(model.encoder.conv1.weight.detach(), expected)
    assert torch.equal(model.encoder.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)


def test_wrong_depth_weights_say_what_to_check(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(ValueError, match="depth"):
        create_model("unet", "resnet18", encoder_weights=path)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        create_model("unet", "resnet18", encoder_weights=tmp_path / "nothere.pth")
