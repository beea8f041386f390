"""Losses against values worked out by hand on a 2x2 example.

p = sigmoid(logits) = [0.8, 0.2, 0.6, 0.4], target = [1, 0, 1, 0]:
intersection 1.4, sum(p) 2.0, sum(t) 2.0; probability given to the true class
p_t = [0.8, 0.8, 0.6, 0.6].
"""

from __future__ import annotations

import math

import pytest
import torch

from core import vocab
from core.ml.losses import (
    LOSSES,
    BCEJaccardLoss,
    BCELoss,
    DiceLoss,
    FocalLoss,
    HybridLoss,
    SoftJaccardLoss,
    SSIMLoss,
    create_loss,
)

PROBS = torch.tensor([0.8, 0.2, 0.6, 0.4])
TARGET = torch.tensor([1.0, 0.0, 1.0, 0.0]).reshape(1, 1, 2, 2)
LOGITS = torch.log(PROBS / (1 - PROBS)).reshape(1, 1, 2, 2)
BCE = (2 * -math.log(0.8) + 2 * -math.log(0.6)) / 4  # 0.366985


def test_bce_is_mean_negative_log_likelihood():
    assert BCELoss()(LOGITS, TARGET).item() == pytest.approx(BCE, abs=1e-6)


def test_dice_with_smoothing_one():
    # 1 - (2 * 1.4 + 1) / (2.0 + 2.0 + 1) = 1 - 3.8 / 5 = 0.24
    assert DiceLoss()(LOGITS, TARGET).item() == pytest.approx(0.24, abs=1e-6)


def test_soft_jaccard_with_smoothing_one():
    # union = 2 + 2 - 1.4 = 2.6; 1 - (1.4 + 1) / (2.6 + 1) = 1/3
    assert SoftJaccardLoss()(LOGITS, TARGET).item() == pytest.approx(1 / 3, abs=1e-6)


def test_bce_iou_is_the_sum_of_both():
    assert BCEJaccardLoss()(LOGITS, TARGET).item() == pytest.approx(BCE + 1 / 3, abs=1e-6)


def test_focal_gamma_two():
    expected = (2 * 0.2**2 * -math.log(0.8) + 2 * 0.4**2 * -math.log(0.6)) / 4  # 0.045329
    assert FocalLoss(gamma=2.0)(LOGITS, TARGET).item() == pytest.approx(expected, abs=1e-6)


def test_focal_with_gamma_zero_is_bce():
    assert FocalLoss(gamma=0.0)(LOGITS, TARGET).item() == pytest.approx(BCE, abs=1e-6)


def _reference_focal(logits, target, gamma, alpha):
    """Lin et al. 2017, eq. 5, written out without torchvision (alpha None: no weighting)."""
    p = torch.sigmoid(logits.double())
    t = target.double()
    p_t = p * t + (1 - p) * (1 - t)
    loss = -((1 - p_t) ** gamma) * torch.log(p_t)
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.mean().item()


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (0.0, None), (1.5, 0.25), (2.0, 0.8)])
def test_focal_matches_the_formula_on_random_logits(gamma, alpha):
    torch.manual_seed(7)
    logits = torch.randn(3, 1, 16, 16) * 3
    target = (torch.rand(3, 1, 16, 16) > 0.7).float()
    loss = FocalLoss(gamma=gamma, alpha=alpha)(logits, target).item()
    assert loss == pytest.approx(_reference_focal(logits, target, gamma, alpha), rel=1e-5)


def test_focal_default_applies_no_alpha():
    """torchvision's own default is alpha=0.25; ours is None (both classes weigh the same)."""
    torch.manual_seed(8)
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    default = FocalLoss()(logits, target).item()
    assert default == pytest.approx(_reference_focal(logits, target, 2.0, None), rel=1e-5)
    assert default != pytest.approx(_reference_focal(logits, target, 2.0, 0.25), rel=1e-3)


@pytest.mark.parametrize("loss", [DiceLoss(), SoftJaccardLoss()])
def test_overlap_losses_still_penalise_a_batch_of_empty_masks(loss):
    """Regression: smp's Dice/Jaccard zero the loss on an all-empty batch, which would make
    explicit negative images teach nothing. p = 0.5 on 4 pixels: 1 - 1 / (2 + 1) = 2/3."""
    empty = torch.zeros(1, 1, 2, 2)
    assert loss(torch.zeros(1, 1, 2, 2), empty).item() == pytest.approx(2 / 3, abs=1e-6)


def test_registered_losses_are_the_vocabulary():
    assert set(LOSSES) == set(vocab.LOSSES)


def test_ssim_of_constant_maps():
    # No variance anywhere, so SSIM is the luminance term only:
    # (2 * 0.5 * 1 + c1) / (0.25 + 1 + c1) with c1 = 1e-4.
    logits = torch.zeros(1, 1, 16, 16)  # p = 0.5 everywhere
    target = torch.ones(1, 1, 16, 16)
    c1 = 0.01**2
    expected = 1 - (1.0 + c1) / (1.25 + c1)
    assert SSIMLoss()(logits, target).item() == pytest.approx(expected, abs=1e-5)


def test_hybrid_is_jaccard_plus_ssim_plus_focal():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 24, 24)
    target = (torch.rand(2, 1, 24, 24) > 0.5).float()
    parts = SoftJaccardLoss()(logits, target) + SSIMLoss()(logits, target)
    parts = parts + FocalLoss()(logits, target)
    assert HybridLoss()(logits, target).item() == pytest.approx(parts.item(), abs=1e-6)


@pytest.mark.parametrize("name", ["bce", "dice", "bce_iou", "hybrid"])
def test_confident_correct_prediction_scores_near_zero(name):
    target = torch.zeros(1, 1, 32, 32)
    target[..., 8:24, 8:24] = 1.0
    logits = (target * 2 - 1) * 20.0
    wrong = -logits
    loss = create_loss(name)
    assert loss(logits, target).item() < 0.01
    assert loss(wrong, target).item() > 0.5


def test_losses_have_gradients():
    logits = LOGITS.clone().requires_grad_(True)
    HybridLoss()(logits, TARGET).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_shape_mismatch_is_refused_with_shapes_in_message():
    with pytest.raises(ValueError, match=r"\(1, 1, 2, 2\)"):
        DiceLoss()(LOGITS, torch.zeros(1, 1, 3, 3))


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="bce, bce_iou, dice, hybrid"):
        create_loss("lovasz")
