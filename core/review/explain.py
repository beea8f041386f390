"""Grad-CAM on demand: what drove a version's predicted region on one image.

The one place where a module that pages import reaches torch, and only inside the call: the
app process loads torch when a reader first asks for a heatmap, not when the Review page
opens (the boundary test pins that the page modules import no torch).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from core.labels.catalog import training_pixels
from core.versions import get_version
from core.workspace import Workspace


@lru_cache(maxsize=2)
def _cached_model(root: str, version_id: int, checkpoint: str):
    from core.ml.checkpoint import load_model  # torch: see the module docstring

    model, _spec, meta = load_model(Path(root) / checkpoint, "cpu")
    return model, meta


def gradcam_heatmap(
    ws: Workspace, image_id: int, version_id: int, threshold: float = 0.5
) -> np.ndarray:
    """Grad-CAM heatmap (float32 in [0, 1], original size) of what drove the predicted region.

    Runs on the CPU of the app process: one image takes about a second at 512 px, far less
    than a job round trip, and keeps the worker free for training.
    """
    from core.ml.gradcam import SegmentationGradCam  # torch: see the module docstring

    version = get_version(ws, version_id)
    model, meta = _cached_model(str(ws.root), version.id, version.checkpoint_path)
    image = training_pixels(ws, image_id)
    with SegmentationGradCam(
        model, size=meta.size, normalisation=meta.normalisation, threshold=threshold
    ) as cam:
        return cam.heatmap(image)
