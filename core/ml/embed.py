"""Image embeddings of a segmentation model: the encoder's deepest feature map, averaged over
space (global average pooling), one vector per image. Works on any model whose `.encoder`
returns a list of feature maps, shallowest first (every smp model does)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from core.ml.dataset import Normalisation, resize_image, to_unit_float

DEFAULT_NORMALISATION = Normalisation()


def _deepest(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The encoder's deepest feature map (N, C, h, w); TypeError naming the architecture when
    the model has no encoder returning feature maps."""
    arch = type(model).__name__
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise TypeError(
            f"{arch} has no `.encoder` module: feature-space embeddings need an encoder that "
            "returns its feature maps (every segmentation-models-pytorch model has one)."
        )
    maps = encoder(batch)
    if isinstance(maps, torch.Tensor):
        maps = [maps]
    if not isinstance(maps, (list, tuple)) or not maps or not isinstance(maps[-1], torch.Tensor):
        raise TypeError(
            f"{arch}.encoder returned {type(maps).__name__}, not a list of feature maps: "
            "feature-space embeddings cannot be taken from this architecture."
        )
    deepest = maps[-1]
    if deepest.ndim != 4:
        raise TypeError(
            f"{arch}.encoder's deepest output has shape {tuple(deepest.shape)}, not (N, C, H, W)."
        )
    return deepest


def pooled_features(
    model: nn.Module,
    images: Sequence[np.ndarray],
    size: int,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    normalisation: Normalisation = DEFAULT_NORMALISATION,
) -> np.ndarray:
    """(N, C) float32: each 2-D image in [0, 1] resized to (size, size) and normalised as in
    training, through the encoder, its deepest map averaged over space.

    The model must be in eval mode (load_model returns it so), so batch norm uses its running
    statistics and the features do not depend on the batch an image lands in.
    """
    device = torch.device(device)
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            small = [
                resize_image(to_unit_float(img, start + i), size) for i, img in enumerate(chunk)
            ]
            batch = normalisation.apply(torch.from_numpy(np.stack(small))[:, None].to(device))
            deepest = _deepest(model, batch)
            out.append(deepest.float().mean(dim=(2, 3)).cpu().numpy())
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
