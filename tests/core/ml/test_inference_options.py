"""Flip test-time augmentation and the checkpoint's inference options."""

from __future__ import annotations

import numpy as np
import torch

from core.ml.inference import inference_options, predict_probabilities
from core.ml.models import create_model
from core.ml.postprocess import PostProcess


def _image() -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.uniform(0.0, 1.0, (64, 64)).astype(np.float32)
    image[:, :20] *= 0.3  # not symmetric: the flip changes what the model sees
    return image


def test_tta_is_the_mean_of_the_prediction_and_the_flipped_back_prediction_of_the_flip():
    torch.manual_seed(0)
    model = create_model("unet", "resnet18", 1, 1, None).eval()
    image = _image()
    plain = predict_probabilities(model, [image], 64)[0]
    of_flip = predict_probabilities(model, [image[:, ::-1].copy()], 64)[0][:, ::-1]
    tta = predict_probabilities(model, [image], 64, tta=True)[0]
    assert not np.allclose(plain, of_flip, atol=1e-4)  # the check below can fail
    np.testing.assert_allclose(tta, (plain + of_flip) / 2.0, atol=1e-5)


def test_postprocess_is_applied_at_the_original_size():
    torch.manual_seed(0)
    model = create_model("unet", "resnet18", 1, 1, None).eval()
    image = np.zeros((50, 70), np.float32)
    option = PostProcess(keep_components=1, fill_holes=True)
    prob = predict_probabilities(model, [image], 64, postprocess=option, threshold=0.5)[0]
    assert prob.shape == (50, 70)
    import cv2

    n, _ = cv2.connectedComponents((prob > 0.5).astype(np.uint8), connectivity=8)
    assert n - 1 <= 1


def test_options_come_from_the_training_config_and_old_checkpoints_predict_as_before():
    config = {"tta": True, "postprocess": {"keep_components": 2, "fill_holes": True}}
    assert inference_options(config) == {
        "tta": True,
        "postprocess": PostProcess(2, True),
        "threshold": 0.5,
    }
    assert inference_options({}) == {"tta": False, "postprocess": None, "threshold": 0.5}
