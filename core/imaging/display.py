"""Display renditions: window/level presets and the windowed, downscaled uint8 image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Window:
    center: float
    width: float


PRESET_NAMES = ("default", "full range", "lung", "soft tissue", "bone")


def default_window(pixels: np.ndarray, meta_center, meta_width, lo: float, hi: float) -> Window:
    """The header's window when there is one, else the full representable range."""
    if meta_center is not None and meta_width:
        return Window(float(meta_center), float(meta_width))
    if hi - lo <= 256:
        return Window((lo + hi) / 2, hi - lo + 1)
    p1, p99 = np.percentile(pixels[:: max(1, pixels.shape[0] // 512)], [0.5, 99.5])
    return Window(float(p1 + p99) / 2, float(max(p99 - p1, 1.0)))


def window_presets(
    pixels: np.ndarray,
    meta_center: float | None,
    meta_width: float | None,
    lo: float,
    hi: float,
) -> dict[str, Window]:
    """Named windows. X-ray values carry no Hounsfield scale, so tissue presets come from the
    image's own histogram: lung = the dark half, soft tissue = the middle, bone = the bright end.
    """
    sample = pixels[:: max(1, pixels.shape[0] // 512), :: max(1, pixels.shape[1] // 512)]
    q = np.percentile(sample, [1, 10, 40, 60, 70, 99.5])

    def span(a: float, b: float) -> Window:
        return Window((a + b) / 2, max(b - a, 1.0))

    return {
        "default": default_window(pixels, meta_center, meta_width, lo, hi),
        "full range": span(lo, hi),
        "lung": span(q[0], q[3]),
        "soft tissue": span(q[1], q[5]),
        "bone": span(q[4], q[5]),
    }


def full_scale_window(lo: float, hi: float) -> Window:
    """The window apply_window maps exactly onto 0..255 from lo..hi: 255 * (v - lo) / (hi - lo).

    PS3.3's linear function puts the window's ends at c - 0.5 -/+ (w - 1) / 2, hence the half
    unit and the extra one: the default window of a VOI output the header already shaped.
    """
    return Window(center=(lo + hi) / 2 + 0.5, width=hi - lo + 1)


def apply_window(pixels: np.ndarray, window: Window) -> np.ndarray:
    """Linear window/level to uint8 (DICOM PS3.3 C.11.2.1.2 linear function)."""
    c, w = float(window.center), max(float(window.width), 1.0)
    low = c - 0.5 - (w - 1) / 2
    out = (pixels.astype(np.float32) - np.float32(low)) * np.float32(255.0 / max(w - 1, 1.0))
    return np.clip(out, 0, 255).astype(np.uint8)


def render_display(pixels: np.ndarray, window: Window, max_side: int | None = None) -> np.ndarray:
    """Display rendition: windowed uint8, downscaled (area) so its long side is <= max_side."""
    out = apply_window(pixels, window)
    h, w = out.shape
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    return out


def model_input(
    pixels: np.ndarray, meta_center: float | None, meta_width: float | None, lo: float, hi: float
) -> np.ndarray:
    """What models train and predict on: the default window at full size, float32 in [0, 1].
    One rule for stored images (core.labels.catalog) and files given to the CLI."""
    window = default_window(pixels, meta_center, meta_width, lo, hi)
    return render_display(pixels, window).astype(np.float32) / 255.0
