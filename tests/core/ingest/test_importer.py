"""Import: folders (recursive), .zip archives, dedupe by content, CSV patient ids, uploads."""

from __future__ import annotations

import hashlib
import shutil
import zipfile

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import func, select

from core.imaging import load_image_file
from core.imaging.deid import pseudonymise
from core.ingest.importer import import_paths, import_uploads
from core.labels.catalog import display_image, image_info, image_pixels
from db.models import Image

# Two files of cxr-lungs with different bytes and names that decode to the same pixels.
SAME_PIXELS = ("353889E0-A1E8-4F9E-A0B8-F24F36BCFBFB.jpg", "case_72_RX-TORACE1.jpg")


def count(ws) -> int:
    with ws.sessions() as s:
        return s.scalar(select(func.count(Image.id)))


def test_same_pixels_stored_once_under_different_names(workspace, cxr_lungs_dir):
    a, b = (cxr_lungs_dir / n for n in SAME_PIXELS)
    assert hashlib.sha256(a.read_bytes()).digest() != hashlib.sha256(b.read_bytes()).digest()
    report = import_paths(workspace, [a, b])
    assert len(report.imported) == 1 and report.duplicates == report.imported
    assert count(workspace) == 1
    assert len(list((workspace.store_dir / "images").rglob("*.png"))) == 1
    # Importing again changes nothing.
    again = import_paths(workspace, [a])
    assert again.imported == [] and again.duplicates == report.imported


def test_stored_pixels_equal_the_source(workspace, cxr_lungs_dir, dicom_mono1):
    jpeg = sorted(cxr_lungs_dir.glob("*.jpg"))[3]
    report = import_paths(workspace, [jpeg, dicom_mono1])
    for image_id, src in zip(report.imported, [jpeg, dicom_mono1], strict=True):
        info = image_info(workspace, image_id)
        assert np.array_equal(image_pixels(workspace, info), load_image_file(src).pixels)
    dicom = image_info(workspace, report.imported[1])
    assert (dicom.width, dicom.height, dicom.modality, dicom.bits_stored) == (1841, 1955, "CR", 15)
    shown = display_image(workspace, dicom.id, max_side=512)
    assert shown.dtype == np.uint8 and max(shown.shape) == 512


def test_pixel_spacing_is_kept_in_the_database(workspace, tmp_path, make_dicom):
    raw = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096
    path = make_dicom(tmp_path / "sp.dcm", raw, ImagerPixelSpacing=["0.15", "0.16"])
    report = import_paths(workspace, [path])
    info = image_info(workspace, report.imported[0])
    assert info.pixel_spacing == (0.15, 0.16)


def test_folder_is_read_recursively_and_zip_archives_inside_it(workspace, tmp_path, cxr_lungs_dir):
    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[:5]
    root = tmp_path / "batch"
    (root / "a" / "b").mkdir(parents=True)
    shutil.copy(jpegs[0], root / "top.jpg")
    shutil.copy(jpegs[1], root / "a" / "b" / "deep.JPG")
    (root / ".hidden").mkdir()
    shutil.copy(jpegs[2], root / ".hidden" / "skipped.jpg")
    (root / "notes.txt").write_text("not an image, not a candidate")
    with zipfile.ZipFile(root / "a" / "more.zip", "w") as z:
        z.write(jpegs[3], "inner/x.jpg")
        z.write(jpegs[4], "y.jpeg")
    report = import_paths(workspace, [root])
    assert report.refused == []
    assert len(report.imported) == 4  # top, deep, and two from the zip; hidden folder skipped
    assert count(workspace) == 4


def test_zip_given_directly_with_a_bad_member(workspace, tmp_path, cxr_lungs_dir):
    jpeg = sorted(cxr_lungs_dir.glob("*.jpg"))[0]
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(jpeg, "ok.jpg")
        z.writestr("bad.png", b"not a png at all")
    report = import_paths(workspace, [archive])
    assert len(report.imported) == 1
    assert [(r.path, "not a PNG" in r.reason) for r in report.refused] == [
        (f"{archive}!bad.png", True)
    ]


def test_csv_manifest_gives_patient_keys_as_hashes(workspace, tmp_path, cxr_lungs_dir):
    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[:2]
    folder = tmp_path / "with-manifest"
    folder.mkdir()
    for p in jpegs:
        shutil.copy(p, folder / p.name)
    (folder / "labels.csv").write_text(
        f"image,patient_id,view\n{jpegs[0].name},P-77,PA\n{jpegs[1].name},P-78,AP\n"
    )
    report = import_paths(workspace, [folder])
    with workspace.sessions() as s:
        rows = {im.id: im for im in s.scalars(select(Image))}
    keys = [rows[i].patient_key for i in report.imported]
    assert keys == [pseudonymise("P-77", workspace.salt), pseudonymise("P-78", workspace.salt)]
    assert [rows[i].view for i in report.imported] == ["PA", "AP"]
    db_bytes = (workspace.root / "pneumolab.db").read_bytes()
    assert b"P-77" not in db_bytes


def test_16_bit_png_and_rgb_jpeg_import(workspace, tmp_path):
    deep = np.linspace(0, 65535, 80 * 90).reshape(80, 90).astype(np.uint16)
    PILImage.fromarray(deep).save(tmp_path / "deep.png")
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 0] = 200
    PILImage.fromarray(rgb).save(tmp_path / "colour.jpg", quality=95)
    report = import_paths(workspace, [tmp_path / "deep.png", tmp_path / "colour.jpg"])
    assert report.refused == []
    deep_info = image_info(workspace, report.imported[0])
    assert deep_info.bits_stored == 16
    assert np.array_equal(image_pixels(workspace, deep_info), deep.astype(np.float32))
    colour = image_pixels(workspace, image_info(workspace, report.imported[1]))
    assert colour.shape == (40, 50) and abs(float(colour.mean()) - 200 * 0.299) < 3


def test_uploads_with_progress(workspace, cxr_lungs_dir):
    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[:3]
    calls: list[tuple[int, int]] = []
    report = import_uploads(
        workspace,
        [(p.name, p.read_bytes()) for p in jpegs] + [("junk.png", b"\x00" * 10)],
        progress=lambda i, n, _name: calls.append((i, n)),
    )
    assert len(report.imported) == 3
    assert [(r.path, r.reason) for r in report.refused][0][0] == "junk.png"
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
