"""Checkpoint files: model spec + weights + the settings needed to predict with them.

Saved atomically (temporary file in the same folder, fsync, os.replace), so a run killed
mid-save leaves the previous checkpoint intact. Loaded with torch.load(weights_only=True):
the payload is plain tensors, dicts, lists, strings and numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from annotations.files import atomic_open
from core.ml.dataset import Normalisation
from core.ml.models import ModelSpec, create_model_from_spec

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything in a checkpoint except the weights."""

    spec: ModelSpec
    size: int
    normalisation: Normalisation = Normalisation()
    config: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | Path, model: nn.Module, meta: CheckpointMeta) -> Path:
    """Write model weights + meta to path atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "spec": meta.spec.to_dict(),
        "size": meta.size,
        "normalisation": asdict(meta.normalisation),
        "config": meta.config,
        "epoch": meta.epoch,
        "metrics": meta.metrics,
        "state_dict": state,
    }
    with atomic_open(path) as fh:
        torch.save(payload, fh)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """(state dict on CPU, meta) of a checkpoint file; ValueError if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = CheckpointMeta(
            spec=ModelSpec.from_dict(payload["spec"]),
            size=int(payload["size"]),
            normalisation=Normalisation(**payload["normalisation"]),
            config=dict(payload.get("config") or {}),
            epoch=payload.get("epoch"),
            metrics=dict(payload.get("metrics") or {}),
        )
        state = payload["state_dict"]
    except Exception as e:  # torch.load raises many types for a foreign or truncated file
        raise ValueError(f"{path} is not a readable PneumoLab checkpoint: {e}") from e
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {payload.get('format_version')!r}; "
            f"this version reads format {FORMAT_VERSION}."
        )
    return state, meta


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec, CheckpointMeta]:
    """Rebuild the model of a checkpoint on device, in eval mode: (model, spec, meta)."""
    state, meta = read_checkpoint(path)
    model = create_model_from_spec(meta.spec)
    model.load_state_dict(state)
    return model.to(device).eval(), meta.spec, meta
