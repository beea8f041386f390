"""BCE + soft IoU: the loss of the residual-CNN RSNA pneumonia study."""

from __future__ import annotations

import torch
from torch import nn

from core.ml.losses.bce import BCELoss
from core.ml.losses.jaccard import SoftJaccardLoss


class BCEJaccardLoss(nn.Module):
    """BCE (pixel-wise calibration) + soft Jaccard (overlap), equally weighted."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.bce = BCELoss()
        self.jaccard = SoftJaccardLoss(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.bce(logits, target) + self.jaccard(logits, target)
