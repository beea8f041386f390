"""The patient-key secret lives in a key file readable by its owner only, never in the
database: a copy of the database alone does not let anyone recompute patient ids. A workspace
of an older version (secret in the settings table) keeps its patient keys when it moves."""

from __future__ import annotations

import json
import stat

import pydicom
import pytest
from sqlalchemy import select

from core.imaging.deid import pseudonymise
from core.ingest.importer import import_paths
from core.workspace import Workspace
from db.models import Image, Setting


@pytest.fixture(autouse=True)
def _default_secret_place(monkeypatch):
    monkeypatch.delenv("PNEUMOLAB_SECRET_FILE", raising=False)
    monkeypatch.delenv("PNEUMOLAB_DATABASE_URL", raising=False)
    monkeypatch.delenv("PNEUMOLAB_STORE", raising=False)


def _on_disk(root, secret: str) -> bool:
    """Whether `secret` is anywhere in what SQLite keeps on disk: the database file, its WAL
    and shared memory."""
    files = [p for p in sorted(root.glob("pneumolab.db*")) if p.is_file()]
    return any(secret.encode() in p.read_bytes() for p in files)


def _patient_keys(ws) -> list[str]:
    with ws.sessions() as s:
        return list(s.scalars(select(Image.patient_key).order_by(Image.id)))


def _settings(ws) -> dict[str, str]:
    with ws.sessions() as s:
        return {row.key: row.value for row in s.scalars(select(Setting))}


def _open_with_one_dicom(root, dicom) -> tuple[Workspace, str]:
    ws = Workspace.open(root)
    report = import_paths(ws, [dicom])
    assert len(report.imported) == 1, report.summary()
    (key,) = _patient_keys(ws)
    return ws, key


def test_secret_is_a_0600_key_file_and_not_in_the_database(tmp_path, dicom_mono1):
    root = tmp_path / "ws"
    ws, key = _open_with_one_dicom(root, dicom_mono1)
    try:
        secret_file = root / "secret.key"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert secret_file.read_text().strip() == ws.salt
        assert key is not None and ws.salt not in _settings(ws).values()
    finally:
        ws.dispose()
    assert not _on_disk(root, ws.salt)
    # Another process finds the same secret: the patient keys do not drift between opens.
    again = Workspace.open(root)
    try:
        assert again.salt == ws.salt and _patient_keys(again) == [key]
    finally:
        again.dispose()


def test_an_older_workspace_moves_its_secret_out_and_keeps_its_patient_keys(
    tmp_path, dicom_mono1, dicom_j2k
):
    root = tmp_path / "ws"
    ws, key = _open_with_one_dicom(root, dicom_mono1)
    salt = ws.salt
    # What an older version left: the secret in the settings table, no key file.
    with ws.sessions.begin() as s:
        s.query(Setting).delete()
        s.add(Setting(key="deid_salt", value=salt))
    ws.dispose()
    (root / "secret.key").unlink()
    assert _on_disk(root, salt)

    moved = Workspace.open(root)
    try:
        assert moved.salt == salt
        assert (root / "secret.key").read_text().strip() == salt
        assert stat.S_IMODE((root / "secret.key").stat().st_mode) == 0o600
        assert "deid_salt" not in _settings(moved)
        # Same patient, other pixels, after the move: the same key as before it.
        assert len(import_paths(moved, [dicom_j2k]).imported) == 1
        patient_id = str(pydicom.dcmread(dicom_mono1, stop_before_pixels=True).PatientID)
        assert _patient_keys(moved) == [key, key] == [pseudonymise(patient_id, salt)] * 2
        # Not even in a freed cell or in the WAL, while the workspace is open (on close
        # SQLite would fold the WAL into the database file anyway).
        assert not _on_disk(root, salt)
    finally:
        moved.dispose()
    assert not _on_disk(root, salt)


def test_a_database_with_images_but_no_secret_is_refused(tmp_path, dicom_mono1, monkeypatch):
    root = tmp_path / "ws"
    ws, key = _open_with_one_dicom(root, dicom_mono1)
    ws.dispose()
    kept = tmp_path / "kept-safe.key"
    (root / "secret.key").rename(kept)

    with pytest.raises(OSError, match="PNEUMOLAB_SECRET_FILE") as refused:
        Workspace.open(root)
    assert "secret" in str(refused.value) and str(root / "secret.key") in str(refused.value)
    assert not (root / "secret.key").exists()  # no new secret was made up

    # Pointed at the secret, the workspace opens with its patient keys unchanged.
    monkeypatch.setenv("PNEUMOLAB_SECRET_FILE", str(kept))
    again = Workspace.open(root)
    try:
        assert again.salt == kept.read_text().strip() and _patient_keys(again) == [key]
        assert not (root / "secret.key").exists()
    finally:
        again.dispose()


def test_the_cli_refusal_names_the_setting(tmp_path, dicom_mono1, capsys):
    from core.cli import main

    root = tmp_path / "ws"
    ws, _ = _open_with_one_dicom(root, dicom_mono1)
    ws.dispose()
    (root / "secret.key").unlink()
    capsys.readouterr()
    assert main(["--workspace", str(root), "images"]) == 2
    (line,) = capsys.readouterr().out.splitlines()
    assert "PNEUMOLAB_SECRET_FILE" in json.loads(line)["error"]


def test_another_secret_than_the_one_that_made_the_keys_is_refused(tmp_path, dicom_mono1):
    root = tmp_path / "ws"
    ws, _ = _open_with_one_dicom(root, dicom_mono1)
    ws.dispose()
    (root / "secret.key").write_text("0" * 64 + "\n")
    with pytest.raises(OSError, match="not the one"):
        Workspace.open(root)
