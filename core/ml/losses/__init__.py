"""Segmentation losses: every one takes logits (N,1,H,W) and float targets of the same shape."""

from __future__ import annotations

from torch import nn

from core.ml.losses.bce import BCELoss
from core.ml.losses.bce_jaccard import BCEJaccardLoss
from core.ml.losses.dice import DiceLoss
from core.ml.losses.focal import FocalLoss
from core.ml.losses.hybrid import HybridLoss
from core.ml.losses.jaccard import SoftJaccardLoss
from core.ml.losses.ssim import SSIMLoss

LOSSES: dict[str, type[nn.Module]] = {
    "bce": BCELoss,
    "dice": DiceLoss,
    "bce_iou": BCEJaccardLoss,
    "hybrid": HybridLoss,
}


def create_loss(name: str) -> nn.Module:
    """Instantiate a registered loss by name."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}.")
    return LOSSES[name]()


__all__ = [
    "LOSSES",
    "BCEJaccardLoss",
    "BCELoss",
    "DiceLoss",
    "FocalLoss",
    "HybridLoss",
    "SSIMLoss",
    "SoftJaccardLoss",
    "create_loss",
]
