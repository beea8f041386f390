"""Segmentation architectures from segmentation-models-pytorch: registry and factory."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": smp.Unet,
    "deeplabv3": smp.DeepLabV3,
    "deeplabv3plus": smp.DeepLabV3Plus,
}
ENCODERS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50")
# Named weights smp fetches from the Hugging Face hub (network needed); anything else is a path.
HUB_WEIGHTS: tuple[str, ...] = ("imagenet",)


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a model's skeleton before loading its state dict."""

    arch: str
    encoder: str = "resnet34"
    in_channels: int = 1
    classes: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(**{k: data[k] for k in ("arch", "encoder", "in_channels", "classes")})


def _check_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> None:
    if name not in valid:
        raise ValueError(f"Unknown {kind} {name!r}; valid names: {', '.join(sorted(valid))}.")


def create_model(
    arch: str,
    encoder: str = "resnet34",
    in_channels: int = 1,
    classes: int = 1,
    encoder_weights: str | Path | None = None,
) -> nn.Module:
    """Build an untrained segmentation model that outputs logits (N, classes, H, W).

    encoder_weights: None (random), a local weights file (.pt/.pth/.safetensors state dict of
    the encoder, e.g. torchvision's ImageNet ResNet), or "imagenet" to let smp fetch them from
    the hub (needs network; never used by tests).
    """
    _check_name("architecture", arch, list(ARCHITECTURES))
    _check_name("encoder", encoder, ENCODERS)
    hub = encoder_weights if encoder_weights in HUB_WEIGHTS else None
    model = ARCHITECTURES[arch](
        encoder_name=encoder,
        encoder_weights=hub,
        in_channels=in_channels,
        classes=classes,
    )
    if encoder_weights is not None and hub is None:
        load_encoder_weights(model, Path(encoder_weights))
    return model


def create_model_from_spec(spec: ModelSpec, encoder_weights: str | Path | None = None) -> nn.Module:
    return create_model(spec.arch, spec.encoder, spec.in_channels, spec.classes, encoder_weights)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"Encoder weights file not found: {path}. Give the path of a local "
            ".pth/.pt/.safetensors file, or train without pretrained weights."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"Could not read encoder weights from {path}: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not contain a state dict (got {type(state).__name__}).")
    return state


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "encoder."):
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def _fit_first_conv(state: dict[str, torch.Tensor], in_channels: int) -> None:
    """Adapt RGB first-conv weights to the model's channel count, as smp does for the hub."""
    weight = state.get("conv1.weight")
    if weight is None or weight.ndim != 4 or weight.shape[1] == in_channels:
        return
    if in_channels == 1:
        state["conv1.weight"] = weight.sum(dim=1, keepdim=True)
    else:
        reps = [weight[:, i % weight.shape[1]] for i in range(in_channels)]
        state["conv1.weight"] = torch.stack(reps, dim=1) * (weight.shape[1] / in_channels)


def load_encoder_weights(model: nn.Module, path: Path) -> None:
    """Load a local encoder state dict into model.encoder (strictly; fc keys are ignored)."""
    state = _strip_prefixes(_read_state_dict(path))
    in_channels = model.encoder.conv1.in_channels
    _fit_first_conv(state, in_channels)
    try:
        model.encoder.load_state_dict(state)  # smp's ResNetEncoder drops fc.* itself
    except RuntimeError as e:
        raise ValueError(
            f"Encoder weights in {path} do not fit this encoder "
            f"({type(model.encoder).__name__}); check the ResNet depth. Details: {e}"
        ) from e
