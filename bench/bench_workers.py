"""Jobs per minute with one worker process and with two, on tiny models: the same batch of
jobs (tiny trainings, 1 epoch at 32 px, never activated, each queueing its prediction job;
and predictions of one version over the workspace) queued at once, timed from the submit to
the last job finished, with the workers already started (their start-up is not counted).

    python bench/bench_workers.py                      # SQLite + the SQLite wake-up queue
    PNEUMOLAB_DATABASE_URL=postgresql+psycopg://... PNEUMOLAB_REDIS_URL=redis://... \\
        python bench/bench_workers.py --jobs 8         # department mode
    nice -n 10 python bench/bench_workers.py --workers 1,2 --images 8

Every worker runs one torch thread (OMP_NUM_THREADS=1), so two workers can use two cores.
Prints JSON lines: {"bench": "workers"} per worker count, then {"bench": "workers_speedup"}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import jobs  # noqa: E402
from core.ingest.importer import import_sources  # noqa: E402
from core.ingest.sources import collect_sources  # noqa: E402
from core.tasks.submit import TrainRequest, submit_prediction, submit_training  # noqa: E402
from core.tasks.train import train  # noqa: E402
from core.vocab import FINISHED_JOB_STATES  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs" / "images"
TINY = {"label": "lung", "encoder": "resnet18", "size": 32, "epochs": 1, "batch_size": 4,
        "device": "cpu", "activate": "never", "created_by": "bench"}  # fmt: skip


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def start_workers(ws: Workspace, n: int) -> list[subprocess.Popen]:
    procs = [jobs.start_worker_process(ws, {"OMP_NUM_THREADS": "1"}) for _ in range(n)]
    deadline = time.monotonic() + 120
    while len(jobs.live_workers(ws)) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"the {n} workers did not start; see {ws.root / 'worker.log'}")
        time.sleep(0.2)
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(60)


def run_batch(ws: Workspace, n_workers: int, n_jobs: int, version_id: int) -> dict:
    procs = start_workers(ws, n_workers)
    try:
        start = time.perf_counter()
        queued = []
        for i in range(n_jobs):
            if i % 2 == 0:
                queued.append(submit_training(ws, TrainRequest(**TINY, seed=i)))
            else:
                queued.append(submit_prediction(ws, version_id, "bench", device="cpu"))
        finished: set[int] = set()
        pending = set(queued)
        while pending:
            time.sleep(0.2)
            for job_id in list(pending):
                info = jobs.get_job(ws, job_id)
                if info.state in FINISHED_JOB_STATES:
                    if info.state != "succeeded":
                        raise SystemExit(f"job {job_id} {info.state}: {info.error}")
                    pending.discard(job_id)
                    finished.add(job_id)
                    follow_up = info.result.get("prediction_job")
                    if follow_up:
                        pending.add(follow_up)
        seconds = time.perf_counter() - start
    finally:
        stop_workers(procs)
    return {
        "bench": "workers",
        "workers": n_workers,
        "jobs": len(finished),
        "queued": n_jobs,
        "seconds": round(seconds, 2),
        "jobs_per_min": round(len(finished) / seconds * 60, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    p.add_argument("--jobs", type=int, default=6, help="jobs queued per batch (default 6)")
    p.add_argument("--images", type=int, default=8, help="labelled X-rays (default 8)")
    p.add_argument("--workspace", help="workspace folder (default: a temporary one)")
    args = p.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"the cxr-lungs data set is missing: {DATA}")
    root = Path(args.workspace or tempfile.mkdtemp(prefix="bench-workers-"))
    os.environ["PNEUMOLAB_AUTOSTART_WORKER"] = "0"
    ws = Workspace.open(root)
    try:
        import torch

        torch.set_num_threads(1)
        import_sources(ws, collect_sources(sorted(DATA.glob("*.jpg"))[: args.images]))
        version = train(ws, TrainRequest(**{**TINY, "activate": "always"}))
        rows = []
        for n in (int(x) for x in args.workers.split(",")):
            row = run_batch(ws, n, args.jobs, version.id)
            row |= {
                "database": ws.engine.dialect.name,
                "wake_up": "redis" if os.environ.get("PNEUMOLAB_REDIS_URL") else "sqlite",
                "images": args.images,
                "cpu_cores": os.cpu_count(),
                "load_1min": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            emit(row)
        if len(rows) >= 2:
            emit({
                "bench": "workers_speedup",
                "from": rows[0]["workers"],
                "to": rows[-1]["workers"],
                "speedup": round(rows[-1]["jobs_per_min"] / rows[0]["jobs_per_min"], 2),
            })  # fmt: skip
    finally:
        ws.dispose()


if __name__ == "__main__":
    main()
