"""Segmentation models from segmentation-models-pytorch, built by smp.create_model behind the
torch-free names of core.vocab (ARCHITECTURES, ENCODERS): one list of names for the pages,
the training config and this factory. smp has no SegNet: "segnet" builds ours
(core.ml.segnet), whose VGG-16-bn encoder is fixed, so the encoder name is ignored for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from core.ml.segnet import SegNet
from core.vocab import ARCHITECTURES, ENCODERS, check_decoder_channels

# Named weights smp fetches from the Hugging Face hub (network needed); anything else is a path.
HUB_WEIGHTS: tuple[str, ...] = ("imagenet",)
# Channels of the RGB encoders that weights files hold (torchvision's ImageNet ResNets).
RGB = 3
# Architectures built here rather than by smp: name -> class taking (in_channels, classes).
OWN_ARCHITECTURES: dict[str, type[nn.Module]] = {"segnet": SegNet}


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a model's skeleton before loading its state dict."""

    arch: str
    encoder: str = "resnet34"
    in_channels: int = 1
    classes: int = 1
    # U-Net decoder widths, deepest block first; None: smp's (256, 128, 64, 32, 16).
    decoder_channels: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.decoder_channels is None:
            del out["decoder_channels"]  # checkpoints without it read as before
        else:
            out["decoder_channels"] = list(self.decoder_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        decoder = data.get("decoder_channels")
        return cls(
            **{k: data[k] for k in ("arch", "encoder", "in_channels", "classes")},
            decoder_channels=tuple(int(c) for c in decoder) if decoder is not None else None,
        )


def _check_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> None:
    if name not in valid:
        raise ValueError(f"Unknown {kind} {name!r}; valid names: {', '.join(sorted(valid))}.")


def create_model(
    arch: str,
    encoder: str = "resnet34",
    in_channels: int = 1,
    classes: int = 1,
    encoder_weights: str | Path | None = None,
    decoder_channels: tuple[int, ...] | None = None,
) -> nn.Module:
    """Build an untrained segmentation model that outputs logits (N, classes, H, W).

    encoder_weights: None (random), a local weights file (.pt/.pth/.safetensors state dict of
    the encoder, e.g. torchvision's ImageNet ResNet), or "imagenet" to let smp fetch them from
    the hub (needs network; never used by tests).

    segnet: its own VGG-16-bn encoder, trained from scratch; `encoder` is checked but
    ignored, and encoder weights are refused.

    decoder_channels: the U-Net decoder's widths (check_decoder_channels); narrower ones train
    faster on CPU (recipes).
    """
    _check_name("architecture", arch, list(ARCHITECTURES))
    _check_name("encoder", encoder, ENCODERS)
    decoder = check_decoder_channels(arch, decoder_channels)
    extra = {"decoder_channels": decoder} if decoder is not None else {}
    if arch in OWN_ARCHITECTURES:
        if encoder_weights is not None:
            raise ValueError(
                f"{arch} has its own VGG-16-bn encoder and takes no encoder weights "
                f"(got {str(encoder_weights)!r}); train it without --encoder-weights."
            )
        return OWN_ARCHITECTURES[arch](in_channels=in_channels, classes=classes)
    if encoder_weights is None or encoder_weights in HUB_WEIGHTS:
        return smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=classes,
            **extra,
        )
    path = Path(encoder_weights)
    state = _strip_prefixes(_read_state_dict(path))
    conv1 = state.get("conv1.weight")
    file_channels = conv1.shape[1] if conv1 is not None and conv1.ndim == 4 else RGB
    if file_channels not in (RGB, in_channels):
        raise ValueError(
            f"Encoder weights in {path} take {file_channels}-channel input; this model takes "
            f"{in_channels} (use RGB weights, which are fitted to any channel count)."
        )
    # What smp does with hub weights: build the encoder as the file has it, load the file,
    # then let smp fit the first conv to our channels (1 channel: the sum over RGB).
    model = smp.create_model(
        arch,
        encoder_name=encoder,
        encoder_weights=None,
        in_channels=file_channels,
        classes=classes,
        **extra,
    )
    _load_encoder_state(model, state, path)
    if file_channels != in_channels:
        model.encoder.set_in_channels(in_channels, pretrained=True)
    return model


def create_model_from_spec(spec: ModelSpec, encoder_weights: str | Path | None = None) -> nn.Module:
    return create_model(
        spec.arch,
        spec.encoder,
        spec.in_channels,
        spec.classes,
        encoder_weights,
        spec.decoder_channels,
    )


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


def _load_encoder_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.encoder.load_state_dict(state)  # smp's ResNetEncoder drops fc.* itself
    except RuntimeError as e:
        raise ValueError(
            f"Encoder weights in {path} do not fit this encoder "
            f"({type(model.encoder).__name__}); check the ResNet depth. Details: {e}"
        ) from e
