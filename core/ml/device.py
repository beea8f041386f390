"""Pick the torch device a run uses: "auto" means the GPU when there is one."""

from __future__ import annotations

import torch

from core.vocab import DEVICES


def resolve_device(name: str = "auto") -> torch.device:
    """Turn "auto" | "cpu" | "cuda" | "cuda:N" into a torch.device.

    Raises ValueError for an unknown name, or when CUDA is asked for and none is present
    (a clinician's job should fail with a message, not silently run 50x slower).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device {name!r} was requested but no CUDA GPU is available; "
                "use device 'cpu' or 'auto'."
            )
        return torch.device(name)
    raise ValueError(f"Unknown device {name!r}; valid choices: {', '.join(DEVICES)}.")
