"""Training recipes: named, measured sets of TrainConfig settings picked in one click (Train
page) or with `pneumolab train --recipe NAME`. Torch-free (the Train page imports this).

- "quick": the CPU default. U-Net/ResNet-18 with a narrow decoder at 128 px, 30 epochs in
  batches of 4 (AdamW, warm-up and cosine decay, basic augmentation), flip test-time
  augmentation and the label's post-processing. Sized so that Start -> predictions visible
  stays within about 5 minutes for ~300 images on 2 quiet CPU cores.
- "best": the same network and schedule shape at 256 px, 60 epochs (5-fold CV: 0.9575 against
  0.9545 at 40 epochs, better on every fold). Sized well within an hour on 2 CPU cores
  (minutes on a GPU).
- "update": the short fine-tune of "Update model" after corrections (3 epochs, no warm-up,
  from the active version; network, size, augmentation, optimizer, TTA and post-processing
  are the parent's, at a fifth of its learning rate: core.tasks.submit.update_fields).

The figures behind these choices are printed by bench/bench_cv.py (patient-wise 5-fold
cross-validation at the images' original resolution).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.ml.postprocess import postprocess_for


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str  # one line for the Train page
    settings: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    label_postprocess: bool = True  # apply the label's post-processing option

    def config_fields(self, label: str) -> dict[str, Any]:
        """TrainConfig keyword arguments of this recipe for `label`."""
        out = dict(self.settings)
        option = postprocess_for(label) if self.label_postprocess else None
        out["postprocess"] = option.to_dict() if option is not None else None
        out["recipe"] = self.name
        return out


# A narrow U-Net decoder: on 2 CPU cores it trains 1.5x (128 px) to 1.7x (256 px) faster than
# smp's (256, 128, 64, 32, 16) for a small loss of Dice (bench_cv: -0.0015 at equal epochs),
# which the epochs it buys more than repay.
NARROW_DECODER = (128, 64, 32, 16, 8)

_SCHEDULE = {
    "arch": "unet",
    "encoder": "resnet18",
    "decoder_channels": NARROW_DECODER,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 1,
    "min_lr_ratio": 0.01,
    "loss": "bce_iou",
    "augment": True,
    "augment_preset": "basic",
    "tta": True,
    "val_fraction": 0.1,
    "early_stopping_patience": None,
    "batch_size": 4,
}

RECIPES: dict[str, Recipe] = {
    # Measured (bench_cv.py, patient-wise folds at the original resolution; figures in the
    # closing note of issue 14): from scratch on ~250 X-rays, the schedule length is the lever
    # that counts. 15 -> 30 epochs at 128 px: +0.006 Dice; batches of 4 instead of 8 (twice
    # the steps for the same compute): +0.002; AdamW 3e-3 instead of 1e-3: no gain. No gain
    # either (folds 0-1): area-coverage (soft) mask targets (-0.001), scale TTA (-0.001), a
    # threshold other than 0.5, an ensemble of three runs (+0.0003), the radiograph
    # augmentation preset (-0.0005), DeepLabV3+/ResNet-18 instead of U-Net (-0.003, and 1.45x
    # slower).
    "quick": Recipe(
        "quick",
        "Quick: U-Net/ResNet-18, 128 px, 30 epochs, flip TTA, post-processing "
        "(predictions in about 5 min on a 2-core CPU)",
        {**_SCHEDULE, "size": 128, "epochs": 30},
    ),
    "best": Recipe(
        "best",
        "Best: U-Net/ResNet-18, 256 px, 60 epochs, flip TTA, post-processing "
        "(about 25 min on a 2-core CPU)",
        {**_SCHEDULE, "size": 256, "epochs": 60},
    ),
    "update": Recipe(
        "update",
        "Update: fine-tune the active model on corrected labels (3 short epochs)",
        {
            **_SCHEDULE,
            "lr": 2e-4,
            "warmup_epochs": 0,
            "epochs": 3,
        },
    ),
}
# What the Train page offers in one click, first the default on CPU.
USER_RECIPES: tuple[str, ...] = ("quick", "best")
DEFAULT_RECIPE = "quick"


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; ValueError listing the valid names otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
