"""Binary focal loss on logits (torchvision's sigmoid_focal_loss, RetinaNet's formula)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from core.ml.losses._checks import as_float_pair


class FocalLoss(nn.Module):
    """Mean of alpha_t * (1 - p_t)^gamma * BCE, p_t = probability given to the true class.

    alpha=None weighs both classes equally: lungs fill a large part of the image, so the
    usual 0.25 (tuned for rare foreground objects) would under-weight them. torchvision's
    default alpha is that 0.25; it skips the weighting only when told alpha=-1, which is what
    None is passed as.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = as_float_pair(logits, target)
        alpha = -1.0 if self.alpha is None else self.alpha
        return sigmoid_focal_loss(logits, target, alpha=alpha, gamma=self.gamma, reduction="mean")
