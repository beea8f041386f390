"""Binary cross-entropy on logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.ml.losses._checks import as_float_pair


class BCELoss(nn.Module):
    """Mean binary cross-entropy of sigmoid(logits) against float targets in [0, 1]."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = as_float_pair(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)
