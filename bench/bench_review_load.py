"""How long the Review page takes to open, on the real cxr-lungs set (295 X-rays) with a
model version's predictions stored, through Streamlit's AppTest (the page's own script run).

    nice -n 19 python bench/bench_review_load.py
    nice -n 19 python bench/bench_review_load.py --workspace /tmp/rl   # reuse a prepared one

Preparation (not timed): import the folder through the product's import, train a tiny model
(U-Net/ResNet-18, 64 px, 1 epoch) and run its prediction job, both through the job runner.
Each measurement runs in a fresh Python process, so nothing from an earlier open is in memory
(Streamlit's once-per-server start-up is paid before the clock starts, and printed):
- "cold_without_disk_cache": the same with the worklist's on-disk scores deleted (every
  image scored on opening, as before core.review.rows_cache);
- "cold": the first open of the page in a new app process (Streamlit caches empty; the
  worklist scores on disk, as the prediction job leaves them);
- "after_label_change": the first open after a reader saved a revision (the worklist scores
  are stale and must be recomputed);
- "warm": a second session opening the page in the same process.
Prints one JSON line {"bench": "review_load", ...} with seconds and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "cxr-lungs"


def prepare(root: Path, n: int) -> None:
    from core import jobs
    from core.ingest.importer import import_sources
    from core.ingest.sources import collect_sources
    from core.tasks.submit import TrainRequest, submit_training
    from core.workspace import Workspace

    ws = Workspace.open(root)
    try:
        sources = collect_sources([DATA])
        import_sources(ws, sources[:n] if n else sources)
        req = TrainRequest(
            label="lung", encoder="resnet18", size=64, epochs=1, device="cpu", activate="always"
        )
        trained = jobs.run_job(ws, submit_training(ws, req))
        assert trained.state == "succeeded", trained.error
        predicted = jobs.run_job(ws, trained.result["prediction_job"])
        assert predicted.state == "succeeded", predicted.error
    finally:
        ws.dispose()


CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {app!r}); sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
imported = time.perf_counter() - t0
from core import accounts
from core.workspace import Workspace
ws = Workspace.open(os.environ["PNEUMOLAB_HOME"])
account = accounts.get_account(ws, "bench-admin")
if account is None or not account.has_password:
    account = accounts.create_account(
        ws, "bench-admin", "admin", password="bench password, not a secret", by=None
    )
ws.dispose()
if {change}:
    from core.labels.revisions import save_revision
    from core.review.rows_cache import cached_review_rows
    from core.versions import active_version
    ws = Workspace.open(os.environ["PNEUMOLAB_HOME"])
    image = cached_review_rows(ws, active_version(ws).id)[0].image_id
    box = {{"label": "lung", "points": [[10, 10], [60, 80]], "shape_type": "rectangle"}}
    save_revision(ws, image, "bench-admin", [box])
    ws.dispose()
def open_page():
    ws = Workspace.open(os.environ["PNEUMOLAB_HOME"])
    token = accounts.start_session(ws, account)  # signed in as the login form signs in
    ws.dispose()
    at = AppTest.from_file({main!r}, default_timeout=600)
    at.session_state["auth_token"] = token
    at.switch_page("app_pages/review.py")
    t = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t
    if at.exception:
        raise SystemExit(f"review page failed: {{at.exception[0].value}}")
    titles = [t.value for t in at.title]
    assert titles == ["Review predictions"], titles
    return dt
# Streamlit's own start-up (component discovery scans every installed package, about a
# second) is paid once per server process, not per page open: a trivial script pays it first.
t = time.perf_counter()
AppTest.from_string("import streamlit as st\nst.write('up')").run()
server_start = time.perf_counter() - t
first = open_page()
second = open_page()
print(json.dumps({{"streamlit_import_s": imported, "server_start_s": server_start,
                  "first_s": first, "second_s": second}}))
"""


def measure(root: Path, change: bool, drop_cache: bool = False) -> dict:
    if drop_cache:  # what a workspace predicted before the on-disk worklist cache existed
        shutil.rmtree(root / "cache" / "review", ignore_errors=True)
    code = CHILD.format(
        app=str(REPO / "app"), repo=str(REPO), main=str(REPO / "app" / "main.py"), change=change
    )
    env = {**os.environ, "PNEUMOLAB_HOME": str(root), "PNEUMOLAB_AUTOSTART_WORKER": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", help="prepared workspace folder (made if missing)")
    p.add_argument("--max-images", type=int, default=0, help="first N images only (0: all)")
    args = p.parse_args()
    root = Path(args.workspace or tempfile.mkdtemp(prefix="pneumolab-bench-review-")) / "ws"
    if not (root / "pneumolab.db").exists() and not root.exists():
        t0 = time.perf_counter()
        prepare(root, args.max_images)
        print(json.dumps({"bench": "review_load_prepare", "s": round(time.perf_counter() - t0)}))
    uncached = measure(root, change=False, drop_cache=True)
    cold = measure(root, change=False)
    changed = measure(root, change=True)
    print(
        json.dumps(
            {
                "bench": "review_load",
                "cold_s": round(cold["first_s"], 2),
                "warm_s": round(cold["second_s"], 2),
                "after_label_change_s": round(changed["first_s"], 2),
                "cold_without_disk_cache_s": round(uncached["first_s"], 2),
                "streamlit_import_s": round(cold["streamlit_import_s"], 2),
                "server_start_s": round(cold["server_start_s"], 2),
                "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
