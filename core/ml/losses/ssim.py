"""Structural-similarity loss between the predicted probability map and the target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.ml.losses._checks import as_float_pair


def gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel of shape (1, 1, size, size)."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


class SSIMLoss(nn.Module):
    """1 - mean local SSIM (Wang et al. 2004) of sigmoid(logits) against the target.

    Borders are padded by replication rather than zeros so that a constant image keeps
    constant local statistics (zero padding invents edges at the frame).
    """

    def __init__(
        self, window_size: int = 11, sigma: float = 1.5, c1: float = 0.01**2, c2: float = 0.03**2
    ) -> None:
        super().__init__()
        if window_size % 2 != 1:
            raise ValueError(f"SSIM window size must be odd, got {window_size}.")
        self.register_buffer("window", gaussian_window(window_size, sigma), persistent=False)
        self.c1, self.c2 = c1, c2

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.window.shape[-1] // 2
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), self.window)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = as_float_pair(logits, target)
        x, y = torch.sigmoid(logits), target
        mu_x, mu_y = self._blur(x), self._blur(y)
        var_x = self._blur(x * x) - mu_x**2
        var_y = self._blur(y * y) - mu_y**2
        cov = self._blur(x * y) - mu_x * mu_y
        ssim = ((2 * mu_x * mu_y + self.c1) * (2 * cov + self.c2)) / (
            (mu_x**2 + mu_y**2 + self.c1) * (var_x + var_y + self.c2)
        )
        return 1.0 - ssim.mean()
