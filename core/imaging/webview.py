"""The image as the browser's annotator receives it, and the viewer's automatic window.

`encode_web_png` packs modality values into 16 bits spread over two 8-bit PNG channels
(red = high byte, green = low byte), so the browser decodes them exactly and does every
window/level change itself. Modality value = ``offset + stored / scale``: exact (scale 1)
whenever the values are integers spanning at most 65,536 steps, quantised to 65,536 levels
otherwise.

`auto_window` is what the viewer opens CR/DX images with: a window from the pixel histogram
of the anatomy (collimator edges and the empty background excluded), not the header's
full-range window. Models never see it: they keep `core.imaging.display.model_input`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.imaging.display import Window

LEVELS = 65536
AUTO_WINDOW_MODALITIES = ("CR", "DX")


@dataclass(frozen=True)
class WebImage:
    png: bytes  # RGB PNG: R = high byte, G = low byte of the stored value, B = 0
    offset: float  # modality value of stored value 0
    scale: float  # stored steps per modality unit


def _sample(pixels: np.ndarray, side: int = 512) -> np.ndarray:
    step_y = max(1, pixels.shape[0] // side)
    step_x = max(1, pixels.shape[1] // side)
    return pixels[::step_y, ::step_x]


def encode_web_png(pixels: np.ndarray, lo: float, hi: float) -> WebImage:
    """`pixels` (modality values, higher = brighter) as the annotator's 16-bit RGB PNG."""
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"expected a non-empty 2-D greyscale image, got shape {pixels.shape}")
    lo, hi = float(min(lo, pixels.min())), float(max(hi, pixels.max()))
    span = hi - lo
    sample = _sample(pixels)
    integral = bool(np.all(np.equal(np.mod(sample, 1.0), 0.0)))
    scale = 1.0 if integral and span < LEVELS else (LEVELS - 1) / max(span, 1e-6)
    # Exact integers: float32 is exact and fast. Quantised: float64, so rounding is right.
    shifted = np.subtract(pixels, lo, dtype=np.float32 if scale == 1.0 else np.float64)
    if scale != 1.0:
        shifted *= scale
        np.rint(shifted, out=shifted)
    stored = np.clip(shifted, 0, LEVELS - 1, out=shifted).astype(np.uint16)
    bgr = np.zeros((*stored.shape, 3), np.uint8)
    bgr[..., 2] = stored >> 8  # OpenCV writes BGR: index 2 is the PNG's red channel
    bgr[..., 1] = stored & 0xFF
    # Huffman-only deflate: a little larger than the default, in a third of the time.
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, 2]
    ok, buf = cv2.imencode(".png", bgr, params)
    if not ok:
        raise RuntimeError("could not encode the image for the browser")
    return WebImage(buf.tobytes(), lo, scale)


def decode_web_png(data: bytes, offset: float, scale: float) -> np.ndarray:
    """The modality values back from `encode_web_png`'s PNG (what the browser computes)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    stored = bgr[..., 2].astype(np.uint32) * 256 + bgr[..., 1]
    return offset + stored / scale


def auto_window(pixels: np.ndarray) -> Window:
    """A robust window over the anatomy: the 1st..99th percentile of the pixels that are
    neither the darkest nor the brightest plateau (air outside the patient, collimator
    blades, burned-in borders), which a full-range window spends most of its grey levels on.
    """
    sample = _sample(pixels).astype(np.float64).ravel()
    lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        return Window(lo, 1.0)
    margin = (hi - lo) * 0.002
    body = sample[(sample > lo + margin) & (sample < hi - margin)]
    if body.size < 0.05 * sample.size:
        body = sample
    p_lo, p_hi = np.percentile(body, [1.0, 99.0])
    if p_hi <= p_lo:
        p_lo, p_hi = lo, hi
    return Window(float(p_lo + p_hi) / 2, float(max(p_hi - p_lo, 1.0)))


def viewer_window(
    modality: str, pixels: np.ndarray, header: Window | None, fallback: Window
) -> Window:
    """The window the annotator opens an image with: automatic for CR/DX (their header
    window is usually the detector's full range), else the header's, else `fallback`."""
    if modality.upper() in AUTO_WINDOW_MODALITIES:
        return auto_window(pixels)
    return header or fallback
