"""Annotate page in a real browser: draw with the mouse, save, read the revision back.

Drives Debian's Chromium against `streamlit run app/main.py` on a workspace holding the real
DICOM (1841 x 1955, MONOCHROME1) and one real 1024-px JPEG. Points are chosen in original
image pixels, turned into screen positions from the canvas's on-screen box, clicked or
dragged with the mouse, and the stored revision must match within 1 % of the image size.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from annotations.canvas import Viewport, fit_viewport
from core.labels.revisions import latest_revision

pytestmark = pytest.mark.e2e

READER = "reader"  # the default admin reader of a fresh workspace
CANVAS = "canvas.upper-canvas"  # Fabric's event layer, exactly over the drawn canvas


def _goto(page, settle, url: str, image_id: int) -> None:
    page.set_viewport_size({"width": 1600, "height": 1300})  # the whole canvas, no scrolling
    page.goto(f"{url}/annotate?image={image_id}")
    page.wait_for_selector(CANVAS)
    settle(page)
    time.sleep(0.5)  # background image and Fabric load


def _viewport(page, size: tuple[int, int], zoom: float = 1.0) -> tuple[Viewport, dict]:
    # A rerun can re-mount the canvas element just as we look it up: look again.
    for attempt in range(6):
        try:
            canvas = page.locator(CANVAS).first
            canvas.scroll_into_view_if_needed(timeout=5_000)
            box = canvas.bounding_box(timeout=5_000)
            if box is not None:
                break
        except PlaywrightError:
            if attempt == 5:
                raise
        time.sleep(0.5)
    assert box is not None, "the annotation canvas never got an on-screen box"
    vp = fit_viewport(size, (round(box["width"]), round(box["height"])), zoom)
    assert (vp.canvas_width, vp.canvas_height) == (round(box["width"]), round(box["height"]))
    return vp, box


def _screen(vp: Viewport, box: dict, x: float, y: float) -> tuple[float, float]:
    cx, cy = vp.to_canvas(x, y)
    return box["x"] + cx, box["y"] + cy


def _click_polygon(page, vp, box, points) -> None:
    for x, y in [*points, points[0]]:  # the first vertex again closes the polygon
        page.mouse.click(*_screen(vp, box, x, y))
        time.sleep(0.15)


def _drag(page, vp, box, start, end) -> None:
    page.mouse.move(*_screen(vp, box, *start))
    page.mouse.down()
    page.mouse.move(*_screen(vp, box, *end), steps=8)
    page.mouse.up()


def _tool(page, settle, name: str) -> None:
    page.get_by_text(name, exact=True).first.click()
    settle(page)
    time.sleep(0.7)  # the canvas applies the new tool after the rerun's delta arrives


def _save(page, settle, revision: int) -> None:
    time.sleep(0.6)  # the canvas sends its drawing 200 ms after the last mouse-up
    settle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_selector(f"text=Saved revision {revision} ")
    settle(page)


def _leave_prompts(page) -> list[str]:
    """Close the tab as a user would (running beforeunload) and answer "stay" to any prompt;
    the types of the prompts the browser showed."""
    shown: list[str] = []

    def stay(dialog) -> None:
        shown.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 10
    while not shown and not page.is_closed() and time.monotonic() < deadline:
        try:
            page.wait_for_timeout(100)  # lets Playwright deliver the dialog event
        except PlaywrightError:
            break  # the page closed meanwhile
    if not page.is_closed():
        page.wait_for_timeout(500)
        page.remove_listener("dialog", stay)
    return shown


def _close(actual, expected, size) -> bool:
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    tol = 0.01 * np.asarray(size, float)
    return a.shape == e.shape and bool((np.abs(a - e) <= tol).all())


def _by_type(shapes: list[dict], kind: str) -> list[dict]:
    return [s for s in shapes if s["shape_type"] == kind]


def _fill_is_visible(page, box: dict, vp: Viewport, points, artifacts: Path, name: str) -> bool:
    """The polygon's or box's tinted fill is on screen at its centre: the loaded shape is a
    real canvas object drawn where its stored coordinates say."""
    shot = artifacts / name
    page.locator(CANVAS).first.screenshot(path=str(shot))
    import cv2

    rgb = cv2.imread(str(shot))[:, :, ::-1].astype(int)
    cx, cy = vp.to_canvas(*np.mean(np.asarray(points, float), axis=0))
    patch = rgb[int(cy) - 3 : int(cy) + 4, int(cx) - 3 : int(cx) + 4]
    r, g, b = patch[..., 0].mean(), patch[..., 1].mean(), patch[..., 2].mean()
    return r - max(g, b) > 15  # red label tint over a grey X-ray


def test_dicom_draw_zoom_reload_window_edit_and_delete(
    app_server, page, settle, artifacts, workspace, import_real_images, dicom_mono1
):
    ws = workspace
    (image_id,) = import_real_images(ws, also=[dicom_mono1]).imported
    size = (1841, 1955)
    url = app_server(ws.root)
    _goto(page, settle, url, image_id)

    # 1x: a polygon by clicks, a box by a drag.
    vp, box = _viewport(page, size)
    poly_1x = [(450.0, 600.0), (800.0, 560.0), (850.0, 1000.0), (480.0, 1050.0)]
    _click_polygon(page, vp, box, poly_1x)
    _tool(page, settle, "Box")
    vp, box = _viewport(page, size)
    box_1x = [(1050.0, 700.0), (1400.0, 1100.0)]
    _drag(page, vp, box, *box_1x)
    _save(page, settle, 1)
    page.screenshot(path=str(artifacts / "dicom_1x_saved.png"), full_page=True)
    rev = latest_revision(ws, image_id, READER)
    assert rev.revision == 1 and (rev.image_width, rev.image_height) == size
    assert _close(_by_type(rev.shapes, "polygon")[0]["points"], poly_1x, size)
    assert _close(_by_type(rev.shapes, "rectangle")[0]["points"], box_1x, size)
    assert {s["label"] for s in rev.shapes} == {"pneumonia"}

    # 2x (centre of the image): one more polygon and box, at the right original pixels.
    page.get_by_text("2x", exact=True).click()
    settle(page)
    time.sleep(0.5)
    vp, box = _viewport(page, size, zoom=2.0)
    assert vp.region_width == round(size[0] / 2) and vp.left > 0
    _tool(page, settle, "Polygon")
    vp, box = _viewport(page, size, zoom=2.0)
    poly_2x = [(800.0, 800.0), (1000.0, 780.0), (1050.0, 1100.0), (820.0, 1150.0)]
    _click_polygon(page, vp, box, poly_2x)
    _tool(page, settle, "Box")
    vp, box = _viewport(page, size, zoom=2.0)
    box_2x = [(1100.0, 1200.0), (1300.0, 1400.0)]
    _drag(page, vp, box, *box_2x)
    _save(page, settle, 2)
    page.screenshot(path=str(artifacts / "dicom_2x_saved.png"), full_page=True)
    rev2 = latest_revision(ws, image_id, READER)
    assert rev2.revision == 2 and len(rev2.shapes) == 4
    polys, boxes = _by_type(rev2.shapes, "polygon"), _by_type(rev2.shapes, "rectangle")
    assert _close(polys[1]["points"], poly_2x, size) and _close(boxes[1]["points"], box_2x, size)
    # Zooming re-drew the 1x shapes on the cropped canvas; their coordinates did not move.
    assert rev2.shapes[:2] == rev.shapes

    # Reload: a new session shows the saved shapes as canvas objects where they belong.
    page.reload()
    page.wait_for_selector(CANVAS)
    settle(page)
    time.sleep(1.0)
    assert page.get_by_text("your revision 2").count() == 1
    vp, box = _viewport(page, size)
    assert _fill_is_visible(page, box, vp, poly_1x, artifacts, "dicom_reloaded.png")
    assert _fill_is_visible(page, box, vp, box_1x, artifacts, "dicom_reloaded_box.png")

    # Window/level: a preset and the level slider change the picture, never the shapes.
    before = page.locator(CANVAS).first.screenshot()
    page.get_by_label("Window preset").click()
    page.get_by_role("option", name="bone").click()
    settle(page)
    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    settle(page)
    time.sleep(0.8)
    page.screenshot(path=str(artifacts / "dicom_bone_window.png"), full_page=True)
    assert page.get_by_text("All changes saved").count() == 1
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_selector("text=Nothing changed since your revision 2")
    settle(page)
    time.sleep(0.5)  # the canvas may re-mount after that rerun
    assert latest_revision(ws, image_id, READER).revision == 2
    del before

    # Edit a vertex (edit toggle, select, select again for vertices, drag one).
    vp, box = _viewport(page, size)
    page.mouse.move(*_screen(vp, box, 900, 900))
    page.get_by_role("button", name="Edit").click()
    delete = page.get_by_role("button", name="Delete selected")
    centre = tuple(np.mean(np.asarray(poly_1x), axis=0))
    page.mouse.click(*_screen(vp, box, *centre))
    expect(delete).to_be_enabled()  # the polygon is selected
    time.sleep(0.3)
    page.mouse.click(*_screen(vp, box, *centre))  # again: its vertices become handles
    time.sleep(0.3)
    moved_to = (380.0, 520.0)
    _drag(page, vp, box, poly_1x[0], moved_to)
    time.sleep(0.6)
    settle(page)
    # Delete the 1x box: select it, then the toolbar's "Delete selected".
    page.mouse.click(*_screen(vp, box, 1225.0, 900.0))
    time.sleep(0.3)
    page.mouse.click(*_screen(vp, box, 1225.0, 900.0))
    expect(delete).to_be_enabled()
    delete.click()
    time.sleep(0.3)
    page.screenshot(path=str(artifacts / "dicom_edited.png"), full_page=True)
    _save(page, settle, 3)
    rev3 = latest_revision(ws, image_id, READER)
    assert rev3.revision == 3 and len(rev3.shapes) == 3
    edited = _by_type(rev3.shapes, "polygon")[0]["points"]
    assert _close(edited, [moved_to, *poly_1x[1:]], size)
    assert _close(_by_type(rev3.shapes, "rectangle")[0]["points"], box_2x, size)
    # Append-only: every earlier revision is still there, unchanged.
    assert latest_revision(ws, image_id, READER).revision == 3


def test_jpeg_draw_at_1x_and_2x_and_reload(
    app_server, page, settle, artifacts, workspace, import_real_images, cxr_lungs_dir
):
    jpeg = next(p for p in sorted(cxr_lungs_dir.glob("*.jpg")) if _is_1024(p))
    ws = workspace
    (image_id,) = import_real_images(ws, also=[jpeg]).imported
    import cv2

    h, w = cv2.imread(str(jpeg), cv2.IMREAD_GRAYSCALE).shape
    size = (w, h)
    url = app_server(ws.root)
    _goto(page, settle, url, image_id)

    vp, box = _viewport(page, size)
    poly = [(0.2 * w, 0.25 * h), (0.45 * w, 0.22 * h), (0.47 * w, 0.7 * h), (0.22 * w, 0.72 * h)]
    _click_polygon(page, vp, box, poly)
    _tool(page, settle, "Box")
    vp, box = _viewport(page, size)
    rect = [(0.6 * w, 0.3 * h), (0.8 * w, 0.6 * h)]
    _drag(page, vp, box, *rect)
    _save(page, settle, 1)

    page.get_by_text("2x", exact=True).click()
    settle(page)
    _tool(page, settle, "Polygon")
    vp, box = _viewport(page, size, zoom=2.0)
    poly_2x = [(0.4 * w, 0.4 * h), (0.55 * w, 0.38 * h), (0.6 * w, 0.6 * h)]
    _click_polygon(page, vp, box, poly_2x)
    time.sleep(0.6)  # the canvas sends its drawing 200 ms after the last mouse-up
    settle(page)
    expect(page.get_by_text("● Unsaved changes")).to_be_visible()
    # Closing the tab now would lose the drawing: the browser asks, and the reader stays.
    assert _leave_prompts(page) == ["beforeunload"]
    assert not page.is_closed()
    _save(page, settle, 2)
    page.screenshot(path=str(artifacts / "jpeg_2x_saved.png"), full_page=True)

    rev = latest_revision(ws, image_id, READER)
    assert rev.revision == 2 and (rev.image_width, rev.image_height) == size
    polys = _by_type(rev.shapes, "polygon")
    assert _close(polys[0]["points"], poly, size) and _close(polys[1]["points"], poly_2x, size)
    assert _close(_by_type(rev.shapes, "rectangle")[0]["points"], rect, size)

    page.reload()
    page.wait_for_selector(CANVAS)
    settle(page)
    time.sleep(1.0)
    vp, box = _viewport(page, size)
    assert _fill_is_visible(page, box, vp, poly, artifacts, "jpeg_reloaded.png")

    # A clear from the shape list remounts the canvas; the page's undo brings the shapes back.
    settle(page)
    page.get_by_text("Shapes (3)").click()
    clear = page.get_by_role("button", name="Clear all shapes")
    expect(clear).to_be_visible()
    time.sleep(0.5)  # the expander's opening animation
    clear.click()
    settle(page)
    expect(page.get_by_text("Shapes (0)")).to_be_visible(timeout=15_000)
    page.get_by_role("button", name="↶ Undo").click()
    settle(page)
    expect(page.get_by_text("Shapes (3)")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("All changes saved")).to_be_visible()
    time.sleep(1.0)
    vp, box = _viewport(page, size)
    assert _fill_is_visible(page, box, vp, poly, artifacts, "jpeg_undone_clear.png")

    # Everything saved: the tab closes without a prompt (after a click, which is what lets a
    # page prompt at all).
    page.get_by_text("1x", exact=True).click()
    settle(page)
    expect(page.get_by_text("All changes saved")).to_be_visible()
    assert _leave_prompts(page) == []
    assert page.is_closed()


def _is_1024(path: Path) -> bool:
    import cv2

    return max(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape) == 1024
