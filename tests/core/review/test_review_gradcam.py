"""Grad-CAM for review: the heatmap lights up the predicted region, and the hooks go away."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.ml.gradcam import SegmentationGradCam


class BrightRegionModel(nn.Module):
    """Predicts 'finding' wherever the image is bright: a model whose answer we know."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Identity()
        self.decoder = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            self.decoder.weight.fill_(1 / 9)
            self.decoder.bias.zero_()
            self.head.weight.fill_(2.0)
            self.head.bias.fill_(-4.0)  # logit > 0 where brightness > 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.decoder(self.encoder(x))))


def test_heatmap_is_hot_on_the_predicted_region_at_original_size():
    image = np.full((120, 90), 0.1, np.float32)
    image[30:70, 20:60] = 0.9
    model = BrightRegionModel().eval()
    with SegmentationGradCam(model, size=64) as cam:
        heat = cam.heatmap(image)
    assert heat.shape == image.shape and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    inside = heat[35:65, 25:55].mean()
    outside = np.concatenate([heat[:20].ravel(), heat[80:].ravel()]).mean()
    assert inside > 0.5 and inside > 5 * outside


def test_hooks_are_released_after_the_with_block():
    model = BrightRegionModel().eval()
    with SegmentationGradCam(model, size=32) as cam:
        cam.heatmap(np.random.default_rng(0).random((40, 40), dtype=np.float32))
        assert model.decoder._forward_hooks
    assert not model.decoder._forward_hooks
    out = model(torch.zeros(1, 1, 32, 32))  # plain predictions work again
    assert out.shape == (1, 1, 32, 32)
