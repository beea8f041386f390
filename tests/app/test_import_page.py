"""Import page (Streamlit AppTest): several files at once, a progress bar, refused files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core.workspace import Workspace
from db.models import Image


def import_page(open_app) -> AppTest:
    return open_app("import_images", navigate=True)


def upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader[0].set_value([(n, d, "application/octet-stream") for n, d in files])
    at.run()
    at.button(key="import_start").click()
    return at.run()


def stored_count(root: Path) -> int:
    ws = Workspace.open(root)
    try:
        with ws.sessions() as s:
            return s.scalar(select(func.count(Image.id)))
    finally:
        ws.dispose()


def test_page_offers_a_multi_file_uploader(app_env, open_app):
    at = import_page(open_app)
    assert not at.exception
    assert at.title[0].value == "Import X-rays"
    uploader = at.file_uploader[0]
    assert uploader.accept_multiple_files
    assert at.button(key="import_start").disabled  # nothing chosen yet


def test_uploads_import_and_refusals_are_listed(app_env, open_app, dicom_mono1, cxr_lungs_dir):
    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[:2]
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    files = [
        ("chest.dcm", dicom_mono1.read_bytes()),
        *[(p.name, p.read_bytes()) for p in jpegs],
        ("empty.png", b""),
        ("noise.dcm", noise),
    ]
    at = upload(import_page(open_app), files)
    assert not at.exception
    assert "Imported 3 image(s); 0 already stored." in at.success[0].value
    assert "2 file(s) refused" in at.error[0].value
    table = at.table[0].value
    refused = dict(zip(table["file"], table["reason"], strict=True))
    assert set(refused) == {"empty.png", "noise.dcm"}
    assert "empty" in refused["empty.png"]
    assert "DICOM" in refused["noise.dcm"]
    assert stored_count(app_env) == 3

    # The same files again: stored once, reported as already there; the uploader is empty again.
    assert at.file_uploader[0].value in (None, [])
    at = upload(at, files[:2])
    assert "Imported 0 image(s); 2 already stored." in at.success[0].value
    assert not at.error
    assert stored_count(app_env) == 3


def test_progress_bar_reports_each_file(app_env, open_app, cxr_lungs_dir, monkeypatch):
    """The bar moves file by file: record what the page draws through the progress element."""
    seen: list[str] = []
    import streamlit.elements.progress as progress_mod

    original = progress_mod.ProgressMixin.progress

    def spy(self, value, text=None, **kw):
        seen.append(text or "")
        return original(self, value, text=text, **kw)

    monkeypatch.setattr(progress_mod.ProgressMixin, "progress", spy)
    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[:3]
    at = upload(import_page(open_app), [(p.name, p.read_bytes()) for p in jpegs])
    assert not at.exception
    assert [t for t in seen if t.startswith("Importing ")] == [
        "Importing 1 of 3…",
        "Importing 2 of 3…",
        "Importing 3 of 3…",
    ]
    assert seen[-1] == "Done: 3 file(s) read"
