"""Grad-CAM heatmaps for a segmentation model (pytorch-grad-cam, segmentation target).

    with SegmentationGradCam(model, size=meta.size, normalisation=meta.normalisation) as cam:
        heat = cam.heatmap(image)  # (H, W) float32 in [0, 1] at the image's original size

The `with` block matters: GradCAM registers forward/backward hooks on the model, and they
must be removed before the model serves plain predictions again.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from torch import nn

from core.ml.dataset import Normalisation, resize_image, to_unit_float
from core.ml.segnet import SegNet

TARGET_LAYERS = ("decoder", "encoder")


class PredictedRegionTarget:
    """Sum of the logits over a region: 'what made the model predict this region?'.

    Same role as pytorch-grad-cam's SemanticSegmentationTarget, for a single-channel output.
    Without a fixed `region`, the region is read from the very forward pass Grad-CAM makes
    (probability > threshold; the whole image when nothing is predicted), which saves a
    second forward pass per heatmap.
    """

    def __init__(self, region: torch.Tensor | None = None, threshold: float = 0.5) -> None:
        self.region = None if region is None else region.float()
        self.threshold = threshold
        self.used_region: torch.Tensor | None = None

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        logits = model_output[0]
        region = self.region
        if region is None:
            with torch.no_grad():
                region = torch.sigmoid(logits) > self.threshold
                if not bool(region.any()):
                    region = torch.ones_like(region)
                region = region.float()
        self.used_region = region
        return (logits * region.to(logits.device)).sum()


def target_layer(model: nn.Module, which: str = "decoder") -> nn.Module:
    """The layer Grad-CAM reads: the whole decoder (its output is the last feature map before
    the segmentation head: sharp maps) or the encoder's last stage (coarse, semantic).
    SegNet's last stage is its fifth conv block (before its pool: the pool returns a tuple)."""
    if which == "decoder":
        return model.decoder
    if which == "encoder":
        if isinstance(model, SegNet):
            return model.encoder.blocks[-1]
        return model.encoder.layer4
    raise ValueError(f"Unknown Grad-CAM layer {which!r}; valid: {', '.join(TARGET_LAYERS)}.")


class SegmentationGradCam:
    """Context manager around pytorch_grad_cam.GradCAM for our single-class models."""

    def __init__(
        self,
        model: nn.Module,
        size: int,
        normalisation: Normalisation | None = None,
        layer: str = "decoder",
        threshold: float = 0.5,
    ) -> None:
        self.model = model
        self.size = size
        self.normalisation = normalisation or Normalisation()
        self.threshold = threshold
        self._cam = GradCAM(model=model, target_layers=[target_layer(model, layer)])

    def __enter__(self) -> SegmentationGradCam:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Release the hooks ourselves rather than via GradCAM.__exit__, which swallows
        # IndexError; we want every error to reach the caller.
        self._cam.activations_and_grads.release()

    def heatmap(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 heatmap in [0, 1] for a 2-D image in [0, 1] at its original size.

        The target is the predicted region (probability > threshold); when the model predicts
        nothing, the whole image is the target, which shows what argued against a finding.
        """
        small = resize_image(to_unit_float(image, 0), self.size)
        device = next(self.model.parameters()).device
        batch = self.normalisation.apply(torch.from_numpy(small)[None, None].to(device))
        with torch.enable_grad():
            target = PredictedRegionTarget(threshold=self.threshold)
            cam = self._cam(input_tensor=batch, targets=[target])[0]
        cam = np.nan_to_num(cam.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        height, width = image.shape
        heat = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(heat, 0.0, 1.0).astype(np.float32, copy=False)
