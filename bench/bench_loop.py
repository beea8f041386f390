"""Time from "Start training" to predictions visible on the review page, on the real
cxr-lungs set (295 X-rays with lung polygons), through a real worker process; then the review
page's load time (Streamlit AppTest, cold and warm).

    python bench/bench_loop.py --sizes 128,256 --epochs 1
    python bench/bench_loop.py --sizes 128 --epochs 2 --max-images 60 --device cpu

Prints JSON lines: {"bench": "loop_import"}, one {"bench": "loop"} per size (seconds from the
submit to the first review image rendered, split into queue+training and prediction), and
{"bench": "review_page_load"}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import jobs  # noqa: E402
from core.ingest.importer import import_sources  # noqa: E402
from core.ingest.sources import collect_sources  # noqa: E402
from core.review.view import load_review  # noqa: E402
from core.review.worklist import order_rows, review_rows  # noqa: E402
from core.tasks.submit import TrainRequest, submit_training  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs"


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def seconds_between(a, b) -> float | None:
    return round((b - a).total_seconds(), 2) if a and b else None


def run_loop(ws: Workspace, size: int, args: argparse.Namespace) -> None:
    request = TrainRequest(
        label="lung",
        arch=args.arch,
        encoder=args.encoder,
        size=size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        activate="always",
        created_by="bench",
    )
    t0 = time.perf_counter()
    train_id = submit_training(ws, request)  # what the Start training button calls
    train_job = jobs.wait_for(ws, train_id, timeout=args.timeout, poll=0.2)
    if train_job.state != "succeeded":
        raise SystemExit(f"training job {train_job.state}: {train_job.error}")
    t_trained = time.perf_counter()
    predict_job = jobs.wait_for(ws, train_job.result["prediction_job"], args.timeout, 0.2)
    if predict_job.state != "succeeded":
        raise SystemExit(f"prediction job {predict_job.state}: {predict_job.error}")
    version = train_job.result["model_version"]
    # What the review page does on opening: score the worklist, draw the first image.
    first = order_rows(review_rows(ws, version), "lowest_dice")[0]
    load_review(ws, first.image_id, version).render()
    t_visible = time.perf_counter()
    emit(
        {
            "bench": "loop",
            "size": size,
            "epochs": args.epochs,
            "arch": f"{args.arch}/{args.encoder}",
            "images": ws_images(ws),
            "device": device_of(ws, version),
            "start_to_review_s": round(t_visible - t0, 1),
            "submit_to_trained_s": round(t_trained - t0, 1),
            "training_job_run_s": seconds_between(train_job.started_at, train_job.finished_at),
            "prediction_job_run_s": seconds_between(
                predict_job.started_at, predict_job.finished_at
            ),
            "val_dice": train_job.result.get("val_dice"),
        }
    )


def ws_images(ws: Workspace) -> int:
    from sqlalchemy import func, select

    from db.models import Image

    with ws.sessions() as s:
        return s.scalar(select(func.count(Image.id)))


def device_of(ws: Workspace, version: int) -> str:
    from core.versions import get_version

    return get_version(ws, version).device


def review_page_load(root: Path) -> None:
    """Review page through Streamlit's AppTest: first open (scores every image) and a rerun."""
    from streamlit.testing.v1 import AppTest

    os.environ["PNEUMOLAB_HOME"] = str(root)
    os.environ["PNEUMOLAB_AUTOSTART_WORKER"] = "0"
    sys.path.insert(0, str(REPO / "app"))
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=600)
    at.switch_page("app_pages/review.py")
    t0 = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    at.run()
    warm = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"review page failed: {at.exception[0].value}")
    emit({"bench": "review_page_load", "cold_s": round(cold, 2), "warm_s": round(warm, 2)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="128,256", help="image sizes, comma-separated")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--arch", default="unet")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--max-images", type=int, default=0, help="first N images only (0: all)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--workspace", help="workspace folder (default: a temporary one)")
    args = p.parse_args()

    root = Path(args.workspace or tempfile.mkdtemp(prefix="pneumolab-bench-loop-")) / "ws"
    ws = Workspace.open(root)
    t0 = time.perf_counter()
    sources = collect_sources([DATA])
    if args.max_images:
        sources = sources[: args.max_images]
    report = import_sources(ws, sources)
    emit(
        {
            "bench": "loop_import",
            "images": len(report.imported) + len(report.duplicates),
            "annotations": report.annotations,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    worker = jobs.start_worker_process(ws)
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            run_loop(ws, size, args)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    ws.dispose()
    review_page_load(root)


if __name__ == "__main__":
    main()
