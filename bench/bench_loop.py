"""Time from "Start training" to predictions visible on the review page, on the real
cxr-lungs set (295 X-rays with lung polygons), through a real worker process; then the review
page's load time (Streamlit AppTest, cold and warm).

    python bench/bench_loop.py --sizes 128,256 --epochs 1
    python bench/bench_loop.py --sizes 128 --epochs 2 --max-images 60 --device cpu
    nice -n 19 python bench/bench_loop.py --recipe quick --update 3   # the CPU default recipe

With --recipe the recipe sets network, size and schedule (--sizes, --epochs are ignored).
--update N then corrects N training images of the new version (a reader shifts its lung
outlines by a few pixels) and clicks "Update model": {"bench": "update_loop"} gives the seconds
from the click to the corrected images' and the next worklist images' new predictions stored,
and to every image's.

Prints JSON lines: {"bench": "loop_import"}, one {"bench": "loop"} per size (seconds from the
submit to the first review image rendered, split into queue+training and prediction), and
{"bench": "review_page_load"} (signed in, fresh processes: bench_review_load.py's measure).
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
from core.versions import get_version  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs"


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def seconds_between(a, b) -> float | None:
    return round((b - a).total_seconds(), 2) if a and b else None


def run_loop(ws: Workspace, size: int | None, args: argparse.Namespace) -> int:
    request = TrainRequest(
        label="lung",
        arch=None if args.recipe else args.arch,
        encoder=None if args.recipe else args.encoder,
        size=size,
        recipe=args.recipe,
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
            "recipe": args.recipe,
            "size": get_version(ws, version).image_size,
            "epochs": get_version(ws, version).settings["train_config"]["epochs"],
            "arch": f"{get_version(ws, version).arch}/{get_version(ws, version).encoder}",
            "images": ws_images(ws),
            "device": device_of(ws, version),
            "start_to_review_s": round(t_visible - t0, 1),
            "submit_to_trained_s": round(t_trained - t0, 1),
            "training_job_run_s": seconds_between(train_job.started_at, train_job.finished_at),
            "prediction_job_run_s": seconds_between(
                predict_job.started_at, predict_job.finished_at
            ),
            "val_dice": train_job.result.get("val_dice"),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
    )
    return version


def _shifted(shapes: list[dict], dx: float) -> list[dict]:
    return [{**d, "points": [[x + dx, y] for x, y in d["points"]]} for d in shapes]


def run_update(ws: Workspace, version: int, n: int, args: argparse.Namespace) -> None:
    """A reader corrects n training images; time "Update model" to their new predictions."""
    from sqlalchemy import func, select

    from core.labels.readers import add_reader, list_readers
    from core.labels.revisions import latest_by_reader, save_revision
    from core.tasks.update import submit_update
    from db.models import ModelVersion, Prediction

    if "corrector" not in [r.name for r in list_readers(ws)]:
        add_reader(ws, "corrector")
    parent = get_version(ws, version)
    corrected = [image_id for image_id, _ in parent.data_snapshot["train"][:n]]
    for image_id in corrected:
        newest = max(latest_by_reader(ws, image_id).values(), key=lambda r: r.created_at)
        save_revision(ws, image_id, "corrector", _shifted(newest.shapes, 4.0))
    with ws.sessions() as s:
        newest_before = s.scalar(select(func.max(ModelVersion.id))) or 0
    t0 = time.perf_counter()
    job_id = submit_update(ws, "corrector")  # what the Update model button calls
    first_s, child = None, None
    while first_s is None:
        with ws.sessions() as s:
            child = s.scalar(
                select(ModelVersion.id).where(
                    ModelVersion.parent_version_id == version, ModelVersion.id > newest_before
                )
            )
            if child is not None:
                done = set(
                    s.scalars(
                        select(Prediction.image_id).where(
                            Prediction.model_version_id == child,
                            Prediction.image_id.in_(corrected),
                        )
                    )
                )
                if done == set(corrected):
                    first_s = time.perf_counter() - t0
        if jobs.get_job(ws, job_id).state in ("failed", "cancelled"):
            raise SystemExit(f"update job failed: {jobs.get_job(ws, job_id).error}")
        time.sleep(0.1)
    job = jobs.wait_for(ws, job_id, timeout=args.timeout, poll=0.2)
    if job.state != "succeeded":
        raise SystemExit(f"update job {job.state}: {job.error}")
    emit(
        {
            "bench": "update_loop",
            "corrected": n,
            "predicted_first": len(job.result["predicted_first"]),
            "click_to_corrected_predictions_s": round(first_s, 1),
            "click_to_all_predictions_s": round(time.perf_counter() - t0, 1),
            "update_job_run_s": seconds_between(job.started_at, job.finished_at),
            "child_version": child,
            "child_val_dice": get_version(ws, child).val_dice,
            # The parent on the update's own validation images, before the fine-tune: the
            # bar the update is activated against (the parent's stored Dice is on others).
            "parent_dice_same_images": job.result.get("parent_val_dice"),
            "activated": job.result.get("activated"),
            "parent_val_dice": parent.val_dice,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
    )


def ws_images(ws: Workspace) -> int:
    from sqlalchemy import func, select

    from db.models import Image

    with ws.sessions() as s:
        return s.scalar(select(func.count(Image.id)))


def device_of(ws: Workspace, version: int) -> str:
    return get_version(ws, version).device


def review_page_load(root: Path) -> None:
    """Review page through Streamlit's AppTest, signed in, in fresh processes: the measurement
    of bench_review_load.py (cold, warm, after a label change)."""
    sys.path.insert(0, str(REPO / "bench"))
    from bench_review_load import measure

    cold = measure(root, change=False)
    emit(
        {
            "bench": "review_page_load",
            "cold_s": round(cold["first_s"], 2),
            "warm_s": round(cold["second_s"], 2),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="128,256", help="image sizes, comma-separated")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--arch", default="unet")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--max-images", type=int, default=0, help="first N images only (0: all)")
    p.add_argument("--recipe", help="quick | best: train with this recipe (ignores --sizes)")
    p.add_argument("--update", type=int, default=0, help="then correct N images and update")
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
        sizes = [None] if args.recipe else [int(s) for s in args.sizes.split(",")]
        for size in sizes:
            version = run_loop(ws, size, args)
        if args.update:
            run_update(ws, version, args.update, args)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    ws.dispose()
    review_page_load(root)


if __name__ == "__main__":
    main()
