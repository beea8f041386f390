"""Annotator benchmark, in Debian's Chromium against `streamlit run app/main.py`.

    nice -n 5 python bench/bench_annotate.py [--repeats 5]

Workspace: the real 2k DICOM (1841 x 1955) among real 1024-px JPEGs. Prints JSON lines:
  {"bench": "annotate_open_page", "bootstrap_s", "first_paint_s"}: page.goto(/annotate) in a
      running server until the annotator is mounted (the app's own start) and painted.
  {"bench": "annotate_open", "cache": "cold"|"warm", "first_paint_s", "in_page_ms"}: inside a
      running session, N from the image before the 2k DICOM until the DICOM is painted. cold:
      N pressed at once, the server sees the DICOM for the first time; warm: after a look at
      the previous image (prefetched). in_page_ms: the annotator's own open -> paint.
  {"bench": "annotate_next", "image": ..., "s"}: N pressed -> the next image painted
      (prefetched in worklist order while the reader looked at the current one).
  {"bench": "annotate_no_server_calls", "action": ..., "frames_sent"}: websocket frames the
      page sent while switching tools, zooming, panning and dragging the window.
  {"bench": "annotate_fps", "action": "window_drag"|"pan"|"zoom", "fps"}: frames painted per
      second while the mouse drives it without pause, on the 2k DICOM.
  {"bench": "annotate_save", "server_ms", "key_to_saved_ms"}: handle_event("save") of 10
      polygons on the server (median), and S pressed -> "Saved revision" shown (median).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "app"))
sys.path.insert(0, str(REPO / "tests"))

from core.ingest.importer import import_paths  # noqa: E402
from core.labels.catalog import WorklistFilter, worklist_ids  # noqa: E402
from core.workspace import Workspace  # noqa: E402

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip
ROOT = "[data-testid=annotator]"


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = _port()
    env = {**os.environ, "PNEUMOLAB_AUTOSTART_WORKER": "0"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"),
           "--server.headless", "true", "--server.port", str(port),
           "--server.fileWatcherType", "none", "--", "--workspace", str(root)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("streamlit did not start")


def probe(page) -> dict:
    return json.loads(page.locator(ROOT).get_attribute("data-probe") or "{}")


def screen(page, x: float, y: float) -> tuple[float, float]:
    p = probe(page)
    v, s = p["view"], p["stage"]
    return s["x"] + x * v["scale"] + v["ox"], s["y"] + y * v["scale"] + v["oy"]


def paints(page) -> int:
    return int(page.locator(ROOT).get_attribute("data-paints") or 0)


def open_page(context, url: str, image_id: int) -> tuple[object, float, float]:
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(f"{url}/annotate?image={image_id}")
    page.wait_for_selector(ROOT, state="attached", timeout=60_000)
    t1 = time.perf_counter()
    page.wait_for_selector(f"{ROOT}[data-painted='{image_id}']", timeout=60_000)
    return page, t1 - t0, time.perf_counter() - t0


FPS_JS = """async ([action, x, y]) => {
  const host = [...document.querySelectorAll("*")].find(
    (e) => e.shadowRoot && e.shadowRoot.querySelector("[data-testid=annotator-canvas]"));
  const root = host.shadowRoot.querySelector("[data-testid=annotator]");
  const canvas = host.shadowRoot.querySelector("[data-testid=annotator-canvas]");
  const button = action === "window_drag" ? 2 : 1;
  const ev = (type, i, extra = {}) => canvas.dispatchEvent(new PointerEvent(type, {
    bubbles: true, clientX: x + 150 * Math.sin(i / 9), clientY: y + 80 * Math.cos(i / 7),
    button, buttons: 1 << button, pointerId: 1, ...extra }));
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  if (action !== "zoom") ev("pointerdown", 0);
  await frame();
  const start = Number(root.dataset.paints);
  const t0 = performance.now();
  let i = 0;
  while (performance.now() - t0 < 1500) {
    i++;
    if (action === "zoom") {
      canvas.dispatchEvent(new WheelEvent("wheel", { bubbles: true, cancelable: true,
        clientX: x, clientY: y, deltaY: i % 40 < 20 ? -30 : 30 }));
    } else {
      ev("pointermove", i);
    }
    await frame();
  }
  if (action !== "zoom") ev("pointerup", i);
  return (Number(root.dataset.paints) - start) / ((performance.now() - t0) / 1000);
}"""


def fps(page, action: str) -> float:
    """Frames painted per second while one input event per animation frame drives `action`
    (events dispatched in the page, so the rate is the annotator's, not the test driver's)."""
    x, y = screen(page, 920, 980)
    return page.evaluate(FPS_JS, [action, x, y])


def ten_polygons() -> list[dict]:
    import math

    return [
        {"label": "pneumonia", "shape_type": "polygon",
         "points": [[300 + 100 * i + 40 * math.cos(a / 8), 400 + 40 * math.sin(a / 8)]
                    for a in range(50)]}
        for i in range(10)
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import logins
    from components.annotate_state import handle_event
    from playwright.sync_api import sync_playwright

    jpegs = sorted((DATA / "cxr-lungs" / "images").glob("*.jpg"))[:4]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        ws = Workspace.open(root)
        import_paths(ws, jpegs[:2])
        (dicom,) = import_paths(ws, [DATA / "dicom" / "RG1_UNCI.dcm"]).imported
        import_paths(ws, jpegs[2:])
        order = worklist_ids(ws, WorklistFilter())
        proc, url = start_server(root)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                            args=CHROMIUM_FLAGS, headless=True)  # fmt: skip
                context = browser.new_context(viewport={"width": 1600, "height": 1000})
                cookie = logins.session_cookie(ws)
                context.add_cookies([{"name": "pneumolab_session", "value": cookie, "url": url}])
                # The app is running and has served a tab (not the DICOM, not its neighbour).
                warmup, _, _ = open_page(context, url, order[-1])
                warmup.close()
                # Inside a running session: from the image before the DICOM, N at once
                # (cold: the server is seeing the DICOM for the first time), then back and,
                # after a look at the image, N again (warm: prefetched in worklist order).
                before = order[order.index(dicom) - 1]
                page, boot, paint = open_page(context, url, before)
                emit(bench="annotate_open_page", image="jpeg", bootstrap_s=round(boot, 3),
                     first_paint_s=round(paint, 3))  # fmt: skip
                canvas = page.locator("[data-testid=annotator-canvas]")
                for cache in ("cold", "warm"):
                    canvas.focus()
                    t0 = time.perf_counter()
                    page.keyboard.press("n")
                    page.wait_for_selector(f"{ROOT}[data-painted='{dicom}']", timeout=60_000)
                    elapsed = time.perf_counter() - t0
                    in_page = int(page.locator(ROOT).get_attribute("data-open-ms"))
                    emit(bench="annotate_open", image="dicom_2k", cache=cache,
                         first_paint_s=round(elapsed, 3), in_page_ms=in_page)  # fmt: skip
                    page.wait_for_timeout(2500)
                    page.keyboard.press("Shift+N")
                    page.wait_for_selector(f"{ROOT}[data-painted='{before}']")
                    page.wait_for_timeout(2500)
                # Next image, prefetched while the reader looks at this one.
                for _ in range(2):
                    page.wait_for_timeout(2500)
                    current = probe(page)["image"]
                    i = order.index(current)
                    if i + 1 >= len(order):
                        break
                    target = order[i + 1]
                    canvas.focus()
                    t0 = time.perf_counter()
                    page.keyboard.press("n")
                    page.wait_for_selector(f"{ROOT}[data-painted='{target}']")
                    in_page = int(page.locator(ROOT).get_attribute("data-open-ms"))
                    emit(bench="annotate_next", image="dicom_2k" if target == dicom else "jpeg",
                         s=round(time.perf_counter() - t0, 3), in_page_ms=in_page)  # fmt: skip
                page.close()
                # No server calls, and frame rates, on the DICOM.
                page, _, _ = open_page(context, url, dicom)
                page.wait_for_timeout(2500)  # neighbours prepared, the polls are over
                frames: list[object] = []
                page.on("websocket", lambda w: w.on("framesent", lambda f: frames.append(f)))
                page.reload()
                page.wait_for_selector(f"{ROOT}[data-painted='{dicom}']")
                page.wait_for_timeout(2500)
                canvas = page.locator("[data-testid=annotator-canvas]")
                for action in ("tool_switch", "zoom", "pan", "window_drag"):
                    frames.clear()
                    if action == "tool_switch":
                        canvas.focus()
                        for k in "blovp" * 4:
                            page.keyboard.press(k)
                        rate = None
                    else:
                        rate = fps(page, action)
                    page.wait_for_timeout(300)
                    emit(bench="annotate_no_server_calls", action=action,
                         frames_sent=len(frames))  # fmt: skip
                    if rate is not None:
                        emit(bench="annotate_fps", action=action, image="dicom_2k",
                             fps=round(rate, 1))  # fmt: skip
                # Save: key press -> "saved" shown.
                timings = []
                canvas.focus()
                page.keyboard.press("0")  # fit again after the zoom runs
                page.wait_for_timeout(100)
                for r in range(args.repeats):
                    canvas.focus()
                    page.keyboard.press("o")
                    x, y = screen(page, 500 + 20 * r, 500)
                    page.mouse.click(x, y)
                    t0 = time.perf_counter()
                    page.keyboard.press("s")
                    page.wait_for_function(
                        "n => { const el = document.querySelector('[data-testid=annotator]');"
                        " return true; }",
                        arg=r,
                    )
                    msg = page.locator("[data-testid=annotator-message]")
                    while f"Saved revision {r + 1} " not in msg.inner_text():
                        if time.perf_counter() - t0 > 30:
                            raise RuntimeError(f"not saved: {msg.inner_text()!r}")
                        time.sleep(0.005)
                    timings.append(time.perf_counter() - t0)
                server = []
                shapes = ten_polygons()
                for r in range(args.repeats):
                    event = {
                        "kind": "save",
                        "seq": r + 1,
                        "image_id": order[-1],
                        "shapes": shapes,
                        "finding": None,
                        "base_revision": r or None,
                        "changed": True,
                    }
                    t0 = time.perf_counter()
                    handled = handle_event(ws, logins.ADMIN, event, order)
                    server.append(time.perf_counter() - t0)
                    assert handled["ok"], handled
                emit(bench="annotate_save", shapes=10, vertices=50,
                     server_ms=round(1000 * statistics.median(server), 1),
                     key_to_saved_ms=round(1000 * statistics.median(timings), 1))  # fmt: skip
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
            ws.dispose()
    emit(bench="annotate_load", uptime=os.getloadavg())


if __name__ == "__main__":
    main()
