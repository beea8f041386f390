"""Hybrid soft-Jaccard + SSIM + focal loss (the DeepLabV3 LabelMe-polygon study)."""

from __future__ import annotations

import torch
from torch import nn

from core.ml.losses.focal import FocalLoss
from core.ml.losses.jaccard import SoftJaccardLoss
from core.ml.losses.ssim import SSIMLoss


class HybridLoss(nn.Module):
    """Unweighted sum: region overlap (Jaccard) + boundary structure (SSIM) + hard pixels (focal)."""

    def __init__(self) -> None:
        super().__init__()
        self.jaccard = SoftJaccardLoss()
        self.ssim = SSIMLoss()
        self.focal = FocalLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.jaccard(logits, target) + self.ssim(logits, target) + self.focal(logits, target)
