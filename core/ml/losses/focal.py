"""Binary focal loss on logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.ml.losses._checks import as_float_pair


class FocalLoss(nn.Module):
    """Mean of alpha_t * (1 - p_t)^gamma * BCE, p_t = probability given to the true class.

    alpha=None weighs both classes equally: lungs fill a large part of the image, so the
    usual 0.25 (tuned for rare foreground objects) would under-weight them.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = as_float_pair(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        prob = torch.sigmoid(logits)
        p_t = prob * target + (1.0 - prob) * (1.0 - target)
        loss = (1.0 - p_t) ** self.gamma * bce
        if self.alpha is not None:
            loss = (self.alpha * target + (1.0 - self.alpha) * (1.0 - target)) * loss
        return loss.mean()
