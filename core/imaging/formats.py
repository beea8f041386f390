"""What a chest X-ray file is made of once decoded, the limits every format is held to, and
the PNG / JPEG reader. `LoadedImage.pixels` are modality values where higher means brighter
(MONOCHROME1 is inverted when decoded, once), so storage, display and training see one
convention.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

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


def check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected("image has no pixels (zero width or height)")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageRejected(
            f"image is {width} x {height} pixels, over the limit of {MAX_SIDE} px a side and "
            f"{MAX_PIXELS // 1_000_000} megapixels; downscale it before importing"
        )


def is_dicom_bytes(data: bytes) -> bool:
    """True when the bytes carry DICOM's 128-byte preamble and b"DICM" prefix.

    Ours, not pydicom.misc.is_dicom: that one open()s a path (no file-like object), and
    uploads and .zip members reach us as bytes; it performs the same test (PS3.10 7.1).
    """
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


def unsupported_format(data: bytes) -> str | None:
    """'TIFF', 'BMP', 'WebP' or 'GIF' when the bytes are such an image (we import none)."""
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


# --- PNG / JPEG --------------------------------------------------------------------------

_OBJECT_REPR = re.compile(r"\s*<[^<>]*? at 0x[0-9a-fA-F]+>")


def _plain(e: Exception) -> str:
    """Pillow's message without object reprs ("cannot identify image file <_io.BytesIO ...>")."""
    return _OBJECT_REPR.sub("", str(e)) or type(e).__name__


def _labelme_orientation(im: PILImage.Image) -> PILImage.Image:
    """The image as labelme shows it, so that LabelMe shapes drawn on it line up.

    labelme 6.3.1 (labelme.utils.image.apply_exif_orientation, called by
    labelme._label_file.read_image_file) rotates by EXIF Orientation when it loads an image,
    and its shapes are in that rotated frame. This is that function step for step (not
    PIL.ImageOps.exif_transpose, whose choices for 5 and 7 are the same pixels but which also
    rewrites metadata). EXIF that cannot be parsed is treated as none.
    """
    try:
        exif = im._getexif()  # what labelme reads: the legacy dict, {tag number: value}
    except AttributeError:
        exif = None
    except Exception:  # noqa: BLE001 - damaged EXIF: labelme could not open it; keep as stored
        exif = None
    if not exif:
        return im
    orientation = exif.get(0x0112)  # "Orientation" in PIL.ExifTags.TAGS
    transpose = PILImage.Transpose
    steps = {
        2: (transpose.FLIP_LEFT_RIGHT,),  # ImageOps.mirror
        3: (transpose.ROTATE_180,),
        4: (transpose.FLIP_TOP_BOTTOM,),  # ImageOps.flip
        5: (transpose.ROTATE_270, transpose.FLIP_LEFT_RIGHT),
        6: (transpose.ROTATE_270,),
        7: (transpose.ROTATE_90, transpose.FLIP_LEFT_RIGHT),
        8: (transpose.ROTATE_90,),
    }.get(orientation, ())
    for step in steps:
        im = im.transpose(step)
    return im


def load_raster(data: bytes, fmt: str) -> LoadedImage:
    with warnings.catch_warnings():
        # Our own limit (checked from the header, below) is stricter than Pillow's warning.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            im = PILImage.open(io.BytesIO(data))
            check_size(*im.size)
            im.load()  # full decode: truncated files fail here, not later in training
            im = _labelme_orientation(im)
        except ImageRejected:
            raise
        except PILImage.UnidentifiedImageError as e:
            raise ImageRejected(
                f"corrupt {fmt.upper()}: the file starts like a {fmt.upper()} but the rest "
                "cannot be read as an image"
            ) from e
        except PILImage.DecompressionBombError as e:
            # Pillow refuses gross bombs in open(), before our own size check can run.
            raise ImageRejected(
                f"image is over the limit of {MAX_SIDE} px a side and "
                f"{MAX_PIXELS // 1_000_000} megapixels ({_plain(e)}); downscale it before importing"
            ) from e
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageRejected(f"corrupt or truncated {fmt.upper()} ({_plain(e)})") from e
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
