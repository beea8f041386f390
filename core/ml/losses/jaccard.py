"""Soft Jaccard (IoU) loss."""

from __future__ import annotations

import torch
from torch import nn

from core.ml.losses._checks import as_float_pair


# Hand-written on purpose, not smp.losses.JaccardLoss: smp multiplies the loss by
# `y_true.sum(dims) > 0`, i.e. zeroes it when the batch's masks are all empty, so a batch
# of explicit negative images ("no finding": empty masks we train on) would teach the
# model nothing. Here an empty target still penalises every predicted pixel:
# loss = 1 - s / (sum(p) + s).
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
