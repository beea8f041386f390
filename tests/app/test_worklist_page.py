"""Worklist page (Streamlit AppTest): thumbnails, size, modality, status, filters, pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from streamlit.testing.v1 import AppTest

from core.workspace import Workspace
from db.models import Image


def add_rows(ws: Workspace, n: int, thumbnail: str | None, **values) -> None:
    """Bulk image rows (no pixels) reusing one real thumbnail: pagination needs many rows."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with ws.engine.begin() as conn:
        base = conn.scalar(select(Image.id).order_by(Image.id.desc()).limit(1)) or 0
        conn.execute(
            insert(Image),
            [
                {
                    "content_hash": f"{base + i:064x}",
                    "storage_path": f"images/00/{base + i:064x}.png",
                    "thumbnail_path": thumbnail,
                    "width": 640,
                    "height": 480,
                    "modality": values.get("modality", "DX"),
                    "source_format": "png",
                    "bits_stored": 8,
                    "photometric": "MONOCHROME2",
                    "pixel_offset": 0.0,
                    "pixel_scale": 1.0,
                    "value_min": 0.0,
                    "value_max": 255.0,
                    "display_name": f"IMG-{base + i + 1:06d}",
                    "status": values.get("status", "unlabelled"),
                    "imported_at": t0 + timedelta(minutes=i),
                }
                for i in range(n)
            ],
        )


@pytest.fixture
def imported(app_env, imported_workspace, dicom_mono1) -> Workspace:
    return imported_workspace(2, root=app_env, also=[dicom_mono1])


def cards(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**IMG-")]


def caption_text(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_empty_workspace_says_how_to_add_images(app_env, open_app):
    at = open_app(timeout=60)
    assert not at.exception
    assert at.title[0].value == "Worklist"
    assert "No images yet" in at.info[0].value and "Import" in at.info[0].value


def test_imported_images_listed_with_thumbnail_size_modality_and_status(imported, open_app):
    at = open_app(timeout=60)
    assert not at.exception
    assert "3 image(s)" in caption_text(at)
    texts = cards(at)
    assert len(texts) == 3
    dicom = next(t for t in texts if "CR" in t)
    assert "1841×1955 px" in dicom and "DICOM" in dicom and "unlabelled" in dicom
    with imported.sessions() as s:
        statuses = set(s.scalars(select(Image.status)))
    assert all(any(st in t for st in statuses) for t in texts)
    assert sum("JPEG" in t and "OT" in t for t in texts) == 2
    # Every card shows its thumbnail from the store.
    assert len(at.get("image")) == 3
    # No source file names or patient data on the page.
    page_text = " ".join(texts)
    assert "RG1" not in page_text and ".jpg" not in page_text


def test_status_and_modality_filters(imported, open_app):
    # Set statuses here: LabelMe files beside the JPEGs may have labelled them on import.
    with imported.sessions.begin() as s:
        first_jpeg = s.scalar(select(Image.id).where(Image.modality == "OT").order_by(Image.id))
        s.execute(update(Image).values(status="unlabelled"))
        s.execute(update(Image).where(Image.id == first_jpeg).values(status="labelled"))
    at = open_app(timeout=60)
    at.selectbox(key="worklist_status").set_value("labelled").run()
    assert not at.exception
    assert len(cards(at)) == 1 and "labelled" in cards(at)[0]

    at.selectbox(key="worklist_status").set_value("").run()
    at.selectbox(key="worklist_modality").set_value("CR").run()
    assert [("CR" in t) for t in cards(at)] == [True]
    assert sorted(at.selectbox(key="worklist_modality").options) == ["CR", "OT", "any"]

    at.selectbox(key="worklist_status").set_value("negative").run()
    assert cards(at) == []
    assert "No image matches these filters" in at.info[0].value


def test_pages_of_the_chosen_size_and_navigation(imported, open_app):
    thumb = imported.store_dir.as_posix()
    with imported.sessions() as s:
        thumb = s.scalar(select(Image.thumbnail_path).limit(1))
    add_rows(imported, 47, thumb)  # 50 images in all
    at = open_app(timeout=60)
    assert "50 image(s)" in caption_text(at) and "page 1 of 3" in caption_text(at)
    first_page = cards(at)
    assert len(first_page) == 24

    at.selectbox(key="worklist_page_size").set_value(12).run()
    assert len(cards(at)) == 12 and "page 1 of 5" in caption_text(at)

    at.get("pagination")[0].set_value(5).run()
    assert not at.exception
    assert "page 5 of 5" in caption_text(at)
    last = cards(at)
    assert len(last) == 2 and not set(last) & set(first_page)

    # Changing a filter starts again at page 1 (page 5 would no longer exist).
    at.selectbox(key="worklist_sort").set_value("oldest").run()
    assert "page 1 of 5" in caption_text(at)

    at.number_input(key="worklist_goto").set_value(3).run()
    assert "page 3 of 5" in caption_text(at)
    assert len(cards(at)) == 12


def test_newest_first_order(imported, open_app):
    with imported.sessions() as s:
        thumb = s.scalar(select(Image.thumbnail_path).limit(1))
    add_rows(imported, 5, thumb)  # imported in 2024: older than the three real images
    at = open_app(timeout=60)
    names = [t.split("**")[1] for t in cards(at)]
    assert names[:3] == ["IMG-000003", "IMG-000002", "IMG-000001"]
    at.selectbox(key="worklist_sort").set_value("oldest").run()
    names = [t.split("**")[1] for t in cards(at)]
    assert names[:2] == ["IMG-000004", "IMG-000005"]
