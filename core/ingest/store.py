"""Image store: pixels as lossless PNG named by content hash, written atomically."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from annotations.files import atomic_write_bytes
from core.imaging.png import encode_png

THUMB_SIDE = 160


@dataclass(frozen=True)
class StoredPixels:
    array: np.ndarray  # uint8 or uint16, what goes into the PNG
    offset: float  # modality value = array * scale + offset
    scale: float


def quantise(pixels: np.ndarray, lo: float, hi: float) -> StoredPixels:
    """Pack float modality values into uint8/uint16 losslessly when they are integers."""
    pmin, pmax = float(pixels.min()), float(pixels.max())
    integral = bool(np.all(pixels == np.round(pixels)))
    if integral and pmin >= 0 and pmax <= 255 and hi <= 255:
        return StoredPixels(pixels.astype(np.uint8), 0.0, 1.0)
    if integral and pmax - pmin <= 65535:
        offset = pmin if (pmin < 0 or pmax > 65535) else 0.0
        return StoredPixels((pixels - offset).astype(np.uint16), offset, 1.0)
    # Non-integer rescale (rare for CR/DX): 16-bit quantisation of the used range.
    scale = max(pmax - pmin, 1e-6) / 65535.0
    arr = np.round((pixels - pmin) / scale).astype(np.uint16)
    return StoredPixels(arr, pmin, scale)


def content_hash(stored: StoredPixels) -> str:
    h = hashlib.sha256()
    a = stored.array
    h.update(f"{a.shape[0]}x{a.shape[1]}:{a.dtype.str}:{stored.offset}:{stored.scale}|".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def image_relpath(digest: str) -> str:
    return f"images/{digest[:2]}/{digest}.png"


def thumb_relpath(digest: str) -> str:
    return f"thumbs/{digest[:2]}/{digest}.png"


def write_image(store_dir: Path, digest: str, stored: StoredPixels) -> str:
    rel = image_relpath(digest)
    path = store_dir / rel
    if not path.exists():
        atomic_write_bytes(path, encode_png(stored.array))
    return rel


def write_thumbnail(store_dir: Path, digest: str, display_u8: np.ndarray) -> str:
    rel = thumb_relpath(digest)
    h, w = display_u8.shape
    scale = THUMB_SIDE / max(h, w)
    small = cv2.resize(
        display_u8,
        (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA,
    )
    atomic_write_bytes(store_dir / rel, encode_png(small, compression=6))
    return rel


def read_pixels(store_dir: Path, rel: str, offset: float, scale: float) -> np.ndarray:
    """Modality values (float32) of a stored image."""
    path = store_dir / rel
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FileNotFoundError(f"stored image {rel} is missing or unreadable in {store_dir}")
    out = arr.astype(np.float32)
    if scale != 1.0:
        out *= np.float32(scale)
    if offset:
        out += np.float32(offset)
    return out
