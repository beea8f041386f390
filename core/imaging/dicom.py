"""DICOM CR/DX decoding: modality LUT, VOI LUT or window, MONOCHROME1 inversion, pixel
spacing, and pseudonymised keys. Patient identifiers are hashed here, while decoding, so no
clear identifier ever leaves this module (which is why de-identification sits in imaging).

How the header's VOI (PS3.3 C.11.2) becomes the default display, with no column beyond
ImageMeta's window_center / window_width:

- A LINEAR window (VOI LUT Function absent, LINEAR, or a value we do not know) is kept as
  Window(center, width) over the modality values: display.apply_window is that linear
  function. With several windows the first is used (pydicom's index 0).
- A VOI LUT table, or a window whose function is SIGMOID or LINEAR_EXACT, is applied here at
  import by pydicom (pixels.apply_voi_lut; when a header has both, PS3.3 leaves the choice
  open and pydicom, like us, takes the table). Its output replaces the values, its output range
  becomes value_min..value_max, and the stored window is the one mapping that range linearly
  onto 0..255 (display.full_scale_window): the default display is pydicom's VOI output
  scaled to 0..255. The other presets then work on the VOI output.
- MONOCHROME1 is inverted last, in every case, within value_min..value_max.
"""

from __future__ import annotations

import io
import logging
import math
import os
import warnings

import numpy as np

from core.imaging.deid import pseudonymise
from core.imaging.display import full_scale_window
from core.imaging.formats import (
    ImageMeta,
    ImageRejected,
    LoadedImage,
    check_size,
    is_dicom_bytes,
)


def _header_text(value, limit: int = 16) -> str:
    """A short header code string as stored: control characters (a NUL, which PostgreSQL
    text cannot hold) removed, trimmed, at most `limit` characters."""
    text = "".join(c for c in str(value or "") if ord(c) >= 32 and ord(c) != 127)
    return text.strip()[:limit]


def _first(value) -> float | None:
    if value is None:
        return None
    try:
        if hasattr(value, "__len__") and not isinstance(value, str | bytes):
            value = value[0] if len(value) else None
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# VOI LUT Functions (0028,1056) that are not the linear window: pydicom applies them at import.
CURVED_VOI_FUNCTIONS = frozenset({"SIGMOID", "LINEAR_EXACT"})


def _voi_function(ds) -> str:
    """The header's VOI LUT Function; anything absent or unknown is the default, LINEAR."""
    text = str(ds.get("VOILUTFunction", "") or "").strip().upper()
    return text if text in CURVED_VOI_FUNCTIONS else "LINEAR"


def _has_voi_table(ds) -> bool:
    """A usable VOI LUT Sequence, by the same test as pydicom's apply_voi_lut."""
    seq = ds.get("VOILUTSequence")
    return bool(seq) and all(seq[0].get(k) is not None for k in ("LUTDescriptor", "LUTData"))


def _apply_header_voi(values: np.ndarray, ds) -> tuple[np.ndarray, float, float]:
    """pydicom's VOI LUT table or curved window on modality values: (output, lo, hi)."""
    from pydicom.pixels import apply_voi_lut, apply_windowing

    try:
        with np.errstate(all="ignore"):
            if _has_voi_table(ds):
                # The LUT is indexed by integer values; integral floats are passed as integers.
                integral = np.all(values == np.round(values))
                out = apply_voi_lut(values.astype(np.int64) if integral else values, ds)
                lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
            else:
                out = apply_windowing(values, ds)
                # pydicom maps onto [y_min, y_max] from BitsStored / rescale / modality LUT;
                # the images of -inf and +inf are exactly those ends, without restating its rules.
                ends = apply_windowing(np.array([-np.inf, np.inf]), ds)
                lo, hi = float(ends.min()), float(ends.max())
    except Exception as e:  # noqa: BLE001 - malformed VOI modules raise many types
        # Only the type: pydicom's messages can quote header values.
        raise ImageRejected(
            f"DICOM VOI LUT or window cannot be applied ({type(e).__name__}); "
            "re-export the file from the PACS or modality"
        ) from e
    return np.asarray(out, dtype=np.float32), lo, hi


