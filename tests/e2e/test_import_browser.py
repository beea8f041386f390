"""Real browser: upload the real DICOM and two JPEGs on the Import page, see them in the
worklist with their thumbnails loaded, and open one from its card in the annotator."""

from __future__ import annotations

import re

import pytest

from core.ingest.store import THUMB_SIDE

pytestmark = pytest.mark.e2e


def test_upload_then_worklist_shows_thumbnails_and_opens_the_annotator(
    tmp_path, app_server, page, settle, artifacts, dicom_mono1, cxr_lungs_dir
):
    url = app_server(tmp_path / "ws")
    page.goto(url)
    settle(page)
    page.get_by_text("No images yet").wait_for()

    page.locator('[data-testid="stSidebarNav"] a', has_text="Import").click()
    settle(page)
    page.get_by_role("heading", name="Import X-rays").wait_for()

    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[:2]
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        [str(dicom_mono1), *(str(p) for p in jpegs)]
    )
    # The uploader lists each file once uploaded; the button is enabled by the rerun that follows.
    page.locator('[data-testid="stFileChip"]').nth(2).wait_for()
    assert page.locator('[data-testid="stFileChip"]').count() == 3
    settle(page)
    button = page.get_by_role("button", name="Import", exact=True)
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')]"
        ".some(b => b.innerText.trim() === 'Import' && !b.disabled)"
    )
    button.click()
    page.get_by_text("Imported 3 image(s); 0 already stored.").wait_for(timeout=90_000)
    settle(page)
    page.screenshot(path=str(artifacts / "import-done.png"), full_page=True)

    page.locator('[data-testid="stSidebarNav"] a', has_text="Worklist").click()
    settle(page)
    page.get_by_text(re.compile(r"3 image\(s\) · page 1 of 1")).wait_for()
    thumbs = page.locator('[data-testid="stImage"] img')
    thumbs.first.wait_for()
    page.wait_for_function(
        """() => {
            const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
            return imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        timeout=30_000,
    )
    sizes = thumbs.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == 3 and all(max(w, h) == THUMB_SIDE for w, h in sizes), sizes
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "1841×1955 px · CR · DICOM" in body
    assert body.count("· OT · JPEG") == 2
    # Source names (which can identify a patient) are not what the worklist shows.
    assert dicom_mono1.name not in body and all(p.name not in body for p in jpegs)
    page.screenshot(path=str(artifacts / "worklist.png"), full_page=True)
    assert (artifacts / "worklist.png").stat().st_size > 10_000

    # Each card opens that image in the annotator.
    card = page.locator('[class*="st-key-worklist_card_"]', has_text="1841×1955 px · CR · DICOM")
    name = re.search(r"IMG-\d+", card.inner_text()).group(0)
    card.get_by_role("link", name="Annotate").click()
    settle(page)
    page.get_by_role("heading", name="Annotate").wait_for()
    page.get_by_text(re.compile(rf"{name} · 1841×1955 px · CR")).wait_for(timeout=60_000)
    assert re.search(r"[?&]image=\d+", page.url), page.url
