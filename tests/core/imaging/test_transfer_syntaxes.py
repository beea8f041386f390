"""Compressed DICOM transfer syntaxes decode to exactly the pixels of the uncompressed file.

RG1_J2KR is not pixel-identical to RG1_UNCI (another copy of the acquisition), so each
syntax is proven by re-encoding RG1_UNCI losslessly and importing the result: JPEG 2000 and
RLE with pydicom's encoders, JPEG-LS with pyjpegls, and JPEG lossless (Process 14, first-order
prediction: what most CR/DX modalities write) with the small encoder below, as pydicom has none.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from core.imaging import load_image_file
from core.ingest.importer import import_paths


def _segment(marker: bytes, payload: bytes) -> bytes:
    return marker + struct.pack(">H", len(payload) + 2) + payload


def encode_jpeg_lossless_sv1(img: np.ndarray, precision: int) -> bytes:
    """ITU-T T.81 Annex H lossless JPEG, predictor 1, one Huffman table (17 five-bit codes)."""
    x = img.astype(np.int64)
    pred = np.empty_like(x)
    pred[:, 1:] = x[:, :-1]  # predictor 1: the pixel to the left
    pred[1:, 0] = x[:-1, 0]  # first column: the pixel above
    pred[0, 0] = 1 << (precision - 1)
    diff = (x - pred).ravel()
    ssss = np.ceil(np.log2(np.abs(diff) + 1)).astype(np.int64)  # magnitude category
    extra = np.where(diff < 0, diff + (1 << ssss) - 1, diff)
    value, length = (ssss << ssss) | extra, 5 + ssss
    shifts = np.arange(20, -1, -1)
    chunks = []
    for s in range(0, value.size, 1 << 18):
        v, n = value[s : s + (1 << 18)], length[s : s + (1 << 18)]
        bits = ((v[:, None] >> shifts) & 1).astype(bool)
        chunks.append(bits[shifts[None, :] < n[:, None]])
    stream = np.concatenate(chunks)
    stream = np.concatenate([stream, np.ones(-stream.size % 8, bool)])  # pad with 1-bits
    entropy = np.packbits(stream).tobytes().replace(b"\xff", b"\xff\x00")  # byte stuffing
    rows, cols = img.shape
    sof3 = struct.pack(">BHHB", precision, rows, cols, 1) + bytes([1, 0x11, 0])
    counts = [0] * 16
    counts[4] = 17  # 17 codes of length 5: categories 0..16
    dht = bytes([0x00, *counts, *range(17)])
    sos = bytes([1, 1, 0x00, 1, 0, 0])  # one component, table 0, Ss = predictor 1
    return (
        b"\xff\xd8"
        + _segment(b"\xff\xc3", sof3)
        + _segment(b"\xff\xc4", dht)
        + _segment(b"\xff\xda", sos)
        + entropy
        + b"\xff\xd9"
    )


def recompress(src: Path, out: Path, syntax) -> Path:
    ds = pydicom.dcmread(src)
    if syntax == JPEGLosslessSV1:
        frame = encode_jpeg_lossless_sv1(ds.pixel_array, int(ds.BitsStored))
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        ds.compress(syntax)
    ds.save_as(out, enforce_file_format=True)
    return out


@pytest.fixture(scope="module")
def unci(dicom_mono1: Path):
    return load_image_file(dicom_mono1)


SYNTAXES = [JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless]


@pytest.mark.parametrize("syntax", SYNTAXES, ids=["j2k", "jpeg-lossless", "jpeg-ls", "rle"])
def test_lossless_syntax_decodes_to_identical_pixels(tmp_path, dicom_mono1, unci, syntax):
    path = recompress(dicom_mono1, tmp_path / "recompressed.dcm", syntax)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert header.file_meta.TransferSyntaxUID == syntax
    assert path.stat().st_size < dicom_mono1.stat().st_size  # really compressed
    again = load_image_file(path)
    assert np.array_equal(again.pixels, unci.pixels)
    assert again.meta == unci.meta  # MONOCHROME1, window, bits: all as uncompressed


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless])
def test_product_decoders_come_from_pylibjpeg(tmp_path, dicom_mono1, syntax):
    # pyjpegls is only a test dependency (the JPEG-LS encoder); installs without it must
    # still decode every syntax with pylibjpeg and its plugins.
    assert "pylibjpeg" in get_decoder(syntax).available_plugins
    path = recompress(dicom_mono1, tmp_path / "c.dcm", syntax)
    decoded = pixel_array(path, decoding_plugin="pylibjpeg")
    assert np.array_equal(decoded, pydicom.dcmread(dicom_mono1).pixel_array)


def test_real_j2k_file_imports_beside_the_uncompressed_one(tmp_path, dicom_mono1, dicom_j2k):
    """The shipped J2K copy differs slightly from UNCI, so both are kept as two images."""
    from core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    report = import_paths(ws, [dicom_mono1, dicom_j2k])
    assert report.refused == [] and len(report.imported) == 2
    j2k, plain = load_image_file(dicom_j2k), load_image_file(dicom_mono1)
    assert j2k.pixels.shape == (1955, 1841)
    assert j2k.pixels.min() >= 0 and j2k.pixels.max() <= 32767
    assert np.corrcoef(j2k.pixels.ravel(), plain.pixels.ravel())[0, 1] > 0.99
    ws.dispose()
