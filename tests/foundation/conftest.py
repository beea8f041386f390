"""Fixtures for the foundation tests: DICOM files built to order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def _make_dicom(
    path: Path,
    raw: np.ndarray | None,
    *,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    samples: int = 1,
    **tags,
) -> Path:
    """Write a minimal single-frame CR DICOM (Explicit VR Little Endian) with `raw` pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Synthetic"
    ds.PatientID = "SYN-0001"
    ds.Modality = "CR"
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if raw is not None:
        signed = raw.dtype.kind == "i"
        ds.Rows, ds.Columns = raw.shape[:2]
        ds.BitsAllocated = raw.dtype.itemsize * 8
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if samples > 1:
            ds.PlanarConfiguration = 0
        ds.PixelData = np.ascontiguousarray(raw).tobytes()
    else:
        ds.Rows, ds.Columns = 64, 64
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def make_dicom() -> Callable[..., Path]:
    """make_dicom(path, raw, bits_stored=12, photometric="MONOCHROME2", samples=1, **tags)."""
    return _make_dicom