# Only chest radiographs by default: Computed Radiography and Digital X-Ray (PS3.4 B.5).
ACCEPT_ANY_MODALITY_SETTING = "PNEUMOLAB_ACCEPT_ANY_MODALITY"
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX"})
RADIOGRAPH_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1",  # pydicom.uid.ComputedRadiographyImageStorage
        "1.2.840.10008.5.1.4.1.1.1.1",  # DigitalXRayImageStorageForPresentation
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # DigitalXRayImageStorageForProcessing
    }
)
# Defined terms of Modality (PS3.3 C.7.3.1.1.1) and Photometric Interpretation (C.7.6.3.1.2):
# a refusal may quote a value only when it is one of these, never free header text.
KNOWN_MODALITIES = frozenset(
    # One string: a list literal would take 70 lines.
    "AR ASMT AU BDUS BI BMD CR CT CTPROTOCOL DG DOC DX ECG EPS ES FID GM HC HD IO IOL IVOCT "  # noqa: SIM905
    "IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PLAN PR PT "
    "PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT RWV SEG "
    "SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC".split()
)
KNOWN_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "HSV",
        "ARGB",
        "CMYK",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
        "XYB",
    }
)
# Attributes whose presence says "this is a DICOM dataset" when a file has no preamble.
_DICOM_MARKERS = (0x00080016, 0x00080060, 0x00280010, 0x7FE00010, 0x0020000D, 0x00100020)


def accept_any_modality() -> bool:
    """PNEUMOLAB_ACCEPT_ANY_MODALITY=1 imports DICOM of any modality (CT, MR, ...)."""
    return os.environ.get(ACCEPT_ANY_MODALITY_SETTING, "").strip().lower() in {"1", "true", "yes"}


def _damaged(keyword: str) -> ImageRejected:
    # Never the value: a damaged header can hold a name where a number belongs.
    return ImageRejected(
        f"DICOM header attribute {keyword} is damaged (not a valid value); "
        "re-export the file from the PACS or modality"
    )


def _int_attr(ds, keyword: str, default: int) -> int:
    """A whole-number attribute (absent or empty: `default`); a damaged one is refused."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return default
        number = int(value)
        if number != float(value) or not -(2**31) <= number < 2**32:
            raise ValueError
        return number
    except Exception as e:  # noqa: BLE001 - lazy value conversion raises many types
        raise _damaged(keyword) from e


def _float_attr(ds, keyword: str) -> float | None:
    """A decimal attribute's first value (None when absent); a damaged one is refused."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if hasattr(value, "__len__") and not isinstance(value, str | bytes):
            value = value[0]
        number = float(value)
    except Exception as e:  # noqa: BLE001
        raise _damaged(keyword) from e
    if not math.isfinite(number):
        raise _damaged(keyword)
    return number


def _text_attr(ds, keyword: str) -> str:
    try:
        value = ds.get(keyword)
        return "" if value is None else str(value).strip().upper()
    except Exception as e:  # noqa: BLE001
        raise _damaged(keyword) from e


def _could_be_a_dataset(data: bytes) -> bool:
    """Without the preamble a DICOM file starts with its first element, of group 0002 (file
    meta) or 0008 (every dataset has SOP Class UID (0008,0016)), in either byte order.

    Checked before pydicom's force=True read, which walks any bytes as elements: 64 MB of
    zeros named .dcm took 17 s to refuse.
    """
    head = data[:2]
    return len(data) >= 8 and head in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def _check_is_dicom(ds, data: bytes) -> None:
    """A file without the preamble must at least hold a DICOM header (pydicom's force=True
    reads any bytes as some dataset)."""
    if is_dicom_bytes(data):
        return
    meta = getattr(ds, "file_meta", None)
    if (meta is not None and "TransferSyntaxUID" in meta) or any(t in ds for t in _DICOM_MARKERS):
        return
    raise ImageRejected(
        "not a DICOM file (no DICOM preamble and no DICOM header); "
        "export the X-ray as PNG, JPEG or DICOM"
    )


def _is_image_sop(name: str) -> bool:
    """A modality's own image storage class (CT, MR, ultrasound, mammography ...), not
    Secondary Capture, which any modality may use."""
    return "Image Storage" in name and "Secondary Capture" not in name


