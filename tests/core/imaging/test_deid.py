"""De-identification: the real DICOM's identifiers never reach the database or the store."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from core.imaging.deid import pseudonymise
from core.ingest.importer import import_paths
from core.workspace import Workspace
from db.models import Image

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _open(root: Path) -> Workspace:
    return Workspace.open(root)


def _import(root: Path, *paths: Path) -> tuple[Workspace, Image]:
    ws = _open(root)
    report = import_paths(ws, list(paths))
    assert report.refused == [] and len(report.imported) == 1
    with ws.sessions() as s:
        image = s.scalar(select(Image))
    return ws, image


@pytest.fixture(scope="module")
def identifiers(dicom_mono1: Path) -> dict[str, str]:
    ds = pydicom.dcmread(dicom_mono1, stop_before_pixels=True)
    found = {
        "PatientName": str(ds.PatientName),
        "PatientID": str(ds.PatientID),
        "PatientBirthDate": str(ds.get("PatientBirthDate", "")),
        "AccessionNumber": str(ds.get("AccessionNumber", "")),
        "StudyInstanceUID": str(ds.StudyInstanceUID),
        "SeriesInstanceUID": str(ds.SeriesInstanceUID),
    }
    # The test means something only if the file really carries these identifiers.
    assert found["PatientName"] and found["PatientID"]
    return {k: v for k, v in found.items() if v}


def _all_workspace_files(ws: Workspace) -> list[Path]:
    files = [p for p in ws.root.rglob("*") if p.is_file()]
    assert any(p.name == "pneumolab.db" for p in files)
    return files


def test_identifiers_appear_in_no_stored_byte(tmp_path, dicom_mono1, identifiers):
    ws, _image = _import(tmp_path / "ws", dicom_mono1)
    name = identifiers["PatientName"]
    needles = {k: v.encode() for k, v in identifiers.items()}
    # The name's components separately too (family^given).
    parts = [p for p in name.split("^") if len(p) >= 4]
    needles.update({f"PatientName part {p!r}": p.encode() for p in parts})

    def scan() -> list[Path]:
        files = _all_workspace_files(ws)
        for path in files:
            blob = path.read_bytes()
            for what, needle in needles.items():
                assert needle not in blob, f"{what} found in clear in {path}"
                utf16 = needle.decode().encode("utf-16-le")
                assert utf16 not in blob, f"{what} (UTF-16) found in {path}"
        return files

    # While connections are open the write-ahead log holds the newest pages...
    files = scan()
    assert any(p.name == "pneumolab.db-wal" for p in files)
    assert any(p.suffix == ".png" and "images" in p.parts for p in files)
    # ...and after closing they are checkpointed into the main file.
    ws.dispose()
    scan()


def test_stored_file_names_are_hashes(tmp_path, dicom_mono1):
    ws, image = _import(tmp_path / "ws", dicom_mono1)
    stored = [p for p in ws.store_dir.rglob("*") if p.is_file()]
    assert len(stored) == 2  # the image and its thumbnail
    for p in stored:
        assert HEX64.match(p.stem), p
        assert re.fullmatch(r"[0-9a-f]{2}", p.parent.name)
    assert image.content_hash in image.storage_path
    assert "RG1" not in image.storage_path and "RG1" not in image.display_name
    assert re.fullmatch(r"IMG-\d{6}", image.display_name)


def test_patient_key_is_a_salted_hmac_stable_within_a_workspace(
    tmp_path, dicom_mono1, dicom_j2k, identifiers
):
    ws, first = _import(tmp_path / "a", dicom_mono1)
    assert HEX64.match(first.patient_key)
    assert first.patient_key == pseudonymise(identifiers["PatientID"], ws.salt)
    assert first.study_key == pseudonymise(identifiers["StudyInstanceUID"], ws.salt)
    assert first.series_key == pseudonymise(identifiers["SeriesInstanceUID"], ws.salt)

    # Same patient, other pixels (the J2K copy), same workspace -> same key.
    report = import_paths(ws, [dicom_j2k])
    assert len(report.imported) == 1
    with ws.sessions() as s:
        keys = set(s.scalars(select(Image.patient_key)))
    assert keys == {first.patient_key}

    # Reopening the workspace keeps its salt (the key does not drift between sessions).
    ws.dispose()
    assert _open(tmp_path / "a").salt == ws.salt


def test_patient_key_differs_between_workspaces(tmp_path, dicom_mono1):
    ws_a, a = _import(tmp_path / "a", dicom_mono1)
    ws_b, b = _import(tmp_path / "b", dicom_mono1)
    assert ws_a.salt != ws_b.salt
    assert a.patient_key != b.patient_key
    assert a.content_hash == b.content_hash  # same pixels; only the pseudonym changes


def test_pseudonymise_is_keyed_and_drops_empty_values():
    assert pseudonymise("123", "salt1") != pseudonymise("123", "salt2")
    assert pseudonymise(" 123 ", "salt1") == pseudonymise("123", "salt1")
    assert pseudonymise("", "salt1") is None and pseudonymise(None, "salt1") is None
