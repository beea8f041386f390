"""Imaging: file formats, DICOM decoding, de-identification and display windowing.

Torch-free and database-free; the public names are re-exported here.
"""

from core.imaging.display import (
    PRESET_NAMES,
    Window,
    apply_window,
    default_window,
    full_scale_window,
    render_display,
    window_presets,
)
from core.imaging.formats import (
    MAX_PIXELS,
    MAX_SIDE,
    ImageMeta,
    ImageRejected,
    LoadedImage,
    is_dicom_bytes,
    sniff_format,
)
from core.imaging.loader import load_image, load_image_file

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "PRESET_NAMES",
    "ImageMeta",
    "ImageRejected",
    "LoadedImage",
    "Window",
    "apply_window",
    "default_window",
    "full_scale_window",
    "is_dicom_bytes",
    "load_image",
    "load_image_file",
    "render_display",
    "sniff_format",
    "window_presets",
]
