"""Predict probability maps at the original image size, and summarise them for review."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from core.ml.dataset import Normalisation, resize_image, to_unit_float
from core.ml.metrics import Box, components_to_boxes, image_score
from core.ml.postprocess import PostProcess, postprocess_probability

DEFAULT_NORMALISATION = Normalisation()


def _to_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    small = [resize_image(to_unit_float(img, i), size) for i, img in enumerate(images)]
    return torch.from_numpy(np.stack(small))[:, None]


def _to_original(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    if prob.shape == (height, width):
        return prob.astype(np.float32, copy=False)
    resized = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0).astype(np.float32, copy=False)


def _probabilities(model: nn.Module, batch: torch.Tensor, tta: bool) -> torch.Tensor:
    prob = torch.sigmoid(model(batch).float())
    if tta:
        # Horizontal flip only: lungs are left/right mirror-like, never upside down.
        flipped = torch.sigmoid(model(torch.flip(batch, dims=(-1,))).float())
        prob = (prob + torch.flip(flipped, dims=(-1,))) / 2.0
    return prob


def predict_probabilities(
    model: nn.Module,
    images: Sequence[np.ndarray],
    size: int,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    normalisation: Normalisation = DEFAULT_NORMALISATION,
    tta: bool = False,
    postprocess: PostProcess | None = None,
    threshold: float = 0.5,
) -> list[np.ndarray]:
    """Probability maps (float32, each at its image's original size) for 2-D images in [0, 1].

    The model must be in eval mode (load_model returns it so); images are resized to
    (size, size) exactly as in training. tta: the mean of the probabilities of the image and
    of its horizontal flip (flipped back). postprocess: the label's mask clean-up, applied at
    the original size (core.ml.postprocess), so scores at the original size see it.
    """
    device = torch.device(device)
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = normalisation.apply(_to_batch(chunk, size).to(device))
            probs = _probabilities(model, batch, tta)[:, 0].cpu().numpy()
            for p, img in zip(probs, chunk, strict=True):
                full = _to_original(p, img.shape)
                out.append(postprocess_probability(full, postprocess, threshold))
    return out


def predict_probability(
    model: nn.Module,
    image: np.ndarray,
    size: int,
    device: str | torch.device = "cpu",
    normalisation: Normalisation = DEFAULT_NORMALISATION,
    **options,
) -> np.ndarray:
    """Probability map (float32, original size) of one 2-D image in [0, 1]; options as
    predict_probabilities (tta, postprocess, threshold)."""
    return predict_probabilities(model, [image], size, device, 1, normalisation, **options)[0]


def inference_options(config: dict) -> dict:
    """The tta / postprocess / threshold keyword arguments a checkpoint's training config asks
    for (CheckpointMeta.config): older checkpoints, without these keys, predict as before."""
    return {
        "tta": bool(config.get("tta", False)),
        "postprocess": PostProcess.from_dict(config.get("postprocess")),
        "threshold": float(config.get("threshold", 0.5)),
    }


@dataclass(frozen=True)
class PredictionSummary:
    """What the review page and the worklist need from one probability map."""

    boxes: list[Box]
    image_score: float  # max pixel probability: the image-level finding score
    area_fraction: float  # share of pixels above the threshold
    mean_entropy: float  # mean binary entropy in bits, 0 (certain) .. 1 (coin toss)


def mean_entropy(prob: np.ndarray) -> float:
    """Mean per-pixel binary entropy (bits): the model's uncertainty about this image."""
    p = np.clip(prob.astype(np.float64), 1e-7, 1.0 - 1e-7)
    return float(np.mean(-(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))))


def prediction_summary(prob: np.ndarray, threshold: float = 0.5) -> PredictionSummary:
    """Boxes of connected regions above threshold, image-level score and uncertainty."""
    return PredictionSummary(
        boxes=components_to_boxes(prob, threshold),
        image_score=image_score(prob, "max"),
        area_fraction=image_score(prob, "area", threshold),
        mean_entropy=mean_entropy(prob),
    )
