"""Learning-rate schedule: linear warm-up, then cosine annealing, stepped once per batch."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr after `step` optimizer steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # never exactly 0: the first step should move
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.01
) -> LambdaLR:
    return LambdaLR(optimizer, lambda s: lr_factor(s, warmup_steps, total_steps, min_ratio))