def _check_radiograph(ds) -> None:
    """CR or DX (by Modality or SOP class) unless PNEUMOLAB_ACCEPT_ANY_MODALITY is set."""
    if accept_any_modality():
        return
    from pydicom.uid import UID

    modality = _text_attr(ds, "Modality")
    meta = getattr(ds, "file_meta", None)
    try:
        sop = str(ds.get("SOPClassUID") or getattr(meta, "MediaStorageSOPClassUID", "") or "")
    except Exception as e:  # noqa: BLE001
        raise _damaged("SOPClassUID") from e
    sop = sop.strip().rstrip("\0")
    # A registered UID's name is the standard's text, never the header's.
    sop_name = UID(sop).name if sop and len(sop) <= 64 and UID(sop).is_valid else ""
    sop_name = sop_name if sop_name != sop else ""
    # Modality decides when present, SOP class when not; but a radiograph's Modality with
    # another modality's image SOP class (CT Image Storage, ...) is a contradiction, not an
    # X-ray. Secondary Capture with Modality CR/DX (common in public chest X-ray sets) stays.
    other_sop = bool(sop_name) and sop not in RADIOGRAPH_SOP_CLASSES and _is_image_sop(sop_name)
    if modality in RADIOGRAPH_MODALITIES and not other_sop:
        return
    if not modality and sop in RADIOGRAPH_SOP_CLASSES:
        return
    if modality in RADIOGRAPH_MODALITIES:
        what = f"modality {modality} with SOP class {sop_name} (the header contradicts itself)"
    elif modality:
        what = f"modality {modality}" if modality in KNOWN_MODALITIES else "an unknown modality"
    elif sop:
        what = f"SOP class {sop_name}" if sop_name else "an unknown SOP class"
    else:
        what = "a DICOM file with no Modality or SOP class"
    raise ImageRejected(
        f"{what} is not a chest radiograph (CR/DX); only CR and DX images are imported "
        f"(set {ACCEPT_ANY_MODALITY_SETTING}=1 to import other modalities)"
    )


def _native_frame_bytes(ds, rows: int, cols: int) -> int | None:
    """Bytes the header's image size needs in uncompressed pixel data (None: compressed)."""
    tsuid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        if tsuid is not None and tsuid.is_compressed:
            return None
    except ValueError:
        return None  # an unknown transfer syntax: the decoder refuses it with the hint
    samples = _int_attr(ds, "SamplesPerPixel", 1)
    allocated = _int_attr(ds, "BitsAllocated", 16)
    bits = rows * cols * max(samples, 1) * allocated
    return (bits + 7) // 8


def _check_pixel_size(ds, rows: int, cols: int) -> None:
    """Uncompressed pixel data must be exactly what Rows x Columns need (plus DICOM's pad
    byte): pydicom would crop extra data silently, or fail on too little."""
    need = _native_frame_bytes(ds, rows, cols)
    if need is None:
        return
    try:
        have = len(ds.PixelData)
    except Exception as e:  # noqa: BLE001
        raise _damaged("PixelData") from e
    if have not in (need, need + need % 2):
        more = "more" if have > need else "less"
        raise ImageRejected(
            f"DICOM Rows/Columns do not match the pixel data (the file holds {more} pixel data "
            "than the header's image size needs); re-export the file from the PACS or modality"
        )


