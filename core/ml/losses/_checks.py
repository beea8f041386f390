"""Shape checks shared by the losses (one place, so every loss fails the same clear way)."""

from __future__ import annotations

import torch


def as_float_pair(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate (N,1,H,W) logits against a same-shaped target; return both as float32.

    Losses are computed in float32 even under autocast: sums over 256x256 masks and the SSIM
    variances lose too much in half precision.
    """
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"Expected logits of shape (N, 1, H, W), got {tuple(logits.shape)}.")
    if target.shape != logits.shape:
        raise ValueError(
            f"Target shape {tuple(target.shape)} differs from logits shape {tuple(logits.shape)}."
        )
    return logits.float(), target.float()
