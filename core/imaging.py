"""Load PNG, JPEG and DICOM chest X-rays into pixels + metadata, and render them for display.

`load_image` returns modality values where higher means brighter (MONOCHROME1 is inverted
here, once), so every later step — storage, display, training — sees one convention.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from core.deid import pseudonymise

# Refuse before decoding anything larger: 30,000 x 30,000 bombs and the like.
MAX_PIXELS = 60_000_000
MAX_SIDE = 16_384
DICOM_MAGIC_OFFSET = 128


class ImageRejected(ValueError):
    """The file cannot be imported; the message says why and what to do."""


@dataclass(frozen=True)
class ImageMeta:
    source_format: str  # png | jpeg | dicom
    modality: str
    width: int
    height: int
    bits_stored: int
    photometric: str  # as found in the source (MONOCHROME1 is already inverted in pixels)
    value_min: float  # representable range of the modality values, for display
    value_max: float
    window_center: float | None = None
    window_width: float | None = None
    pixel_spacing: tuple[float, float] | None = None  # (row, column) in mm
    view: str | None = None
    patient_key: str | None = None  # salted hashes, never clear identifiers
    study_key: str | None = None
    series_key: str | None = None


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # 2-D float32 modality values, higher = brighter
    meta: ImageMeta


@dataclass(frozen=True)
class Window:
    center: float
    width: float


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected("image has no pixels (zero width or height)")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageRejected(
            f"image is {width} x {height} pixels, over the limit of {MAX_SIDE} px a side and "
            f"{MAX_PIXELS // 1_000_000} megapixels; downscale it before importing"
        )


def is_dicom_bytes(data: bytes) -> bool:
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def sniff_format(data: bytes, name: str = "") -> str | None:
    """'png', 'jpeg', 'dicom' or None from the file's first bytes (extension as a fallback)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if is_dicom_bytes(data):
        return "dicom"
    if Path(name).suffix.lower() in {".dcm", ".dicom"}:
        return "dicom"  # DICOM without the 128-byte preamble; the parser decides
    return None


def load_image(data: bytes, name: str = "", salt: str | None = None) -> LoadedImage:
    """Decode one file's bytes. Raises ImageRejected with a reason a user can act on."""
    if not data:
        raise ImageRejected("file is empty")
    fmt = sniff_format(data, name)
    if fmt is None:
        raise ImageRejected(
            "not a PNG, JPEG or DICOM file (unrecognised content); "
            "export the X-ray as PNG, JPEG or DICOM"
        )
    if fmt == "dicom":
        try:
            return _load_dicom(data, salt)
        except ImageRejected:
            raise
        except Exception as e:  # noqa: BLE001 - damaged values surface lazily, as any error
            raise ImageRejected(
                f"DICOM header is damaged ({type(e).__name__}: {e}); re-export the file"
            ) from e
    return _load_raster(data, fmt)


def load_image_file(path: str | Path, salt: str | None = None) -> LoadedImage:
    path = Path(path)
    return load_image(path.read_bytes(), path.name, salt)


# --- PNG / JPEG --------------------------------------------------------------------------


