"""Training recipes: named, measured sets of TrainConfig settings picked in one click (Train
page) or with `pneumolab train --recipe NAME`. Torch-free (the Train page imports this).

- "quick": the CPU default. U-Net/ResNet-18 at 128 px, 15 epochs (Adam, warm-up and cosine
  decay, basic augmentation), flip test-time augmentation and the label's post-processing.
  Sized so that Start -> predictions visible stays within about 5 minutes for ~300 images on
  2 quiet CPU cores.
- "best": U-Net/ResNet-34 at 320 px, 28 epochs, same schedule shape, augmentation, TTA and
  post-processing. Sized for about an hour on 2 CPU cores (minutes on a GPU).
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


_SCHEDULE = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 1,
    "min_lr_ratio": 0.01,
    "loss": "bce_iou",
    "augment": True,
    "augment_preset": "radiograph",
    "tta": True,
    "val_fraction": 0.1,
    "early_stopping_patience": None,
    "batch_size": 8,
}

RECIPES: dict[str, Recipe] = {
    # Measured (bench_cv.py, folds 0-1): a 192 px / 8-epoch AdamW variant with radiograph
    # augmentation scored no better than this and trained slower; flip TTA and the lung
    # post-processing each added a little. So quick is the plain 128 px U-Net plus those two.
    "quick": Recipe(
        "quick",
        "Quick: U-Net/ResNet-18, 128 px, 15 epochs, flip TTA, post-processing "
        "(predictions in about 5 min on a 2-core CPU)",
        {
            "arch": "unet",
            "encoder": "resnet18",
            "size": 128,
            "epochs": 15,
            "optimizer": "adam",
            "lr": 5e-4,
            "loss": "bce_iou",
            "augment": True,
            "augment_preset": "basic",
            "tta": True,
            "val_fraction": 0.2,
            "early_stopping_patience": 10,
            "batch_size": 8,
        },
    ),
    "best": Recipe(
        "best",
        "Best: U-Net/ResNet-34, 320 px, 28 epochs (about an hour on a 2-core CPU)",
        {**_SCHEDULE, "arch": "unet", "encoder": "resnet34", "size": 320, "epochs": 28},
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
