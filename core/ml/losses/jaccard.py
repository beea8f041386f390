"""Soft Jaccard (IoU) loss."""

from __future__ import annotations

import torch
from torch import nn

from core.ml.losses._checks import as_float_pair


class SoftJaccardLoss(nn.Module):
    """1 - (I + s) / (U + s), I = sum(p*t), U = sum(p) + sum(t) - I, summed over the batch."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = as_float_pair(logits, target)
        prob = torch.sigmoid(logits)
        intersection = (prob * target).sum()
        union = prob.sum() + target.sum() - intersection
        return 1.0 - (intersection + self.smooth) / (union + self.smooth)
