"""core.imaging: the one loader (PNG/JPEG/DICOM -> modality values + metadata) and the
display rendition, checked against the real CR chest DICOM and against DICOMs built here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing
from pydicom.uid import (
    JPEG2000Lossless,
)

from core.imaging import (
    ImageRejected,
    Window,
    apply_window,
    default_window,
    full_scale_window,
    load_image,
    load_image_file,
    render_display,
    window_presets,
)
from core.imaging.deid import pseudonymise

# --- helpers -------------------------------------------------------------------------------


def ramp(rows: int, cols: int, hi: int, dtype=np.uint16, lo: int = 0) -> np.ndarray:
    """Every value from lo to hi appears, laid out row-major (so orientation errors show)."""
    vals = np.linspace(lo, hi, rows * cols).round().astype(np.int64)
    return vals.reshape(rows, cols).astype(dtype)


def png_bytes(arr: np.ndarray) -> bytes:
    """PNG of `arr` (uint16 becomes PIL mode I;16, uint8 L, HxWx3 RGB)."""
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# --- the real CR DICOM (MONOCHROME1, 15-bit) --------------------------------------------


@pytest.fixture(scope="module")
def unci(dicom_mono1: Path):
    return load_image_file(dicom_mono1)


@pytest.fixture(scope="module")
def unci_raw(dicom_mono1: Path) -> np.ndarray:
    return pydicom.dcmread(dicom_mono1).pixel_array


def test_real_dicom_metadata(unci):
    m = unci.meta
    assert (m.source_format, m.modality, m.view) == ("dicom", "CR", "PA")
    assert (m.height, m.width) == (1955, 1841)
    assert unci.pixels.shape == (1955, 1841)
    assert unci.pixels.dtype == np.float32
    assert m.bits_stored == 15
    assert m.photometric == "MONOCHROME1"
    assert (m.value_min, m.value_max) == (0.0, 32767.0)


def test_real_dicom_monochrome1_is_inverted_exactly(unci, unci_raw):
    # MONOCHROME1: stored low = white. The loader mirrors within the 15-bit range once.
    assert np.array_equal(unci.pixels, (32767 - unci_raw.astype(np.int64)).astype(np.float32))


def test_real_dicom_window_centre_is_mirrored(unci):
    # The header says WC 15000 / WW 30000 in MONOCHROME1 terms.
    assert unci.meta.window_center == 32767 - 15000
    assert unci.meta.window_width == 30000


def test_real_dicom_zero_pixel_spacing_is_unknown(unci, dicom_mono1):
    assert [float(v) for v in pydicom.dcmread(dicom_mono1, stop_before_pixels=True).PixelSpacing]
    assert unci.meta.pixel_spacing is None


def test_real_dicom_lungs_look_dark_in_display(unci):
    m = unci.meta
    window = default_window(unci.pixels, m.window_center, m.window_width, m.value_min, m.value_max)
    display = render_display(unci.pixels, window, 512)
    h, w = display.shape
    rows = slice(int(h * 0.2), int(h * 0.5))
    spine = display[rows, int(w * 0.45) : int(w * 0.55)].mean()
    right_lung = display[rows, int(w * 0.2) : int(w * 0.35)].mean()
    left_lung = display[rows, int(w * 0.65) : int(w * 0.8)].mean()
    # Not inverted, the lungs would be the bright part and the spine the dark one.
    assert spine > right_lung + 30
    assert spine > left_lung + 30


def test_real_dicom_identifiers_only_as_salted_hashes(dicom_mono1):
    ds = pydicom.dcmread(dicom_mono1, stop_before_pixels=True)
    plain = load_image_file(dicom_mono1)
    assert plain.meta.patient_key is None  # no salt, no key
    keyed = load_image_file(dicom_mono1, salt="s" * 64)
    assert keyed.meta.patient_key == pseudonymise(str(ds.PatientID), "s" * 64)
    assert keyed.meta.study_key == pseudonymise(str(ds.StudyInstanceUID), "s" * 64)
    assert str(ds.PatientID) not in repr(keyed.meta)
    assert str(ds.PatientName) not in repr(keyed.meta)


def test_real_j2k_copy_decodes_to_nearly_the_same_image(dicom_j2k, unci):
    # RG1_J2KR is lossless against RG1_UNCR (not shipped); RG1_UNCI is the decompressed
    # copy of the *irreversible* stream, so the two are close, not identical.
    assert pydicom.dcmread(dicom_j2k).file_meta.TransferSyntaxUID == JPEG2000Lossless
    j2k = load_image_file(dicom_j2k)
    assert j2k.pixels.shape == unci.pixels.shape
    for field in ("modality", "width", "height", "bits_stored", "photometric", "view"):
        assert getattr(j2k.meta, field) == getattr(unci.meta, field)
    assert j2k.meta.window_center == unci.meta.window_center
    r = np.corrcoef(j2k.pixels.ravel(), unci.pixels.ravel())[0, 1]
    assert r > 0.999


# --- synthetic DICOMs ----------------------------------------------------------------------


def test_rescale_slope_and_intercept_are_applied(tmp_path, make_dicom):
    raw = ramp(32, 40, 4095)
    path = make_dicom(tmp_path / "r.dcm", raw, RescaleSlope="2", RescaleIntercept="-1024")
    li = load_image_file(path)
    assert np.array_equal(li.pixels, raw.astype(np.float32) * 2 - 1024)
    assert (li.meta.value_min, li.meta.value_max) == (-1024.0, 4095 * 2 - 1024.0)


@pytest.mark.parametrize("bits", [12, 14, 16])
def test_12_to_16_bit_values_are_kept(tmp_path, bits, make_dicom):
    raw = ramp(48, 50, 2**bits - 1)
    li = load_image_file(make_dicom(tmp_path / "b.dcm", raw, bits_stored=bits))
    assert li.meta.bits_stored == bits
    assert (li.meta.value_min, li.meta.value_max) == (0.0, float(2**bits - 1))
    assert np.array_equal(li.pixels, raw.astype(np.float32))
    assert li.pixels.max() == 2**bits - 1


def test_monochrome2_is_not_inverted(tmp_path, make_dicom):
    raw = ramp(20, 30, 4095)
    li = load_image_file(
        make_dicom(tmp_path / "m2.dcm", raw, WindowCenter="1000", WindowWidth="400")
    )
    assert li.meta.photometric == "MONOCHROME2"
    assert np.array_equal(li.pixels, raw.astype(np.float32))
    assert li.meta.window_center == 1000.0


def test_synthetic_monochrome1_is_mirrored_in_its_bit_range(tmp_path, make_dicom):
    raw = ramp(20, 30, 4095)
    path = make_dicom(
        tmp_path / "m1.dcm", raw, photometric="MONOCHROME1", WindowCenter="1000", WindowWidth="400"
    )
    li = load_image_file(path)
    assert np.array_equal(li.pixels, 4095 - raw.astype(np.float32))
    assert li.meta.window_center == 4095 - 1000


def test_voi_lut_sequence_is_applied_when_there_is_no_window(tmp_path, make_dicom):
    raw = ramp(64, 64, 4095)
    lut = np.round(np.sqrt(np.arange(4096) / 4095) * 4095).astype(np.uint16)  # non-linear
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new("LUTData", "US", lut.tolist())  # ambiguous VR (US or OW): say which
    path = make_dicom(tmp_path / "voi.dcm", raw)
    ds = pydicom.dcmread(path)
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(path, enforce_file_format=True)

    li = load_image_file(path)
    assert np.array_equal(li.pixels, lut[raw].astype(np.float32))
    assert (li.meta.value_min, li.meta.value_max) == (0.0, 4095.0)
    # The table already shaped the display: its output, scaled to 0..255, is the default.
    assert Window(li.meta.window_center, li.meta.window_width) == full_scale_window(0, 4095)
    expected = lut[raw].astype(np.float64) * 255 / 4095
    assert _off_by_less_than_one(_default_display(li), expected)


# --- the header's VOI: pydicom's apply_voi_lut is the reference ------------------------------


def _default_display(li) -> np.ndarray:
    m = li.meta
    window = default_window(li.pixels, m.window_center, m.window_width, m.value_min, m.value_max)
    return render_display(li.pixels, window).astype(np.float64)


def _pydicom_display(path: Path, y_min: float, y_max: float, index: int = 0) -> np.ndarray:
    """pydicom's VOI output of the file scaled to 0..255 (y_min..y_max: its output range),
    inverted for MONOCHROME1: what the default display must show."""
    ds = pydicom.dcmread(path)
    out = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, index=index)
    shown = np.clip((out.astype(np.float64) - y_min) * 255 / (y_max - y_min), 0, 255)
    return 255 - shown if ds.PhotometricInterpretation == "MONOCHROME1" else shown


def _off_by_less_than_one(display: np.ndarray, expected: np.ndarray) -> bool:
    # apply_window truncates to uint8; float32 vs float64 moves a value by far less than 1.
    return bool(np.abs(display - expected).max() < 1.0 + 1e-3)


def _linear_display(path: Path, index: int = 0) -> np.ndarray:
    """The same window read as LINEAR (what ignoring VOI LUT Function would show)."""
    ds = pydicom.dcmread(path)
    ds.VOILUTFunction = "LINEAR"
    out = apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds, index=index)
    return out * 255 / 4095


def test_sigmoid_window_is_applied_as_pydicom_does(tmp_path, make_dicom):
    raw = ramp(64, 64, 4095)
    path = make_dicom(
        tmp_path / "sig.dcm", raw, WindowCenter="1800", WindowWidth="900", VOILUTFunction="SIGMOID"
    )
    li = load_image_file(path)
    expected = _pydicom_display(path, 0, 4095)
    assert _off_by_less_than_one(_default_display(li), expected)
    # The curve, not a straight line: a linear reading of the window is far off in the tails.
    assert np.abs(_linear_display(path) - expected).max() > 10
    # Stored values are the sigmoid's output within the 12-bit range, higher still brighter.
    assert (li.meta.value_min, li.meta.value_max) == (0.0, 4095.0)
    assert 0 < li.pixels.min() < li.pixels.max() < 4095
    assert np.all(np.diff(li.pixels.ravel()) >= 0)


def test_sigmoid_window_after_rescale_uses_the_rescaled_range(tmp_path, make_dicom):
    raw = ramp(32, 32, 4095)
    path = make_dicom(
        tmp_path / "sig_rescale.dcm",
        raw,
        RescaleSlope="2",
        RescaleIntercept="-1024",
        WindowCenter="3000",
        WindowWidth="2000",
        VOILUTFunction="SIGMOID",
    )
    li = load_image_file(path)
    lo, hi = -1024.0, 4095 * 2 - 1024.0  # pydicom's y_min, y_max after rescale
    assert (li.meta.value_min, li.meta.value_max) == (lo, hi)
    assert _off_by_less_than_one(_default_display(li), _pydicom_display(path, lo, hi))


def test_linear_exact_window_on_monochrome1(tmp_path, make_dicom):
    raw = ramp(64, 64, 4095)
    path = make_dicom(
        tmp_path / "exact.dcm",
        raw,
        photometric="MONOCHROME1",
        WindowCenter="1500",
        WindowWidth="3",  # narrow: LINEAR_EXACT (c -/+ w/2) and LINEAR (c - 0.5 -/+ (w-1)/2) part
        VOILUTFunction="LINEAR_EXACT",
    )
    li = load_image_file(path)
    expected = _pydicom_display(path, 0, 4095)
    display = _default_display(li)
    assert _off_by_less_than_one(display, expected)
    # MONOCHROME1: values above the window are dark.
    assert display.ravel()[-1] == 0 and display.ravel()[0] == 255
    assert np.abs((255 - _linear_display(path)) - expected).max() > 10


@pytest.mark.parametrize("function", ["LINEAR", "SIGMOID"])
def test_with_two_windows_the_first_is_the_default(tmp_path, make_dicom, function):
    raw = ramp(64, 64, 4095)
    path = make_dicom(
        tmp_path / "two.dcm",
        raw,
        WindowCenter=["1000", "3000"],
        WindowWidth=["400", "800"],
        VOILUTFunction=function,
    )
    li = load_image_file(path)
    first, second = _pydicom_display(path, 0, 4095, 0), _pydicom_display(path, 0, 4095, 1)
    assert _off_by_less_than_one(_default_display(li), first)
    assert np.abs(first - second).max() > 100
    if function == "LINEAR":  # kept as a window over the unchanged values
        assert (li.meta.window_center, li.meta.window_width) == (1000.0, 400.0)
        assert np.array_equal(li.pixels, raw.astype(np.float32))


def test_voi_lut_table_wins_over_a_window_and_is_inverted_for_monochrome1(tmp_path, make_dicom):
    raw = ramp(64, 64, 4095)
    lut = np.round(np.sqrt(np.arange(4096) / 4095) * 4095).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new("LUTData", "US", lut.tolist())
    path = make_dicom(
        tmp_path / "voi_m1.dcm",
        raw,
        photometric="MONOCHROME1",
        WindowCenter="100",
        WindowWidth="50",
    )
    ds = pydicom.dcmread(path)
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(path, enforce_file_format=True)

    li = load_image_file(path)
    assert (li.meta.value_min, li.meta.value_max) == (0.0, 4095.0)
    assert np.array_equal(li.pixels, 4095 - lut[raw].astype(np.float32))
    assert _off_by_less_than_one(_default_display(li), _pydicom_display(path, 0, 4095))


def test_unknown_voi_function_is_read_as_linear(tmp_path, make_dicom):
    raw = ramp(16, 16, 4095)
    path = make_dicom(
        tmp_path / "odd.dcm", raw, WindowCenter="1000", WindowWidth="400", VOILUTFunction="CUBIC"
    )
    li = load_image_file(path)
    assert (li.meta.window_center, li.meta.window_width) == (1000.0, 400.0)
    assert np.array_equal(li.pixels, raw.astype(np.float32))


def test_a_broken_voi_lut_is_refused_without_quoting_the_header(tmp_path, make_dicom):
    raw = ramp(16, 16, 4095)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 9]  # 9 bits per entry: not allowed (8 or 10-16)
    item.add_new("LUTData", "US", [0] * 4096)
    path = make_dicom(tmp_path / "badvoi.dcm", raw, PatientName="Doe^Jane")
    ds = pydicom.dcmread(path)
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageRejected, match="VOI LUT") as info:
        load_image_file(path)
    assert "Doe" not in str(info.value) and "9" not in str(info.value)


def test_signed_pixel_representation(tmp_path, make_dicom):
    raw = ramp(30, 30, 2047, dtype=np.int16, lo=-2048)
    li = load_image_file(make_dicom(tmp_path / "s.dcm", raw, bits_stored=12))
    assert np.array_equal(li.pixels, raw.astype(np.float32))
    assert li.pixels.min() == -2048
    assert (li.meta.value_min, li.meta.value_max) == (-2048.0, 2047.0)


def test_rgb_dicom_is_refused(tmp_path, make_dicom):
    rgb = np.zeros((16, 16, 3), np.uint8)
    path = make_dicom(tmp_path / "rgb.dcm", rgb, bits_stored=8, photometric="RGB", samples=3)
    with pytest.raises(ImageRejected, match="photometric interpretation RGB"):
        load_image_file(path)


def test_dicom_without_pixel_data_is_refused(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "nopix.dcm", None)
    with pytest.raises(ImageRejected, match="no pixel data"):
        load_image_file(path)


def test_dicom_spacing_is_kept(tmp_path, make_dicom):
    raw = ramp(8, 8, 100)
    li = load_image_file(make_dicom(tmp_path / "sp.dcm", raw, PixelSpacing=["0.143", "0.139"]))
    assert li.meta.pixel_spacing == pytest.approx((0.143, 0.139))


# --- PNG / JPEG ----------------------------------------------------------------------------


def test_8_bit_gray_png_is_exact():
    arr = ramp(37, 53, 255, dtype=np.uint8)
    li = load_image(png_bytes(arr), "a.png")
    assert (li.meta.source_format, li.meta.modality, li.meta.bits_stored) == ("png", "OT", 8)
    assert (li.meta.width, li.meta.height) == (53, 37)
    assert np.array_equal(li.pixels, arr.astype(np.float32))


def test_16_bit_gray_png_keeps_values_exactly():
    arr = ramp(40, 41, 65535)
    data = png_bytes(arr)
    assert PILImage.open(io.BytesIO(data)).mode == "I;16"
    li = load_image(data, "deep.png")
    assert li.meta.bits_stored == 16
    assert li.pixels.max() == 65535
    assert np.array_equal(li.pixels, arr.astype(np.float32))


def test_rgb_png_becomes_luminance():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 31, 3), dtype=np.uint8)
    li = load_image(png_bytes(rgb), "colour.png")
    assert li.pixels.shape == (24, 31)
    lum = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114  # ITU-R 601-2
    assert np.abs(li.pixels - lum).max() <= 1.0


def test_real_jpeg_matches_its_decoder(cxr_lungs_dir):
    path = sorted(cxr_lungs_dir.glob("*.jpg"))[0]
    li = load_image_file(path)
    ref = np.asarray(PILImage.open(path).convert("L"), dtype=np.float32)
    assert li.meta.source_format == "jpeg"
    assert np.array_equal(li.pixels, ref)


def test_format_is_sniffed_from_content_not_extension():
    arr = ramp(10, 10, 255, dtype=np.uint8)
    assert load_image(png_bytes(arr), "misnamed.jpg").meta.source_format == "png"


# --- display rendition ---------------------------------------------------------------------


def test_apply_window_maps_the_window_onto_0_255():
    values = np.array([[-1000, 0, 100, 199.5, 200, 5000]], np.float32)
    out = apply_window(values, Window(center=100, width=200))
    assert out.dtype == np.uint8
    assert out[0, 0] == 0 and out[0, 1] == 0  # below and at the bottom edge
    assert 126 <= out[0, 2] <= 129  # the centre is mid-grey
    assert out[0, 4] == 255 and out[0, 5] == 255
    assert np.all(np.diff(out[0].astype(int)) >= 0)


def test_narrower_window_gives_more_contrast():
    values = np.linspace(0, 1000, 101, dtype=np.float32)[None]
    wide = apply_window(values, Window(500, 1000)).astype(int)
    narrow = apply_window(values, Window(500, 200)).astype(int)
    assert np.ptp(narrow[0, 40:61]) > np.ptp(wide[0, 40:61])


def test_render_display_downscales_keeping_aspect():
    pixels = np.zeros((1955, 1841), np.float32)
    out = render_display(pixels, Window(0, 100), max_side=512)
    assert out.shape == (512, round(1841 * 512 / 1955))
    small = render_display(np.zeros((100, 60), np.float32), Window(0, 100), max_side=512)
    assert small.shape == (100, 60)  # never upscaled


def test_window_presets_are_ordered(unci):
    m = unci.meta
    presets = window_presets(unci.pixels, m.window_center, m.window_width, m.value_min, m.value_max)
    assert list(presets) == ["default", "full range", "lung", "soft tissue", "bone"]
    assert presets["default"] == Window(m.window_center, m.window_width)
    assert presets["full range"] == Window(32767 / 2, 32767)
    assert presets["lung"].center < presets["soft tissue"].center < presets["bone"].center
    assert all(w.width >= 1 for w in presets.values())
    # Each preset brightens the image monotonically with value.
    for w in presets.values():
        out = apply_window(np.linspace(m.value_min, m.value_max, 500, dtype=np.float32), w)
        assert np.all(np.diff(out.astype(int)) >= 0)


def test_default_window_without_header_covers_8_bit_range():
    pixels = ramp(10, 10, 255, dtype=np.uint8).astype(np.float32)
    w = default_window(pixels, None, None, 0.0, 255.0)
    assert w == Window(127.5, 256)
    assert apply_window(pixels, w)[0, 0] == 0 and apply_window(pixels, w)[-1, -1] == 255
