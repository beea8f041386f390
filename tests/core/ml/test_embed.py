"""Feature-space embeddings (core.ml.embed): pooled deepest encoder features, one vector per
image, the same every time; a model without an encoder is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.ml.embed import pooled_features
from core.ml.models import create_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("unet", "resnet18", encoder_weights=None).eval()


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    # Different sizes and dtypes, as workspace images come: resized to the model's size.
    return [
        rng.random((80, 64), dtype=np.float32),
        (rng.random((48, 96)) * 255).astype(np.uint8),
        rng.random((64, 64), dtype=np.float32),
    ]


def test_features_have_the_deepest_encoder_channels_per_image(unet):
    features = pooled_features(unet, _images(), size=64, batch_size=2)
    assert features.shape == (3, unet.encoder.out_channels[-1]) == (3, 512)
    assert features.dtype == np.float32 and np.isfinite(features).all()


def test_features_are_the_global_average_of_the_deepest_map(unet):
    image = _images()[2]
    batch = (torch.from_numpy(image)[None, None] - 0.449) / 0.226
    with torch.inference_mode():
        expected = unet.encoder(batch)[-1].mean(dim=(2, 3)).numpy()
    assert np.allclose(pooled_features(unet, [image], size=64), expected, atol=1e-5)


def test_features_are_deterministic_and_independent_of_the_batch(unet):
    one = pooled_features(unet, _images(), size=64, batch_size=1)
    three = pooled_features(unet, _images(), size=64, batch_size=3)
    assert np.allclose(one, three, atol=1e-5)
    assert np.array_equal(three, pooled_features(unet, _images(), size=64, batch_size=3))


def test_a_model_without_an_encoder_is_refused_by_name():
    class Plain(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="Plain has no `.encoder`"):
        pooled_features(Plain(), _images(), size=32)


def test_an_encoder_that_returns_no_feature_maps_is_refused_by_name():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Flatten()  # one flat tensor, not (N, C, H, W) maps

    with pytest.raises(TypeError, match=r"Odd\.encoder"):
        pooled_features(Odd(), _images(), size=32)
