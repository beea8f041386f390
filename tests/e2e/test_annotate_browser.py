"""The annotator in a real browser: every tool and shortcut driven by mouse and keyboard.

One Streamlit server per module (on a workspace holding the real DICOM, 1841 x 1955
MONOCHROME1, and two real JPEGs), one logged-in browser context, pages reused. Points are
chosen in original-image pixels and turned into screen positions from the annotator's own
view (its `data-probe` attribute: scale and offset), so every stored coordinate can be
checked against what was clicked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from core.labels.drafts import load_draft
from core.labels.revisions import latest_revision, revision_history
from core.workspace import Workspace

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
READER = "reader"
ROOT = "[data-testid=annotator]"
CANVAS = "[data-testid=annotator-canvas]"
DICOM_SIZE = (1841, 1955)


# --- one server per module --------------------------------------------------------------------


class Server:
    def __init__(self, root: Path, port: int, log: Path) -> None:
        self.root, self.port, self.log = root, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app" / "main.py"),
            "--server.headless", "true", "--server.port", str(self.port),
            "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
            "--", "--workspace", str(self.root),
        ]  # fmt: skip
        env = {
            **os.environ,
            "PNEUMOLAB_AUTOSTART_WORKER": "0",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        }
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Streamlit exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"Streamlit did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@pytest.fixture(scope="module")
def app(tmp_path_factory, import_real_images, dicom_mono1, free_port):
    root = tmp_path_factory.mktemp("annotate") / "ws"
    ws = Workspace.open(root)
    ids = import_real_images(ws, 2, also=[dicom_mono1], labelme=False).imported
    server = Server(root, free_port(), root.parent / "streamlit.log")
    server.start()
    try:
        yield {"server": server, "ws": ws, "ids": ids}
    finally:
        server.stop()
        ws.dispose()


@pytest.fixture(scope="module")
def context(browser, app):
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    import logins

    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    value = logins.session_cookie(app["ws"], READER, "admin")
    ctx.add_cookies([{"name": "pneumolab_session", "value": value, "url": app["server"].url}])
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def tab(context):
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    if not page.is_closed():
        page.close()


# --- helpers ------------------------------------------------------------------------------------


def probe(page) -> dict:
    return json.loads(page.locator(ROOT).get_attribute("data-probe") or "{}")


def open_image(page, app, image_id: int) -> dict:
    page.goto(f"{app['server'].url}/annotate?image={image_id}")
    page.wait_for_selector(f"{ROOT}[data-painted='{image_id}']")
    page.wait_for_function(
        "() => { const r = document.querySelector('[data-testid=stApp]');"
        " return r && !document.querySelector('[data-testid=stStatusWidget] [data-testid]'); }"
    )
    return wait_probe(page, lambda p: p.get("painted") and p["image"] == image_id)


def wait_probe(page, ok, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        p = probe(page)
        if ok(p):
            return p
        if time.monotonic() > deadline:
            shown = {k: v for k, v in p.items() if k != "shapes"}
            shown["shapes"] = len(p.get("shapes") or [])
            raise AssertionError(f"the annotator never reached the state asked for: {shown}")
        time.sleep(0.05)


def screen(page, x: float, y: float) -> tuple[float, float]:
    p = probe(page)
    v, stage = p["view"], p["stage"]
    return stage["x"] + x * v["scale"] + v["ox"], stage["y"] + y * v["scale"] + v["oy"]


def click(page, x, y, **kw) -> None:
    page.mouse.click(*screen(page, x, y), **kw)


def drag(page, start, end, button="left") -> None:
    page.mouse.move(*screen(page, *start))
    page.mouse.down(button=button)
    page.mouse.move(*screen(page, *end), steps=6)
    page.mouse.up(button=button)


def key(page, name: str) -> None:
    page.locator(CANVAS).focus()
    page.keyboard.press(name)


def synced(page) -> dict:
    """Wait until the autosave reached the server (the annotator says nothing is pending)."""
    page.wait_for_selector(f"{ROOT}[data-pending='false']", timeout=15_000)
    return probe(page)


def near(a, b, tol=0.5) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and bool((np.abs(a - b) <= tol).all())


def status(page) -> str:
    return page.locator("[data-testid=annotator-status]").inner_text()


def message(page) -> str:
    return page.locator("[data-testid=annotator-message]").inner_text()


def save(page, revision: int) -> None:
    key(page, "s")
    deadline = time.monotonic() + 20
    while f"Saved revision {revision} " not in message(page):
        assert time.monotonic() < deadline, f"not saved: {message(page)!r}, {status(page)!r}"
        time.sleep(0.05)


def red_pixels(page) -> int:
    import cv2

    shot = page.locator(CANVAS).screenshot()
    rgb = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(int)
    return int(((rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2])) > 60).sum())


def sent_frames(page):
    """A list that fills with every websocket frame the page sends to the server."""
    frames: list[object] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda f: frames.append(f)))
    return frames


# --- tests ----------------------------------------------------------------------------------------


def test_each_tool_by_its_key_stores_the_clicked_pixels(tab, app):
    ws, dicom = app["ws"], app["ids"][0]
    p = open_image(tab, app, dicom)
    assert p["tool"] == "polygon"
    # 1600 x 1000: the canvas fills the space beside the tool column; drawing, window, label,
    # finding and save are all on screen without scrolling.
    assert p["stage"]["width"] > 800 and p["stage"]["bottom"] <= 1000
    for control in (
        tab.get_by_role("button", name="Polygon"),
        tab.get_by_label("Label"),
        tab.get_by_label("Image-level finding"),
        tab.get_by_role("button", name="4 bone"),
        tab.get_by_role("button", name="Save & next"),
        tab.locator("[data-testid=annotator-status]"),
    ):
        box = control.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 1000, box
    assert tab.evaluate("() => window.scrollY") == 0
    # Polygon: clicks, closed by Enter.
    poly = [(450.5, 600.25), (800.0, 560.5), (850.75, 1000.0), (480.0, 1050.5)]
    for pt in poly:
        click(tab, *pt)
    key(tab, "Enter")
    # Box: B, a drag.
    key(tab, "b")
    drag(tab, (1050.0, 700.0), (1400.5, 1100.25))
    # Polyline: L, clicks, finished by a double-click (not closed).
    key(tab, "l")
    line = [(300.0, 1400.0), (600.0, 1450.0), (900.0, 1380.0)]
    for pt in line[:-1]:
        click(tab, *pt)
    tab.mouse.dblclick(*screen(tab, *line[-1]))
    # Point: O, a click.
    key(tab, "o")
    click(tab, 1200.25, 1500.75)
    p = wait_probe(tab, lambda p: len(p["shapes"]) == 4)
    assert p["tool"] == "point"
    save(tab, 1)
    rev = latest_revision(ws, dicom, READER)
    by_type = {s["shape_type"]: s for s in rev.shapes}
    assert set(by_type) == {"polygon", "rectangle", "linestrip", "point"}
    assert near(by_type["polygon"]["points"], poly)
    assert near(by_type["rectangle"]["points"], [(1050.0, 700.0), (1400.5, 1100.25)])
    assert near(by_type["linestrip"]["points"], line) and by_type["linestrip"]["stroke_width"] == 10
    assert near(by_type["point"]["points"], [(1200.25, 1500.75)])
    assert "All changes saved (revision 1)" in status(tab)
    assert load_draft(ws, dicom, READER) is None  # the save turned the draft into a revision


def test_points_land_within_half_a_pixel_at_every_zoom(tab, app):
    ws, dicom = app["ws"], app["ids"][0]
    open_image(tab, app, dicom)
    key(tab, "o")
    wanted = []
    for zoom in (1, 2, 4, 8, 16):
        p = probe(tab)
        fit = min(p["stage"]["width"] / DICOM_SIZE[0], p["stage"]["height"] / DICOM_SIZE[1])
        target = (900.3 + zoom, 950.6 + zoom)
        tab.mouse.move(*screen(tab, *target))
        factor = fit * zoom / p["view"]["scale"]
        if factor > 1.0001:  # one wheel turn of just the right size (1.25x per 100)
            tab.mouse.wheel(0, -100 * float(np.log(factor) / np.log(1.25)))
            wait_probe(tab, lambda p, z=zoom, f=fit: abs(p["view"]["scale"] / (f * z) - 1) < 1e-6)
        click(tab, *target)
        wanted.append(target)
    p = wait_probe(tab, lambda p: len(p["shapes"]) == 4 + 5)
    got = [s["points"][0] for s in p["shapes"][4:]]
    assert near(got, wanted), (got, wanted)
    key(tab, "Control+z")
    key(tab, "Control+z")
    wait_probe(tab, lambda p: len(p["shapes"]) == 7)
    key(tab, "Control+Shift+z")
    wait_probe(tab, lambda p: len(p["shapes"]) == 8)
    save(tab, 2)
    assert len(latest_revision(ws, dicom, READER).shapes) == 8


def test_wheel_zoom_keeps_the_point_under_the_cursor_and_view_needs_no_server(tab, app):
    dicom = app["ids"][0]
    open_image(tab, app, dicom)
    frames = sent_frames(tab)
    tab.reload()
    tab.wait_for_selector(f"{ROOT}[data-painted='{dicom}']")
    time.sleep(1.0)
    frames.clear()
    sx, sy = (round(c) for c in screen(tab, 700.0, 900.0))  # the wheel's whole pixels
    v, stage = probe(tab)["view"], probe(tab)["stage"]
    under = ((sx - stage["x"] - v["ox"]) / v["scale"], (sy - stage["y"] - v["oy"]) / v["scale"])
    tab.mouse.move(sx, sy)
    for _ in range(6):
        tab.mouse.wheel(0, -100)
    p = wait_probe(tab, lambda p: p["view"]["scale"] > 0.9)
    v = p["view"]
    # The image point under the cursor did not move.
    assert abs((sx - stage["x"] - v["ox"]) / v["scale"] - under[0]) < 1e-6
    assert abs((sy - stage["y"] - v["oy"]) / v["scale"] - under[1]) < 1e-6
    # Middle-drag and Space+drag pan; tools switch; 0 fits again.
    before = probe(tab)["view"]
    tab.mouse.move(sx, sy)
    tab.mouse.down(button="middle")
    tab.mouse.move(sx + 120, sy + 40, steps=4)
    tab.mouse.up(button="middle")
    after = wait_probe(tab, lambda p: p["view"]["ox"] != before["ox"])["view"]
    assert abs(after["ox"] - before["ox"] - 120) < 1 and abs(after["oy"] - before["oy"] - 40) < 1
    tab.keyboard.down(" ")
    tab.mouse.move(sx, sy)
    tab.mouse.down()
    tab.mouse.move(sx - 50, sy, steps=3)
    tab.mouse.up()
    tab.keyboard.up(" ")
    assert (
        abs(
            wait_probe(tab, lambda p: p["view"]["ox"] != after["ox"])["view"]["ox"]
            - after["ox"]
            + 50
        )
        < 1
    )
    for name, tool in (("b", "rectangle"), ("l", "linestrip"), ("o", "point"), ("v", "select")):
        key(tab, name)
        wait_probe(tab, lambda p, tool=tool: p["tool"] == tool)
    key(tab, "p")
    wait_probe(tab, lambda p: p["tool"] == "polygon")
    key(tab, "0")
    fit = wait_probe(tab, lambda p: p["view"]["scale"] < 0.9)["view"]["scale"]
    tab.get_by_role("button", name="1:1").click()
    assert wait_probe(tab, lambda p: abs(p["view"]["scale"] - 1) < 1e-9)
    key(tab, "0")
    wait_probe(tab, lambda p: abs(p["view"]["scale"] - fit) < 1e-9)
    time.sleep(0.5)
    assert frames == [], "a view change or tool switch sent something to the server"


def test_right_drag_changes_the_window_presets_and_invert(tab, app):
    dicom = app["ids"][0]
    open_image(tab, app, dicom)
    frames = sent_frames(tab)
    tab.reload()
    tab.wait_for_selector(f"{ROOT}[data-painted='{dicom}']")
    time.sleep(1.0)
    frames.clear()
    key(tab, "1")
    wait_probe(tab, lambda p: p["painted_window"] == {**p["window"], "invert": False})
    start = probe(tab)["window"]
    before = tab.locator(CANVAS).screenshot()
    drag(tab, (900.0, 900.0), (1100.0, 1000.0), button="right")
    p = wait_probe(tab, lambda p: p["painted_window"]["width"] > start["width"])
    assert p["window"]["center"] > start["center"]  # down = higher level
    after = tab.locator(CANVAS).screenshot()
    assert _grey(before) != _grey(after), "the picture did not change"
    assert "W " in tab.locator("[data-testid=annotator-window]").inner_text()
    key(tab, "2")
    lung = wait_probe(tab, lambda p: p["window"] != start)
    key(tab, "4")
    bone = wait_probe(tab, lambda p: p["painted_window"]["center"] != lung["window"]["center"])
    assert bone["window"]["center"] > lung["window"]["center"]
    plain = _grey(tab.locator(CANVAS).screenshot())
    key(tab, "i")
    wait_probe(tab, lambda p: p["painted_window"]["invert"])
    inverted = _grey(tab.locator(CANVAS).screenshot())
    assert abs(inverted - plain) > 50  # dark became bright (or bright dark)
    key(tab, "i")
    wait_probe(tab, lambda p: not p["painted_window"]["invert"])
    time.sleep(0.3)
    assert frames == [], "window/level sent something to the server"
    # The reader's window is remembered for this image.
    tab.reload()
    tab.wait_for_selector(f"{ROOT}[data-painted='{dicom}']")
    assert wait_probe(tab, lambda p: p["painted_window"] is not None)["window"] == bone["window"]


def _grey(png: bytes) -> float:
    import cv2

    return float(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).mean())


def test_vertex_insert_drag_and_delete_esc_backspace_delete_finding_help(tab, app):
    ws, jpeg = app["ws"], app["ids"][1]
    open_image(tab, app, jpeg)
    p = probe(tab)
    w = 1024
    sq = [(200.0, 200.0), (500.0, 200.0), (500.0, 500.0), (200.0, 500.0)]
    for pt in sq:
        click(tab, *pt)
    click(tab, 201.0, 201.0)  # a click on the first vertex closes it
    assert wait_probe(tab, lambda p: len(p["shapes"]) == 1)["drawing"] is None
    # Esc cancels a shape being drawn; Backspace removes its last vertex.
    click(tab, 600.0, 600.0)
    click(tab, 700.0, 600.0)
    key(tab, "Escape")
    assert len(wait_probe(tab, lambda p: p["drawing"] is None)["shapes"]) == 1
    for pt in [(600.0, 600.0), (700.0, 600.0), (650.0, 700.0), (640.0, 800.0)]:
        click(tab, *pt)
    key(tab, "Backspace")
    p = wait_probe(tab, lambda p: len(p["drawing"]["points"]) == 3)
    assert near(p["drawing"]["points"], [(600.0, 600.0), (700.0, 600.0), (650.0, 700.0)])
    tab.mouse.dblclick(*screen(tab, 650.0, 700.0))
    p = wait_probe(tab, lambda p: len(p["shapes"]) == 2)
    assert len(p["shapes"][1]["points"]) == 3
    # V: select the square, insert a vertex on its right edge and drag it out.
    key(tab, "v")
    click(tab, 350.0, 350.0)
    drag(tab, (500.0, 350.0), (560.0, 350.0))
    p = wait_probe(tab, lambda p: len(p["shapes"][0]["points"]) == 5)
    assert near(p["shapes"][0]["points"][2], (560.0, 350.0), tol=1.0)
    # Drag a vertex.
    drag(tab, (200.0, 200.0), (180.0, 170.0))
    p = wait_probe(tab, lambda p: near(p["shapes"][0]["points"][0], (180.0, 170.0), tol=1.0))
    # Alt+click deletes a vertex.
    tab.keyboard.down("Alt")
    click(tab, 560.0, 350.0)
    tab.keyboard.up("Alt")
    assert len(wait_probe(tab, lambda p: len(p["shapes"][0]["points"]) == 4)["shapes"]) == 2
    # Shift+click selects both; Delete removes them; Ctrl+Z brings them back.
    tab.keyboard.down("Shift")
    click(tab, 650.0, 650.0)
    tab.keyboard.up("Shift")
    wait_probe(tab, lambda p: p["selected"] == [0, 1])
    key(tab, "Delete")
    wait_probe(tab, lambda p: p["shapes"] == [])
    key(tab, "Control+z")
    wait_probe(tab, lambda p: len(p["shapes"]) == 2)
    # F cycles the finding; ? shows the list; typing in a field is not a shortcut.
    key(tab, "f")
    wait_probe(tab, lambda p: p["finding"] == next(iter(_findings())))
    key(tab, "?")
    assert tab.locator("[data-testid=annotator-help]").is_visible()
    assert "Ctrl+Z" in tab.locator("[data-testid=annotator-help]").inner_text()
    key(tab, "?")
    width = tab.get_by_label("Polyline width (image pixels)")
    width.fill("25")
    width.press("b")
    width.press("Delete")
    time.sleep(0.3)
    assert probe(tab)["tool"] == "select" and len(probe(tab)["shapes"]) == 2
    save(tab, 1)
    rev = latest_revision(ws, jpeg, READER)
    assert len(rev.shapes) == 2 and near(rev.shapes[0]["points"][0], (180.0, 170.0), tol=1.0)
    assert w == 1024


def _findings():
    from core.vocab import FINDINGS

    return FINDINGS


def test_skip_then_stay_keeps_the_box_visible_and_saved(tab, app):
    ws, jpeg = app["ws"], app["ids"][2]
    open_image(tab, app, jpeg)
    key(tab, "b")
    base = red_pixels(tab)
    drag(tab, (300.0, 300.0), (600.0, 600.0))
    wait_probe(tab, lambda p: len(p["shapes"]) == 1)
    drawn = red_pixels(tab)
    assert drawn > base + 1000
    tab.get_by_role("button", name="Skip →").click()
    dialog = tab.get_by_role("dialog", name="Unsaved changes")
    assert dialog.is_visible()
    dialog.get_by_role("button", name="Stay").click()
    time.sleep(0.3)
    assert red_pixels(tab) >= drawn - 50, "the box disappeared after Stay"
    p = synced(tab)
    assert p["image"] == jpeg and len(p["shapes"]) == 1
    assert len(load_draft(ws, jpeg, READER)["shapes"]) == 1
    drag(tab, (650.0, 300.0), (900.0, 500.0))
    wait_probe(tab, lambda p: len(p["shapes"]) == 2)
    save(tab, 1)
    assert len(latest_revision(ws, jpeg, READER).shapes) == 2


def test_next_previous_by_keys_and_save_then_next(tab, app):
    from core.labels.catalog import WorklistFilter, worklist_ids

    ids = worklist_ids(app["ws"], WorklistFilter())
    open_image(tab, app, ids[0])
    key(tab, "n")
    p = wait_probe(tab, lambda p: p["image"] == ids[1] and p["painted"])
    assert p["image"] == ids[1]
    key(tab, "Shift+N")
    wait_probe(tab, lambda p: p["image"] == ids[0] and p["painted"])
    tab.wait_for_function(f"() => location.search.includes('image={ids[0]}')")


def test_draft_survives_reload_tab_close_and_restart_and_the_leave_prompt(context, app):
    ws, jpeg, server = app["ws"], app["ids"][1], app["server"]
    page = context.new_page()
    open_image(page, app, jpeg)
    key(page, "o")
    click(page, 100.0, 100.0)
    # While the autosave is on its way, closing the tab asks first.
    shown: list[str] = []

    def stay(dialog) -> None:
        shown.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 5
    while not shown and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert shown == ["beforeunload"]
    synced(page)
    n = len(probe(page)["shapes"])
    # Reload: the draft comes back, with a notice.
    page.reload()
    page.wait_for_selector(f"{ROOT}[data-painted='{jpeg}']")
    assert len(wait_probe(page, lambda p: p["shapes"] is not None)["shapes"]) == n
    assert "Restored your draft" in page.locator(".pl-notice").inner_text()
    # Everything autosaved: the tab closes without a prompt; a new tab gets the draft back.
    shown.clear()
    with page.expect_event("close", timeout=10_000):
        page.close(run_before_unload=True)
    assert shown == [] and page.is_closed()
    page = context.new_page()
    open_image(page, app, jpeg)
    assert len(probe(page)["shapes"]) == n
    page.close()
    # An app restart: the draft is on the server, not in the Streamlit session.
    server.stop()
    server.start()
    page = context.new_page()
    open_image(page, app, jpeg)
    assert len(probe(page)["shapes"]) == n
    assert len(load_draft(ws, jpeg, READER)["shapes"]) == n
    page.close()


def test_two_tabs_of_one_account_keep_both_revisions_and_let_the_reader_choose(context, app):
    ws, dicom = app["ws"], app["ids"][0]
    first, second = context.new_page(), context.new_page()
    open_image(first, app, dicom)
    open_image(second, app, dicom)
    start = latest_revision(ws, dicom, READER).revision
    key(first, "b")
    drag(first, (100.0, 100.0), (300.0, 300.0))
    save(first, start + 1)
    key(second, "o")
    click(second, 1500.0, 1500.0)
    save(second, start + 2)
    warning = second.get_by_text("Saved with a conflict.")
    warning.wait_for()
    assert [r.revision for r in revision_history(ws, dicom, READER)][:2] == [start + 2, start + 1]
    assert latest_revision(ws, dicom, READER).shapes[-1]["shape_type"] == "point"  # mine
    second.get_by_role("button", name=f"Use revision {start + 1} instead").click()
    p = wait_probe(second, lambda p: p["shapes"][-1]["shape_type"] == "rectangle")
    latest = latest_revision(ws, dicom, READER)
    assert latest.revision == start + 3 and latest.shapes[-1]["shape_type"] == "rectangle"
    assert len(p["shapes"]) == len(latest.shapes)
    assert "revision" in second.get_by_text(f"Revision {start + 1} restored").inner_text()
    first.close()
    second.close()
