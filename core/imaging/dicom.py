"""DICOM CR/DX decoding: modality LUT, VOI LUT or window, MONOCHROME1 inversion, pixel
spacing, and pseudonymised keys. Patient identifiers are hashed here, while decoding, so no
clear identifier ever leaves this module (which is why de-identification sits in imaging).
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np

from core.imaging.deid import pseudonymise
from core.imaging.formats import (
    ImageMeta,
    ImageRejected,
    LoadedImage,
    check_size,
    is_dicom_bytes,
)


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


def load_dicom(data: bytes, salt: str | None) -> LoadedImage:
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
    check_size(cols, rows)
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
