"""Typed settings and results of a training run. Torch-free: requests are checked against
the vocabulary before any job is queued (core.tasks.submit)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import Cancelled
from core.vocab import (
    ARCHITECTURES,
    DEVICES,
    ENCODERS,
    LOSSES,
    OPTIMIZERS,
    check_decoder_channels,
)

# Names of core.ml.augment.PRESETS (kept here so that checking a request needs no OpenCV).
AUGMENT_PRESETS: tuple[str, ...] = ("basic", "radiograph")


def _check_choice(kind: str, value: str, valid) -> None:
    if value not in valid:
        raise ValueError(f"Unknown {kind} {value!r}; valid names: {', '.join(sorted(valid))}.")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run learns. Stored with the checkpoint and model version.

    batch_size is per process: under torchrun with N processes the effective batch is N times
    larger. val_fraction and seed are what the caller passes to patient_split (train_model
    receives the two lists already split, so the split can be stored with the data snapshot).
    """

    arch: str = "unet"
    encoder: str = "resnet34"
    # U-Net decoder widths, deepest first; None: smp's (256, 128, 64, 32, 16).
    decoder_channels: tuple[int, ...] | None = None
    size: int = 256
    epochs: int = 20
    batch_size: int = 8
    lr: float = 5e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    loss: str = "bce_iou"
    warmup_epochs: int = 1
    min_lr_ratio: float = 0.01  # cosine annealing ends at lr * min_lr_ratio
    early_stopping_patience: int | None = 10  # epochs without a better val Dice; None = off
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA (core.ml.device.autocast_dtype); CPU: float32
    channels_last: bool = True  # NHWC memory layout (faster on CUDA and on CPU)
    num_workers: int | None = None  # DataLoader workers; None = 0 on CPU, up to 4 on CUDA
    augment: bool = True
    augment_preset: str = "basic"  # core.ml.augment.PRESETS: "basic" | "radiograph"
    tta: bool = False  # predict as the mean of the image and its horizontal flip
    # Post-processing of predicted masks (core.ml.postprocess.PostProcess as a dict), from the
    # label's option when a recipe asks for it; None: masks as predicted.
    postprocess: dict[str, Any] | None = None
    recipe: str | None = None  # the recipe this config was resolved from, if any
    threshold: float = 0.5  # probability above which a pixel counts as predicted
    encoder_weights: str | None = None  # local weights file for the encoder
    init_checkpoint: str | None = None  # fine-tune from this checkpoint instead
    extra: dict[str, Any] = field(default_factory=dict)  # caller's notes, stored verbatim

    def __post_init__(self) -> None:
        for name in ("encoder_weights", "init_checkpoint"):
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))
        _check_choice("architecture", self.arch, ARCHITECTURES)
        _check_choice("encoder", self.encoder, ENCODERS)
        # A list (from JSON: a stored config, a job's settings) is kept as the tuple it was.
        object.__setattr__(
            self, "decoder_channels", check_decoder_channels(self.arch, self.decoder_channels)
        )
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"Unknown device {self.device!r}; valid: {', '.join(DEVICES)}.")
        if self.size < 32 or self.size % 32:
            raise ValueError(f"size must be a multiple of 32 (>= 32), got {self.size}.")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1.")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive and weight_decay non-negative.")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}.")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError("early_stopping_patience must be >= 1 or None.")
        _check_choice("augmentation preset", self.augment_preset, AUGMENT_PRESETS)
        if self.encoder_weights and self.init_checkpoint:
            raise ValueError(
                "Give encoder_weights (start fresh from pretrained weights) or init_checkpoint "
                "(fine-tune an existing model), not both."
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports. history has one dict per epoch:
    epoch, train_loss, val_loss, val_dice, val_iou, lr, epoch_s."""

    best_checkpoint: Path
    best_epoch: int
    history: list[dict[str, float]]
    val_metrics: dict[str, float]  # full validation metrics at the best epoch
    device: str
    duration_s: float
    images_per_s: float  # training images per second over the training steps, all processes
    world_size: int = 1
    stopped_early: bool = False
    n_train: int = 0
    n_val: int = 0
    # Fine-tunes only: the starting checkpoint's metrics on the same validation images, taken
    # before the first step (what the run has to beat); None when training from scratch.
    initial_metrics: dict[str, float] | None = None
    precision: str = "float32"  # what the forward passes ran in: float32 | bfloat16 | float16


class TrainingCancelled(Cancelled):
    """progress.should_stop() asked the run to stop. best_checkpoint is the best one saved so
    far (complete, never half-written) or None if no epoch finished."""

    def __init__(self, epoch: int, best_checkpoint: Path | None) -> None:
        super().__init__(f"Training cancelled during epoch {epoch}.")
        self.epoch = epoch
        self.best_checkpoint = best_checkpoint
