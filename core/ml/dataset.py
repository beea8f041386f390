"""Training data without a database: items, patient-wise split, resize cache, torch Dataset.

The workspace service builds `TrainItem`s (closures over the image store and the annotation
rasteriser); everything here only sees arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from annotations.files import atomic_write_bytes
from core.imaging.png import encode_png
from core.ml.augment import AugmentConfig, augment_pair


@dataclass(frozen=True)
class TrainItem:
    """One labelled image. Both callables return arrays at the image's original size.

    load_image: 2-D float32 in [0, 1] (uint8 is accepted and scaled by 1/255).
    mask: 2-D bool, same shape; all False for an explicit negative ("reviewed: no finding").
    """

    image_id: int
    patient_key: str | None
    load_image: Callable[[], np.ndarray] = field(repr=False, compare=False)
    mask: Callable[[], np.ndarray] = field(repr=False, compare=False)
    # Names the decoded pixels (e.g. the store's content hash) for the on-disk resize cache;
    # None keeps this image out of it.
    cache_key: str | None = None


@dataclass(frozen=True)
class Normalisation:
    """Intensity normalisation applied to [0, 1] images before the network.

    Defaults are the mean/std of ImageNet's RGB channels averaged, so an ImageNet encoder whose
    first convolution was summed to one channel sees the statistics it was trained on.
    """

    mean: float = 0.449
    std: float = 0.226

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch - self.mean) / self.std


def patient_of(item: TrainItem) -> str:
    """The key an item is split by: its patient, or the image itself when none is known."""
    # Images without a patient are their own patient; the prefix cannot clash with real keys
    # because those are hashed ids (hex) in the workspace.
    return item.patient_key if item.patient_key is not None else f"\x00image:{item.image_id}"


def patient_split(
    items: Sequence[TrainItem], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[TrainItem], list[TrainItem]]:
    """Split into (train, val) so that no patient has images on both sides.

    Patients are ordered by a seeded hash of their key (independent of the input order) and
    taken into validation until it holds at least val_fraction of the images. With two or
    more patients and 0 < val_fraction < 1, both sides get at least one patient.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    by_patient: dict[str, list[TrainItem]] = {}
    for item in items:
        by_patient.setdefault(patient_of(item), []).append(item)

    def rank(key: str) -> str:
        return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()

    patients = sorted(by_patient, key=rank)
    target = val_fraction * len(items)
    val_patients: set[str] = set()
    n_val = 0
    for key in patients[:-1]:  # the last patient always stays in training
        if n_val >= target or val_fraction == 0.0:
            break
        val_patients.add(key)
        n_val += len(by_patient[key])
    train = [it for it in items if patient_of(it) not in val_patients]
    val = [it for it in items if patient_of(it) in val_patients]
    return train, val


