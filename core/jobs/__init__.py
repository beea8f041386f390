"""Jobs: long work (training, batch prediction) recorded in our database, run by workers.

records (what the UI shows), reporter (what a running handler writes to), queue (the job row
and the huey wake-up channel), lease (claims, heartbeats, dead workers), runner (one job in
this process) and worker (the process: kinds, SIGTERM, the app's own worker, --status).
The kinds of work come from core.tasks' registry only.
"""

from core.jobs.lease import WorkerInfo, live_workers, reap_dead_workers, worker_timeout
from core.jobs.queue import submit_job
from core.jobs.records import JobInfo, cancel_job, get_job, latest_job, list_jobs, wait_for
from core.jobs.reporter import JobReporter
from core.jobs.runner import run_job
from core.jobs.worker import (
    ensure_worker,
    recover_dead_jobs,
    remove_orphan_runs,
    run_worker,
    start_worker_process,
    stop_worker,
    worker_running,
    worker_status,
)

__all__ = [
    "JobInfo",
    "JobReporter",
    "WorkerInfo",
    "cancel_job",
    "ensure_worker",
    "get_job",
    "latest_job",
    "list_jobs",
    "live_workers",
    "reap_dead_workers",
    "recover_dead_jobs",
    "remove_orphan_runs",
    "run_job",
    "run_worker",
    "start_worker_process",
    "stop_worker",
    "submit_job",
    "wait_for",
    "worker_running",
    "worker_status",
    "worker_timeout",
]
