"""The whole loop in a real browser: train from the Train page, watch it finish, review the
prediction (red over blue, purple overlap, Grad-CAM), accept it, download the export and open
it with the real labelme package.

20 real X-rays from ../shared/data/cxr-lungs with their LabelMe lung polygons; a tiny U-Net
(resnet18, 64 px, 2 epochs) so the run takes seconds on a CPU.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.jobs.worker import stop_worker
from core.labels.revisions import latest_by_reader
from db.models import AnnotationRevision, Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytestmark = pytest.mark.e2e
N_IMAGES = 20


def pick(page, label: str, option: str) -> None:
    """Choose `option` in the Streamlit selectbox labelled `label`."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def image_bytes(page, base_url: str, caption: str) -> np.ndarray:
    """Decode the <img> whose caption contains `caption`, fetched as the browser got it."""
    figure = page.locator('[data-testid="stImage"]').filter(has_text=caption)
    src = figure.locator("img").get_attribute("src")
    body = page.request.get(src if src.startswith("http") else base_url + src).body()
    bgr = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, f"image {src} did not decode"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int)


def colour_counts(rgb: np.ndarray) -> dict[str, int]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return {
        "red": int(((r - b > 60) & (r - g > 60)).sum()),
        "blue": int(((b - r > 60) & (b - g > 60)).sum()),
        "purple": int(((r - g > 40) & (b - g > 40) & (np.abs(r - b) < 80)).sum()),
    }


def test_train_review_accept_export_in_the_browser(
    tmp_path, imported_workspace, app_server, page, settle, artifacts
):
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def mark(phase: str) -> None:  # kept as an artefact: where the test's time goes
        timings[phase] = round(time.monotonic() - t0, 1)
        (artifacts / "timings.json").write_text(json.dumps(timings, indent=1))

    ws = imported_workspace(N_IMAGES)
    url = app_server(ws.root, autostart_worker=True, env={"OMP_NUM_THREADS": "2"})
    mark("app_started")
    try:
        _loop(page, url, ws, tmp_path, settle, artifacts, mark)
    finally:
        stop_worker(ws)  # the app started it in its own session: it would outlive the test


def _loop(page, url, ws, tmp_path, settle, artifacts, mark) -> None:
    from labelme._label_file import read_label_file
    from labelme.utils import shape_to_mask

    # --- Train page: a tiny training ---------------------------------------------------------
    page.goto(f"{url}/train")
    settle(page)
    page.get_by_role("combobox", name="Encoder").wait_for(timeout=90_000)
    page.get_by_text("Custom: the settings below").click()  # not a one-click recipe
    pick(page, "Encoder", "resnet18")
    pick(page, "Image size (px)", "64")
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("2")
    page.get_by_text("Label to learn").click()  # blur: commit the number without submitting
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Training job \d+: (queued|running)")).wait_for(timeout=30_000)
    mark("training_submitted")
    page.screenshot(path=str(artifacts / "1-train-started.png"), full_page=True)
    page.get_by_text(re.compile(r"Training job \d+: succeeded")).wait_for(timeout=120_000)
    page.get_by_role("link", name="Open the review page").wait_for(timeout=60_000)
    assert page.get_by_text(re.compile(r"Model version 1 registered")).count() == 1
    mark("predictions_ready")
    page.screenshot(path=str(artifacts / "2-train-done.png"), full_page=True)

    # --- Review page: overlay colours, Grad-CAM, accept ----------------------------------------
    page.get_by_role("link", name="Open the review page").click()
    settle(page)
    page.locator('[data-testid="stImage"]').first.wait_for()
    overlay = image_bytes(page, url, "Red: prediction")
    counts = colour_counts(overlay)
    assert counts["red"] > 50 and counts["blue"] > 50 and counts["purple"] > 200, counts
    mark("review_shown")
    page.screenshot(path=str(artifacts / "3-review.png"), full_page=True)

    page.get_by_text("Grad-CAM", exact=True).click()
    page.locator('[data-testid="stImage"]').filter(has_text="Grad-CAM:").wait_for(timeout=60_000)
    settle(page)
    heat = image_bytes(page, url, "Grad-CAM:")
    saturation = heat.max(axis=2) - heat.min(axis=2)
    assert (saturation > 80).mean() > 0.05, "the heatmap shows no colour"
    mark("gradcam_shown")
    page.screenshot(path=str(artifacts / "4-gradcam.png"), full_page=True)

    image_name = re.search(r"IMG-\d+", page.locator("h3").first.inner_text()).group(0)
    page.get_by_role("button", name="Accept").click()
    page.get_by_text(re.compile(r"Saved as reader's revision")).wait_for()
    page.screenshot(path=str(artifacts / "5-accepted.png"), full_page=True)
    with ws.sessions() as s:
        rev = s.scalar(
            select(AnnotationRevision)
            .join(Image, Image.id == AnnotationRevision.image_id)
            .where(Image.display_name == image_name, AnnotationRevision.source == "model")
        )
        assert rev is not None and rev.model_version_id == 1 and rev.shapes

    # --- Export page: the zip opens in labelme -------------------------------------------------
    page.goto(f"{url}/export")
    settle(page)
    page.get_by_role("button", name="Prepare export").click()
    download_button = page.get_by_role("button", name="Download .zip")
    download_button.wait_for(timeout=60_000)
    with page.expect_download() as info:
        download_button.click()
    zip_path = tmp_path / "export.zip"
    info.value.save_as(zip_path)
    mark("export_downloaded")
    page.screenshot(path=str(artifacts / "6-export.png"), full_page=True)
    out = tmp_path / "unzipped"
    zipfile.ZipFile(zip_path).extractall(out)
    accepted = out / "labelme" / "reader" / f"{image_name}.json"
    assert accepted.exists()
    assert len(list((out / "labelme" / "import").glob("*.json"))) == N_IMAGES
    data = read_label_file(str(accepted))
    with ws.sessions() as s:
        image_id = s.scalar(select(Image.id).where(Image.display_name == image_name))
    stored = latest_by_reader(ws, image_id)["reader"]
    size = (stored.image_width, stored.image_height)
    ours = label_mask([shape_from_dict(d) for d in stored.shapes], size, "lung")
    theirs = np.zeros_like(ours)
    for shape in data.shapes:
        theirs |= shape_to_mask((size[1], size[0]), shape["points"], shape["shape_type"])
    assert ours.any() and (ours != theirs).mean() < 0.002

    # --- The audit log: each action of the loop, under the logged-in account ----------------
    from core.accounts import audit_rows

    done = {(row.actor, row.action) for row in audit_rows(ws)}
    assert {("reader", "train"), ("reader", "accept"), ("reader", "export")} <= done, done
