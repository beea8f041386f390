"""Shared fixtures: where the real data lives, throwaway workspaces, DICOM files built to
order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(
            f"Real test data missing: {path}. Clone the project beside ../shared "
            "(the shared/data folder with cxr-lungs/ and dicom/) and run the tests again.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real X-rays and DICOMs in ../shared/data (fails clearly when absent)."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def cxr_lungs_dir(shared_data: Path) -> Path:
    return _require(shared_data / "cxr-lungs" / "images")


@pytest.fixture(scope="session")
def dicom_mono1(shared_data: Path) -> Path:
    return _require(shared_data / "dicom" / "RG1_UNCI.dcm")


@pytest.fixture(scope="session")
def dicom_j2k(shared_data: Path) -> Path:
    return _require(shared_data / "dicom" / "RG1_J2KR.dcm")


@pytest.fixture
def workspace(tmp_path: Path):
    """A fresh workspace (real SQLite file + image store) in the test's tmp dir."""
    from core.workspace import Workspace

    ws = Workspace.open(tmp_path / "workspace")
    yield ws
    ws.dispose()


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