def _check_rescale(ds) -> None:
    """A rescale slope of 0 maps every pixel to one value: a blank image, never imported."""
    if "ModalityLUTSequence" in ds:
        return  # the LUT replaces slope and intercept (PS3.3 C.11.1)
    slope = _float_attr(ds, "RescaleSlope")
    _float_attr(ds, "RescaleIntercept")
    if slope == 0:
        raise ImageRejected(
            "DICOM RescaleSlope is 0: every pixel would have the same value (a blank image); "
            "re-export the file from the PACS or modality"
        )


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
    from pydicom.pixels import apply_modality_lut

    if not is_dicom_bytes(data) and not _could_be_a_dataset(data):
        raise ImageRejected(
            "not a DICOM file (no DICOM preamble and no DICOM header); "
            "export the X-ray as PNG, JPEG or DICOM"
        )
    try:
        # Bytes, not a path, so our preamble test (formats.is_dicom_bytes says why).
        ds = pydicom.dcmread(io.BytesIO(data), force=not is_dicom_bytes(data))
    except InvalidDicomError as e:
        raise ImageRejected(
            "not a DICOM file (no DICOM preamble or header); export the X-ray as PNG, JPEG or DICOM"
        ) from e
    except Exception as e:  # noqa: BLE001 - a damaged header raises struct/encoding/... errors
        # The exception's text can quote header values; its type says enough.
        if not is_dicom_bytes(data):
            raise ImageRejected(
                "not a DICOM file (no DICOM preamble and no readable DICOM header); "
                "export the X-ray as PNG, JPEG or DICOM"
            ) from e
        raise ImageRejected(
            f"not a valid DICOM file: damaged header ({type(e).__name__}); "
            "re-export it from the PACS or modality"
        ) from e
    _check_is_dicom(ds, data)
    _check_radiograph(ds)
    if "PixelData" not in ds:
        raise ImageRejected(
            "DICOM has no pixel data (e.g. a structured report or a header-only file)"
        )
    photometric = _text_attr(ds, "PhotometricInterpretation")
    if photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        shown = photometric if photometric in KNOWN_PHOTOMETRIC else ""
        raise ImageRejected(
            f"DICOM photometric interpretation {shown or 'missing or unknown'} is not "
            "supported; chest X-rays must be MONOCHROME1 or MONOCHROME2"
        )
    if _int_attr(ds, "NumberOfFrames", 1) > 1:
        raise ImageRejected("multi-frame DICOM is not supported; import single-frame CR/DX")
    rows, cols = _int_attr(ds, "Rows", 0), _int_attr(ds, "Columns", 0)
    check_size(cols, rows)
    _check_pixel_size(ds, rows, cols)
    _check_rescale(ds)
    for keyword in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        _int_attr(ds, keyword, 0)  # pydicom's decoders int() them, quoting a damaged value
    try:
        raw = ds.pixel_array
    except Exception as e:  # decoders raise many types: missing plugin, truncated stream
        # Only the type: decoder messages can quote header values.
        raise ImageRejected(
            f"DICOM pixel data cannot be decoded{_syntax_hint(ds)} ({type(e).__name__}); "
            "re-export the file from the PACS or modality"
        ) from e
    if raw.ndim != 2:
        raise ImageRejected(f"DICOM pixel array has shape {raw.shape}; expected one 2-D frame")
    if raw.shape != (rows, cols):
        raise ImageRejected(
            "DICOM Rows/Columns do not match the size of the decoded pixel data; "
            "re-export the file from the PACS or modality"
        )

    bits = _int_attr(ds, "BitsStored", raw.dtype.itemsize * 8) or 16
    signed = _int_attr(ds, "PixelRepresentation", 0) == 1
    stored_lo = -(2 ** (bits - 1)) if signed else 0
    stored_hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1

    values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
    ends = np.asarray(
        apply_modality_lut(np.array([stored_lo, stored_hi], dtype=np.int64), ds),
        dtype=np.float64,
    )
    lo, hi = float(ends.min()), float(ends.max())
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if width is not None and width <= 0:
        center = width = None
    curved = center is not None and width is not None and _voi_function(ds) != "LINEAR"
    voi_applied = _has_voi_table(ds) or curved
    if voi_applied:
        values, lo, hi = _apply_header_voi(values, ds)
    if not np.isfinite(values).all():
        raise ImageRejected("DICOM pixel values are not finite after rescale")
    if photometric == "MONOCHROME1":
        # Low values are white in MONOCHROME1: mirror values and window so lungs look dark.
        values = np.float32(lo + hi) - values
        if center is not None:
            center = lo + hi - center
    if voi_applied:
        window = full_scale_window(lo, hi)
        center, width = window.center, window.width

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
        modality=_header_text(ds.get("Modality", "OT")) or "OT",
        width=cols if cols else values.shape[1],
        height=rows if rows else values.shape[0],
        bits_stored=bits,
        photometric=photometric,
        value_min=lo,
        value_max=hi,
        window_center=center,
        window_width=width,
        pixel_spacing=pixel_spacing,
        view=_header_text(ds.get("ViewPosition", "")) or None,
        patient_key=key("PatientID"),
        study_key=key("StudyInstanceUID"),
        series_key=key("SeriesInstanceUID"),
    )
    return LoadedImage(pixels=values, meta=meta)
