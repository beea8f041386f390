"""Annotate page benchmark, in a real browser against `streamlit run app/main.py`.

    python bench/bench_annotate.py                 # DICOM + 1024 JPEG, 10-shape save, 50 images
    python bench/bench_annotate.py --images 20 --repeats 5

Prints JSON lines:
  {"bench": "annotate_open", "image": "dicom"|"jpeg_1024", "cache": "cold"|"warm", "s": ...}
      page load until the canvas is mounted and the script run is done (cold: first open in a
      fresh server process; warm: the same image opened again in a new page).
  {"bench": "annotate_save_10_shapes", "service_s": ..., "page_s": ...}
      save_revision of 10 polygons (50 vertices each) as a service call (median), and the
      Save button of the page (AppTest script run, median) with the same draft.
  {"bench": "annotate_rss_after_images", "images": N, "rss_mb_start": ..., "rss_mb": ...}
      resident memory of the Streamlit server after stepping through N images ("Skip").
"""

from __future__ import annotations

import argparse
import json
import math
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

from core.ingest.importer import import_paths  # noqa: E402
from core.labels.revisions import save_revision  # noqa: E402
from core.workspace import Workspace  # noqa: E402

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip


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
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("streamlit did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def settle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText"
        ".includes('Running')",
        timeout=120_000,
    )


def open_time(browser, url: str, image_id: int) -> float:
    page = browser.new_page(viewport={"width": 1600, "height": 1300})
    t0 = time.perf_counter()
    # Not the "load" event: it also waits for web fonts the offline machine cannot fetch.
    page.goto(f"{url}/annotate?image={image_id}", wait_until="domcontentloaded")
    page.wait_for_selector("canvas.upper-canvas", timeout=120_000)
    settle(page)
    took = time.perf_counter() - t0
    page.close()
    return took


def ten_polygons() -> list[dict]:
    shapes = []
    for k in range(10):
        cx, cy, r = 150 + 70 * k, 400 + 20 * k, 60
        pts = [[cx + r * math.cos(a / 50 * 2 * math.pi), cy + r * math.sin(a / 50 * 2 * math.pi)]
               for a in range(50)]  # fmt: skip
        shapes.append({"label": "pneumonia", "shape_type": "polygon", "points": pts})
    return shapes


def bench_save(ws: Workspace, image_id: int, repeats: int, root: Path) -> None:
    shapes = ten_polygons()
    service = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        save_revision(ws, image_id, "reader", shapes)
        service.append(time.perf_counter() - t0)

    from streamlit.testing.v1 import AppTest

    os.environ["PNEUMOLAB_HOME"] = str(root)
    os.environ["PNEUMOLAB_AUTOSTART_WORKER"] = "0"
    sys.path.insert(0, str(REPO / "app"))
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/annotate.py").run()
    at.session_state["annotate_image_id"] = image_id
    at.run()
    page = []
    for i in range(repeats):
        draft = at.session_state["annotate_drafts"][f"reader\x1f{image_id}"]
        draft["shapes"] = [
            {**s, "points": [[x + i + 1, y] for x, y in s["points"]]} for s in shapes
        ]
        t0 = time.perf_counter()
        at.button(key="annotate_save").click().run()
        page.append(time.perf_counter() - t0)
    emit(bench="annotate_save_10_shapes", service_s=round(statistics.median(service), 4),
         page_s=round(statistics.median(page), 4), repeats=repeats)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="images to step through (RSS)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    jpegs = sorted((DATA / "cxr-lungs" / "images").glob("*.jpg"))
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
        root = Path(tmp) / "ws"
        ws = Workspace.open(root)
        (dicom_id,) = import_paths(ws, [DATA / "dicom" / "RG1_UNCI.dcm"]).imported
        import cv2

        j1024 = next(p for p in jpegs if max(cv2.imread(str(p), 0).shape) == 1024)
        (jpeg_id,) = import_paths(ws, [j1024]).imported
        others = [p for p in jpegs if p != j1024][: max(0, args.images - 2)]
        import_paths(ws, others)

        proc, url = start_server(root)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True
                )
                # Baseline: the same browser opening the plain worklist page (Streamlit's own
                # frontend start-up dominates both on a busy machine).
                bp = browser.new_page()
                t0 = time.perf_counter()
                bp.goto(url, wait_until="domcontentloaded")
                bp.wait_for_selector("text=Worklist", timeout=120_000)
                settle(bp)
                emit(bench="worklist_open_baseline", s=round(time.perf_counter() - t0, 3))
                bp.close()
                for name, image_id in (("dicom", dicom_id), ("jpeg_1024", jpeg_id)):
                    cold = open_time(browser, url, image_id)
                    warm = [open_time(browser, url, image_id) for _ in range(args.repeats)]
                    emit(bench="annotate_open", image=name, cache="cold", s=round(cold, 3))
                    emit(bench="annotate_open", image=name, cache="warm",
                         s=round(statistics.median(warm), 3))  # fmt: skip

                page = browser.new_page(viewport={"width": 1600, "height": 1300})
                page.goto(f"{url}/annotate?image={dicom_id}")
                page.wait_for_selector("canvas.upper-canvas", timeout=120_000)
                settle(page)
                start = rss_mb(proc.pid)
                t0 = time.perf_counter()
                for _ in range(args.images):
                    page.get_by_role("button", name="Skip →").click()
                    settle(page)
                    page.wait_for_selector("canvas.upper-canvas")
                emit(bench="annotate_rss_after_images", images=args.images,
                     rss_mb_start=round(start, 1), rss_mb=round(rss_mb(proc.pid), 1),
                     s_per_image=round((time.perf_counter() - t0) / args.images, 3))  # fmt: skip
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
        bench_save(ws, dicom_id, args.repeats, root)
        ws.dispose()


if __name__ == "__main__":
    main()
