"""Recipes resolve to the configs they state; folds are patient-wise and balanced."""

from __future__ import annotations

import numpy as np
import pytest

from core.ml.augment import PRESETS, RADIOGRAPH, augment_pair
from core.ml.dataset import TrainItem, patient_folds, patient_of
from core.ml.training.config import AUGMENT_PRESETS, TrainConfig
from core.ml.training.recipes import RECIPES, get_recipe


def test_quick_and_best_state_their_network_size_schedule_and_inference_options():
    quick = TrainConfig(**get_recipe("quick").config_fields("lung"))
    assert (quick.arch, quick.encoder, quick.size, quick.epochs) == ("unet", "resnet18", 128, 30)
    best = TrainConfig(**get_recipe("best").config_fields("lung"))
    assert (best.arch, best.encoder, best.size, best.epochs) == ("unet", "resnet18", 256, 60)
    for config in (quick, best):
        assert config.decoder_channels == (128, 64, 32, 16, 8)
        assert (config.optimizer, config.batch_size, config.augment_preset) == (
            "adamw",
            4,
            "basic",
        )
        assert config.early_stopping_patience is None  # the cosine schedule runs to its end
        assert config.tta
        assert config.postprocess == {"keep_components": 2, "fill_holes": True}
        assert config.encoder_weights is None  # nothing downloaded
    # A finding has no post-processing option: the recipe leaves its masks as predicted.
    assert get_recipe("quick").config_fields("pneumonia")["postprocess"] is None


def test_an_unknown_recipe_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="quick, best, update"):
        get_recipe("fastest")
    assert set(RECIPES) == {"quick", "best", "update"}


def test_augmentation_presets_match_the_names_the_config_checks():
    assert tuple(PRESETS) == AUGMENT_PRESETS
    with pytest.raises(ValueError, match="augmentation preset 'strong'"):
        TrainConfig(augment_preset="strong")


def test_radiograph_augmentation_keeps_mask_binary_and_never_flips_vertically():
    mask = np.zeros((64, 64), bool)
    mask[4:24, 10:54] = True  # in the top third
    image = np.where(mask, 0.8, 0.2).astype(np.float32)
    for seed in range(25):
        out_image, out_mask = augment_pair(image, mask, np.random.default_rng(seed), RADIOGRAPH)
        assert out_mask.dtype == bool and out_image.min() >= 0.0 and out_image.max() <= 1.0
        rows = np.nonzero(out_mask.any(axis=1))[0]
        assert rows.mean() < 32  # still in the top half: no vertical flip


def _items(sizes: list[int]) -> list[TrainItem]:
    items, n = [], 0
    for p, count in enumerate(sizes):
        for _ in range(count):
            items.append(TrainItem(n, f"{p:04x}", lambda: None, lambda: None))
            n += 1
    return items


def test_folds_keep_each_patient_in_one_fold_and_balance_images():
    items = _items([1, 2, 3, 1, 1, 4, 2, 1, 1, 2, 1, 1])
    folds = patient_folds(items, 5, seed=0)
    assert sorted(it.image_id for f in folds for it in f) == list(range(len(items)))
    owners = {}
    for k, fold in enumerate(folds):
        for it in fold:
            assert owners.setdefault(patient_of(it), k) == k
    sizes = sorted(len(f) for f in folds)
    assert sizes[-1] - sizes[0] <= 4  # the largest patient has 4 images
    # The input order does not move anyone to another fold.
    again = patient_folds(list(reversed(items)), 5, seed=0)
    assert [{it.image_id for it in f} for f in folds] == [{it.image_id for it in f} for f in again]


def test_too_few_patients_for_the_folds_is_refused():
    with pytest.raises(ValueError, match="3 patients cannot fill 5 folds"):
        patient_folds(_items([2, 2, 2]), 5)
