"""Grad-CAM on demand: what drove a version's predicted region on one image.

The one place where a module that pages import reaches torch, and only inside the call: the
app process loads torch when a reader first asks for a heatmap, not when the Review page
opens (the boundary test pins that the page modules import no torch).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.labels.catalog import training_pixels
from core.versions import VersionInfo, get_version
from core.workspace import Workspace


@lru_cache(maxsize=2)
def _cached_model(root: str, version_id: int, checkpoint: str):
    from core.ml.checkpoint import load_model  # torch: see the module docstring

    model, _spec, meta = load_model(Path(root) / checkpoint, "cpu")
    return model, meta


# How many images of the worklist's head the prediction job explains ahead of the reader.
REVIEW_FIRST_PAGE = 10


def gradcam_cache_path(
    ws: Workspace, version: VersionInfo, image_id: int, threshold: float
) -> Path:
    """Where a version's heatmap of an image is kept: in the version's run folder (next to
    its checkpoint), so it goes when the version's files go."""
    folder = (ws.root / version.checkpoint_path).parent / "gradcam"
    return folder / f"{image_id}_t{round(threshold * 1000):04d}.png"


def cached_heatmap(
    ws: Workspace, image_id: int, version_id: int, threshold: float = 0.5
) -> np.ndarray | None:
    """The stored heatmap (float32 in [0, 1], original size) or None. No torch: a page can
    show a cached heatmap without loading the model."""
    import cv2

    path = gradcam_cache_path(ws, get_version(ws, version_id), image_id, threshold)
    if not path.is_file():
        return None
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if data is None else data.astype(np.float32) / 255.0


def _store(path: Path, heat: np.ndarray) -> None:
    from annotations.files import atomic_write_bytes
    from core.imaging.png import encode_png

    # Atomic: the page and the prediction job may write the same heatmap at once. A failed
    # write only loses the cache.
    with contextlib.suppress(OSError):
        atomic_write_bytes(path, encode_png(np.round(heat * 255.0).astype(np.uint8)))


def gradcam_heatmap(
    ws: Workspace, image_id: int, version_id: int, threshold: float = 0.5
) -> np.ndarray:
    """Grad-CAM heatmap (float32 in [0, 1], original size) of what drove the predicted region,
    cached per (version, image, threshold) in the version's run folder.

    A cached heatmap is read back (8-bit, as stored) without loading torch. Otherwise it runs
    on the CPU of the app process: one image takes about a second at 512 px, far less than a
    job round trip, and keeps the worker free for training; the result is stored.
    """
    cached = cached_heatmap(ws, image_id, version_id, threshold)
    if cached is not None:
        return cached
    version = get_version(ws, version_id)
    heat = _compute(ws, version, image_id, threshold)
    _store(gradcam_cache_path(ws, version, image_id, threshold), heat)
    # Read back what was stored, so a first and a cached view show the same pixels.
    return np.round(heat * 255.0) / 255.0


def _compute(ws: Workspace, version: VersionInfo, image_id: int, threshold: float) -> np.ndarray:
    import torch

    from core.ml.gradcam import SegmentationGradCam  # torch: see the module docstring

    model, meta = _cached_model(str(ws.root), version.id, version.checkpoint_path)
    image = training_pixels(ws, image_id)
    before = torch.get_num_threads()
    # On a busy machine (a worker training beside the app) torch's threads wait on each
    # other: one thread then gives the heatmap several times sooner than two.
    torch.set_num_threads(free_threads(before))
    try:
        with SegmentationGradCam(
            model, size=meta.size, normalisation=meta.normalisation, threshold=threshold
        ) as cam:
            return cam.heatmap(image)
    finally:
        torch.set_num_threads(before)


def free_threads(most: int) -> int:
    """Threads for one heatmap: the cores the last minute left idle, between 1 and most."""
    idle = (os.cpu_count() or 1) - os.getloadavg()[0]
    return max(1, min(most, int(idle)))


def precompute_heatmaps(
    ws: Workspace,
    version_id: int,
    image_ids: Sequence[int],
    threshold: float = 0.5,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Compute and store the heatmaps of image_ids not cached yet (the prediction job calls
    this for the head of the review worklist). Returns how many were computed."""
    version = get_version(ws, version_id)
    done = 0
    for image_id in image_ids:
        if should_stop is not None and should_stop():
            break
        path = gradcam_cache_path(ws, version, image_id, threshold)
        if path.is_file():
            continue
        _store(path, _compute(ws, version, image_id, threshold))
        done += 1
    return done
