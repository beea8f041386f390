"""Load PNG, JPEG and DICOM chest X-rays into pixels + metadata: one entry point per source
(bytes or a path), dispatching on the file's content, never on its name alone."""

from __future__ import annotations

from pathlib import Path

from core.imaging.dicom import load_dicom
from core.imaging.formats import (
    ImageRejected,
    LoadedImage,
    load_raster,
    sniff_format,
    unsupported_format,
)


def load_image(data: bytes, name: str = "", salt: str | None = None) -> LoadedImage:
    """Decode one file's bytes. Raises ImageRejected with a reason a user can act on."""
    if not data:
        raise ImageRejected("file is empty")
    fmt = sniff_format(data, name)
    if fmt is None:
        kind = unsupported_format(data)
        if kind:
            raise ImageRejected(
                f"a {kind} image: only PNG, JPEG and DICOM are imported; convert it to PNG"
            )
        raise ImageRejected(
            "not a PNG, JPEG or DICOM file (unrecognised content); "
            "export the X-ray as PNG, JPEG or DICOM"
        )
    if fmt == "dicom":
        try:
            return load_dicom(data, salt)
        except ImageRejected:
            raise
        except Exception as e:  # noqa: BLE001 - damaged values surface lazily, as any error
            # Only the type: the text can quote header values ("invalid literal ... 'DOE^JOHN'").
            raise ImageRejected(
                f"DICOM header is damaged ({type(e).__name__}); re-export the file"
            ) from e
    return load_raster(data, fmt)


def load_image_file(path: str | Path, salt: str | None = None) -> LoadedImage:
    path = Path(path)
    return load_image(path.read_bytes(), path.name, salt)
