"""Validation pass: per-image records on each process, metrics from all of them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from core.ml.dataset import Normalisation
from core.ml.metrics import PixelCounts, confusion_at, roc_auc, summarise_counts


@dataclass(frozen=True)
class ImageRecord:
    """One validation image's outcome (picklable: gathered across processes)."""

    counts: PixelCounts
    score: float  # max probability: image-level finding score
    positive: bool  # the label has a finding


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    device: torch.device,
    normalisation: Normalisation,
    threshold: float,
    autocast_dtype: torch.dtype | None,
) -> tuple[list[ImageRecord], float, int]:
    """(records, summed loss x batch size, image count) of this process's validation shard.

    Scores are computed at the training size, not the original image size; the CLI's evaluate
    command measures at the original size.
    """
    model.eval()
    records: list[ImageRecord] = []
    loss_sum, n = 0.0, 0
    for image, mask in loader:
        image = normalisation.apply(image.to(device, non_blocking=True))
        mask = mask.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(image)
        loss_sum += float(loss_fn(logits, mask)) * len(image)
        n += len(image)
        prob = torch.sigmoid(logits.float())
        pred, truth = prob > threshold, mask > 0.5
        dims = (1, 2, 3)
        tp = (pred & truth).sum(dims)
        fp = (pred & ~truth).sum(dims)
        fn = (~pred & truth).sum(dims)
        total = pred[0].numel()
        rows = torch.stack([tp, fp, fn, truth.sum(dims)], 1).cpu().tolist()
        scores = prob.amax(dim=dims).cpu().tolist()
        for (tp_i, fp_i, fn_i, pos_i), score in zip(rows, scores, strict=True):
            counts = PixelCounts(tp_i, fp_i, fn_i, total - tp_i - fp_i - fn_i)
            records.append(ImageRecord(counts, score, pos_i > 0))
    return records, loss_sum, n


def summarise_validation(
    records: list[ImageRecord], loss_sum: float, n: int, threshold: float
) -> dict[str, float]:
    """Segmentation scores (per-image mean and pooled), val loss and image-level scores.

    Image-level sensitivity/specificity use the segmentation threshold as operating point
    (an image is called positive when any pixel is); AUC appears only when the validation
    set has both positive and negative images.
    """
    metrics = {"val_loss": loss_sum / max(n, 1), "n_images": float(len(records))}
    metrics.update(summarise_counts([r.counts for r in records]))
    scores = [r.score for r in records]
    labels = [r.positive for r in records]
    if any(labels) and not all(labels):
        confusion = confusion_at(scores, labels, threshold)
        metrics["image_auc"] = roc_auc(scores, labels)
        metrics["image_sensitivity"] = confusion.sensitivity
        metrics["image_specificity"] = confusion.specificity
    return metrics