def patient_folds(items: Sequence[TrainItem], k: int = 5, seed: int = 0) -> list[list[TrainItem]]:
    """k disjoint folds, no patient in two, as even in images as whole patients allow.

    Patients are ordered by the same seeded hash as patient_split (independent of the input
    order), the largest first, and each goes to the fold with the fewest images so far.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}.")
    by_patient: dict[str, list[TrainItem]] = {}
    for item in items:
        by_patient.setdefault(patient_of(item), []).append(item)
    if len(by_patient) < k:
        raise ValueError(f"{len(by_patient)} patients cannot fill {k} folds; label more patients.")

    def rank(key: str) -> str:
        return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()

    patients = sorted(by_patient, key=lambda key: (-len(by_patient[key]), rank(key)))
    folds: list[list[TrainItem]] = [[] for _ in range(k)]
    for key in patients:
        smallest = min(range(k), key=lambda f: (len(folds[f]), f))
        folds[smallest].extend(by_patient[key])
    return folds


def to_unit_float(image: np.ndarray, image_id: int) -> np.ndarray:
    """A 2-D image as float32 in [0, 1] (uint8 scaled by 1/255); ValueError otherwise."""
    if image.ndim != 2:
        raise ValueError(f"Image {image_id}: expected a 2-D grayscale array, got {image.shape}.")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32, copy=False)
    if image.size and (float(image.min()) < 0.0 or float(image.max()) > 1.0):
        raise ValueError(f"Image {image_id}: intensities must lie in [0, 1].")
    return image


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D float image to (size, size); area averaging when shrinking."""
    shrinking = image.shape[0] > size or image.shape[1] > size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a bool mask by area coverage (>= half a pixel), so thin labels survive better
    than with nearest-neighbour sampling."""
    return resize_image(mask.astype(np.float32), size) >= 0.5


class ResizedCache:
    """Decoded images and masks at the training size, kept in memory as uint8 / bool.

    Filled once (`warm`) in the main process before DataLoader workers start, so workers
    inherit it and no epoch after the first decodes a DICOM again. 256x256 costs 128 KiB per
    image (image + mask). With disk_dir, resized images of items that have a cache_key are
    also kept there as PNG, so the next run (a fine-tune, a benchmark rerun) skips decoding
    too. Masks are not kept on disk: they change with every new revision and rasterise fast.
    """

    def __init__(self, size: int, disk_dir: str | Path | None = None) -> None:
        self.size = size
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self._store: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.decoded = 0  # images decoded at full size by this cache (not found on disk)

    def __len__(self) -> int:
        return len(self._store)

    def _disk_path(self, item: TrainItem) -> Path | None:
        if self.disk_dir is None or item.cache_key is None:
            return None
        return self.disk_dir / f"{self.size}" / f"{item.cache_key}.png"

    def _small_image(self, item: TrainItem) -> tuple[np.ndarray, tuple[int, int] | None]:
        """(uint8 image at cache size, original (H, W) if it was decoded, else None)."""
        path = self._disk_path(item)
        if path is not None and path.is_file():
            small = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if small is not None and small.shape == (self.size, self.size):
                return small, None
        image = to_unit_float(item.load_image(), item.image_id)
        self.decoded += 1
        small = np.rint(np.clip(resize_image(image, self.size), 0.0, 1.0) * 255.0)
        small = small.astype(np.uint8)
        if path is not None:
            _write_png_atomic(path, small)
        return small, image.shape

    def _decode(self, item: TrainItem) -> tuple[np.ndarray, np.ndarray]:
        small, shape = self._small_image(item)
        mask = np.asarray(item.mask()).astype(bool)
        if shape is not None and mask.shape != shape:
            raise ValueError(
                f"Image {item.image_id}: mask shape {mask.shape} differs from image {shape}."
            )
        return small, resize_mask(mask, self.size)

    def get(self, item: TrainItem) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 image, bool mask) at the cache size; decodes on first request."""
        cached = self._store.get(item.image_id)
        if cached is None:
            cached = self._store[item.image_id] = self._decode(item)
        return cached

    def warm(self, items: Sequence[TrainItem], threads: int | None = None) -> None:
        """Decode every missing item, in threads (OpenCV and most decoders release the GIL)."""
        missing = [it for it in items if it.image_id not in self._store]
        threads = threads or min(8, os.cpu_count() or 1)
        if threads <= 1 or len(missing) <= 1:
            for item in missing:
                self.get(item)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for item, pair in zip(missing, pool.map(self._decode, missing), strict=True):
                self._store[item.image_id] = pair


def _write_png_atomic(path: Path, image: np.ndarray) -> None:
    # Atomic: another run may read the cache at the same time. Caching only saves time, so a
    # failed write leaves training to go on without it.
    with contextlib.suppress(OSError):
        atomic_write_bytes(path, encode_png(image))


class SegmentationDataset(Dataset):
    """Yields ((1,H,W) float image in [0,1], (1,H,W) float mask) at the cache size.

    Augmentation draws from an RNG seeded by (seed, epoch, index), so a run is reproducible
    whatever the number of DataLoader workers; call set_epoch() before each epoch.
    """

    def __init__(
        self,
        items: Sequence[TrainItem],
        size: int,
        augment: bool,
        cache: ResizedCache,
        seed: int = 0,
        augment_config: AugmentConfig | None = None,
    ) -> None:
        if cache.size != size:
            raise ValueError(f"Cache holds size {cache.size}, dataset wants {size}.")
        self.items = list(items)
        self.size = size
        self.augment = augment
        self.cache = cache
        self.seed = seed
        self.augment_config = augment_config or AugmentConfig()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getstate__(self) -> dict:
        # Sent to spawned DataLoader workers: ship the decoded arrays, not the items, whose
        # loaders are closures (often over a DB session) that cannot be pickled.
        state = self.__dict__.copy()
        state["_pairs"] = [self.cache.get(item) for item in self.items]
        state["items"], state["cache"] = None, None
        return state

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self._pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.items is not None:
            image_u8, mask = self.cache.get(self.items[index])
        else:
            image_u8, mask = self._pairs[index]
        image = image_u8.astype(np.float32) / 255.0
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image, mask = augment_pair(image, mask, rng, self.augment_config)
        return (
            torch.from_numpy(np.ascontiguousarray(image))[None],
            torch.from_numpy(mask.astype(np.float32))[None],
        )
