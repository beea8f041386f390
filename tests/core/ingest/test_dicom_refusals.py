"""DICOM that is not a chest radiograph, or whose header does not describe its pixels, is
refused with a reason naming what is wrong — never a header value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.uid import CTImageStorage, DigitalXRayImageStorageForPresentation

from core.imaging import ImageRejected, load_image

# pydicom's own test files that are not X-rays: (file, Modality).
NOT_XRAY = [
    ("CT_small.dcm", "CT"),
    ("MR_small.dcm", "MR"),
    ("JPGExtended.dcm", "NM"),
    ("liver_1frame.dcm", "SEG"),
    ("rtdose_1frame.dcm", "RTDOSE"),
    ("rtdose.dcm", "RTDOSE"),
]
RAW = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 3) % 4096


@pytest.fixture(autouse=True)
def only_radiographs(monkeypatch):
    monkeypatch.delenv("PNEUMOLAB_ACCEPT_ANY_MODALITY", raising=False)


def refusal(data: bytes, name: str = "x.dcm") -> str:
    with pytest.raises(ImageRejected) as e:
        load_image(data, name)
    return str(e.value)


@pytest.mark.parametrize(("name", "modality"), NOT_XRAY)
def test_pydicoms_non_xray_files_are_refused_by_modality(name, modality):
    path = get_testdata_file(name, download=False)
    assert path, f"pydicom test file {name} missing"
    reason = refusal(Path(path).read_bytes())
    assert f"modality {modality} is not a chest radiograph (CR/DX)" in reason
    assert "PNEUMOLAB_ACCEPT_ANY_MODALITY=1" in reason


def test_other_modalities_are_refused_unless_the_override_is_set(monkeypatch):
    data = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    assert "modality CT is not a chest radiograph" in refusal(data)
    monkeypatch.setenv("PNEUMOLAB_ACCEPT_ANY_MODALITY", "1")
    loaded = load_image(data, "ct.dcm")
    assert loaded.meta.modality == "CT" and loaded.pixels.shape == (128, 128)


def without_modality(path: Path, sop_class: str) -> bytes:
    ds = pydicom.dcmread(path)
    del ds.Modality
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def test_modality_cr_dx_or_an_xray_sop_class_decides(tmp_path, make_dicom):
    dx = make_dicom(tmp_path / "dx.dcm", RAW, Modality="DX")
    assert load_image(dx.read_bytes(), "dx.dcm").meta.modality == "DX"
    # No Modality: the Digital X-Ray SOP class is an X-ray, the CT one is not.
    sop = without_modality(
        make_dicom(tmp_path / "sop.dcm", RAW), DigitalXRayImageStorageForPresentation
    )
    assert load_image(sop, "sop.dcm").pixels.shape == (32, 32)
    ct = without_modality(make_dicom(tmp_path / "ct.dcm", RAW), CTImageStorage)
    assert "SOP class CT Image Storage is not a chest radiograph" in refusal(ct)


@pytest.mark.parametrize("rows", [16, 64])
def test_rows_that_disagree_with_the_pixel_data_are_refused(tmp_path, make_dicom, rows):
    path = make_dicom(tmp_path / "r.dcm", RAW, Rows=rows)
    assert "Rows/Columns do not match the pixel data" in refusal(path.read_bytes())


def test_a_zero_rescale_slope_is_refused(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "s.dcm", RAW, RescaleSlope="0", RescaleIntercept="100")
    assert "RescaleSlope is 0" in refusal(path.read_bytes())


@pytest.mark.parametrize(
    "keyword", ["Rows", "Columns", "NumberOfFrames", "BitsStored", "RescaleSlope"]
)
def test_damaged_header_attributes_are_named_never_quoted(tmp_path, make_dicom, keyword):
    """A name where a number belongs: int() would say "invalid literal ... 'DOE^JOHN'"."""
    path = make_dicom(tmp_path / "d.dcm", RAW)
    ds = pydicom.dcmread(path)
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if tag in ds:
        del ds[tag]
    ds.add(DataElement(tag, "LO", "DOE^JOHN"))
    ds.save_as(path, enforce_file_format=True)
    reason = refusal(path.read_bytes())
    assert f"attribute {keyword} is damaged" in reason
    assert "DOE" not in reason and "JOHN" not in reason


def test_random_bytes_named_dcm_are_not_a_dicom_file():
    noise = np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert refusal(noise, "random.dcm").startswith("not a DICOM file")


def with_header(path: Path, **attrs) -> bytes:
    ds = pydicom.dcmread(path)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    if "SOPClassUID" in attrs:
        ds.file_meta.MediaStorageSOPClassUID = attrs["SOPClassUID"]
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def test_a_header_whose_modality_and_sop_class_disagree_is_refused(tmp_path, make_dicom):
    """Either one naming CR/DX is not enough: the other must not name another modality."""
    ct_as_cr = with_header(
        make_dicom(tmp_path / "a.dcm", RAW), Modality="CR", SOPClassUID=CTImageStorage
    )
    assert "modality CR with SOP class CT Image Storage" in refusal(ct_as_cr)
    cr_sop_ct_modality = with_header(
        make_dicom(tmp_path / "b.dcm", RAW),
        Modality="CT",
        SOPClassUID=DigitalXRayImageStorageForPresentation,
    )
    assert "modality CT is not a chest radiograph" in refusal(cr_sop_ct_modality)


def test_secondary_capture_with_a_radiograph_modality_is_imported(tmp_path, make_dicom):
    from pydicom.uid import SecondaryCaptureImageStorage

    sc = with_header(
        make_dicom(tmp_path / "sc.dcm", RAW),
        Modality="CR",
        SOPClassUID=SecondaryCaptureImageStorage,
    )
    assert load_image(sc, "sc.dcm").meta.modality == "CR"
