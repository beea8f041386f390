"""Soft Dice loss."""

from __future__ import annotations

import torch
from torch import nn

from core.ml.losses._checks import as_float_pair


# Hand-written on purpose, not smp.losses.DiceLoss: smp multiplies the loss by
# `y_true.sum(dims) > 0`, i.e. zeroes it when the batch's masks are all empty, so a batch
# of explicit negative images ("no finding": empty masks we train on) would teach the
# model nothing. Here an empty target still penalises every predicted pixel:
# loss = 1 - s / (sum(p) + s).
class DiceLoss(nn.Module):
    """1 - (2*sum(p*t) + s) / (sum(p) + sum(t) + s), p = sigmoid(logits), summed over the batch.

    Pooling over the whole batch (as smp does) keeps images with an empty mask from dominating;
    `smooth` keeps the empty-vs-empty case at loss 0 instead of 0/0.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = as_float_pair(logits, target)
        prob = torch.sigmoid(logits)
        intersection = (prob * target).sum()
        total = prob.sum() + target.sum()
        return 1.0 - (2.0 * intersection + self.smooth) / (total + self.smooth)