def _load_raster(data: bytes, fmt: str) -> LoadedImage:
    with warnings.catch_warnings():
        # Our own limit (checked from the header, below) is stricter than Pillow's warning.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            im = PILImage.open(io.BytesIO(data))
            _check_size(*im.size)
            im.load()  # full decode: truncated files fail here, not later in training
        except ImageRejected:
            raise
        except PILImage.DecompressionBombError as e:
            # Pillow refuses gross bombs in open(), before our own size check can run.
            raise ImageRejected(
                f"image is over the limit of {MAX_SIDE} px a side and "
                f"{MAX_PIXELS // 1_000_000} megapixels ({e}); downscale it before importing"
            ) from e
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageRejected(f"corrupt or truncated {fmt.upper()} ({e})") from e
    mode = im.mode
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        arr = np.asarray(im, dtype=np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageRejected(f"unsupported {fmt.upper()} pixel range for mode {mode}")
        pixels = arr.astype(np.float32)
        bits = 16
        lo, hi = float(pixels.min()), float(pixels.max())
        if hi <= lo:
            hi = lo + 1.0
    else:
        if mode not in {"L", "1", "P", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "PA", "La"}:
            raise ImageRejected(f"unsupported {fmt.upper()} pixel mode {mode}")
        # RGB X-rays (screenshots, papers) become luminance; colour adds nothing to a radiograph.
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
        bits = 8
        lo, hi = 0.0, 255.0
    h, w = pixels.shape
    meta = ImageMeta(
        source_format=fmt,
        modality="OT",
        width=w,
        height=h,
        bits_stored=bits,
        photometric="MONOCHROME2",
        value_min=lo,
        value_max=hi,
    )
    return LoadedImage(pixels=pixels, meta=meta)


# --- DICOM -------------------------------------------------------------------------------


def _first(value) -> float | None:
    if value is None:
        return None
    try:
        if hasattr(value, "__len__") and not isinstance(value, str | bytes):
            value = value[0] if len(value) else None
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _syntax_hint(ds) -> str:
    """' (transfer syntax X; ...)' for compressed data; '' when the header is too damaged."""
    tsuid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        if tsuid is not None and tsuid.is_compressed:
            return f" (transfer syntax {tsuid.name}; needs pylibjpeg with its plugins)"
    except ValueError:  # not a transfer syntax UID at all
        text = str(tsuid)
        if len(text) <= 64 and all(c.isdigit() or c == "." for c in text):
            return f" (unknown transfer syntax {text})"
        return " (the transfer syntax UID is damaged)"  # never echo arbitrary header bytes
    return ""


def _load_dicom(data: bytes, salt: str | None) -> LoadedImage:
    # pydicom's warnings about malformed values quote the header text, which can name the
    # patient: nothing of a header reaches warnings or logs (the refusal says what is wrong).
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _decode_dicom(data, salt)


def _decode_dicom(data: bytes, salt: str | None) -> LoadedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not is_dicom_bytes(data))
    except InvalidDicomError as e:
        raise ImageRejected(f"not a valid DICOM file ({e})") from e
    except Exception as e:  # noqa: BLE001 - a damaged header raises struct/encoding/... errors
        # The exception's text can quote header values; its type says enough.
        raise ImageRejected(
            f"not a valid DICOM file: damaged header ({type(e).__name__}); "
            "re-export it from the PACS or modality"
        ) from e
    if "PixelData" not in ds:
        raise ImageRejected(
            "DICOM has no pixel data (e.g. a structured report or a header-only file)"
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise ImageRejected(
            f"DICOM photometric interpretation {photometric or 'missing'} is not supported; "
            "chest X-rays must be MONOCHROME1 or MONOCHROME2"
        )
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise ImageRejected("multi-frame DICOM is not supported; import single-frame CR/DX")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    _check_size(cols, rows)
    try:
        raw = ds.pixel_array
    except Exception as e:  # decoders raise many types: missing plugin, truncated stream
        raise ImageRejected(f"DICOM pixel data cannot be decoded{_syntax_hint(ds)}: {e}") from e
    if raw.ndim != 2:
        raise ImageRejected(f"DICOM pixel array has shape {raw.shape}; expected one 2-D frame")

    bits = int(ds.get("BitsStored", raw.dtype.itemsize * 8) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    stored_lo = -(2 ** (bits - 1)) if signed else 0
    stored_hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1

    values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
    ends = np.asarray(
        apply_modality_lut(np.array([stored_lo, stored_hi], dtype=np.int64), ds),
        dtype=np.float64,
    )
    lo, hi = float(ends.min()), float(ends.max())
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if (center is None or width is None) and "VOILUTSequence" in ds:
        # A VOI LUT table (no window): apply it now; its output range becomes the value range.
        # The LUT is indexed by integer values; integral floats are passed as integers.
        lut_input = values.astype(np.int64) if np.all(values == np.round(values)) else values
        values = np.asarray(apply_voi_lut(lut_input, ds), dtype=np.float32)
        lut = ds.VOILUTSequence[0]
        out_bits = int(lut.LUTDescriptor[2]) or 16
        lo, hi = 0.0, float(2**out_bits - 1)
        center = width = None
    if width is not None and width <= 0:
        center = width = None
    if not np.isfinite(values).all():
        raise ImageRejected("DICOM pixel values are not finite after rescale")
    if photometric == "MONOCHROME1":
        # Low values are white in MONOCHROME1: mirror values and window so lungs look dark.
        values = np.float32(lo + hi) - values
        if center is not None:
            center = lo + hi - center

    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    pixel_spacing = None
    if spacing is not None and len(spacing) == 2:
        try:
            pixel_spacing = (float(spacing[0]), float(spacing[1]))
        except (TypeError, ValueError):
            pixel_spacing = None
        if pixel_spacing is not None and min(pixel_spacing) <= 0:
            pixel_spacing = None  # 0.000 placeholders mean "unknown", not zero-size pixels

    def key(tag: str) -> str | None:
        return pseudonymise(str(ds.get(tag, "") or ""), salt) if salt else None

    meta = ImageMeta(
        source_format="dicom",
        modality=str(ds.get("Modality", "OT") or "OT").strip()[:16] or "OT",
        width=cols if cols else values.shape[1],
        height=rows if rows else values.shape[0],
        bits_stored=bits,
        photometric=photometric,
        value_min=lo,
        value_max=hi,
        window_center=center,
        window_width=width,
        pixel_spacing=pixel_spacing,
        view=(str(ds.get("ViewPosition", "") or "").strip()[:16] or None),
        patient_key=key("PatientID"),
        study_key=key("StudyInstanceUID"),
        series_key=key("SeriesInstanceUID"),
    )
    return LoadedImage(pixels=values, meta=meta)


# --- Display rendition ---------------------------------------------------------------------

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
        import cv2

        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    return out
