"""Running one job in this process: the worker calls run_job for each job it claimed; tests
and the CLI call it on a queued job directly.

How a run ends: succeeded, failed (with the error), cancelled (the user asked), or queued
again when the worker was asked to stop (SIGTERM, or the app that started it went away)
before the job finished: it then starts from the beginning on the next free worker; a
training's half-made run folder is removed by the training itself, so nothing of the stopped
run remains. Only kinds that register nothing before they finish are requeued (a training
registers its version at its very end; predictions and feature maps are overwritten in
place); a comparison registers a version per architecture as it goes, and an update
registers its version before predicting, so a stopped one is marked cancelled (running it
again would register versions twice). A worker that lost
its lease (declared dead by another worker) leaves the record as that worker set it.
"""

from __future__ import annotations

import os
import socket
import threading

from sqlalchemy import select, update

from core import tasks
from core.errors import Cancelled
from core.jobs.records import JobInfo, get_job
from core.jobs.reporter import JobReporter
from core.workspace import Workspace
from db.models import Job, utcnow

# Job kinds (core.tasks.TASKS) that a stopped worker puts back in the queue; the others are
# marked cancelled when the worker stops under them.
REQUEUE_ON_STOP = frozenset({"train", "predict", "embed"})


def _start(ws: Workspace, job_id: int, worker_id: str | None) -> bool:
    """Mark the job started: a queued job claimed here (no worker), or the job this worker
    claimed. False when it is not (any more) ours to run."""
    values = {"started_at": utcnow()}
    stmt = update(Job).where(Job.id == job_id)
    if worker_id is None:
        stmt = stmt.where(Job.state == "queued")
        values |= {"state": "running", "worker_pid": os.getpid(),
                   "worker_host": socket.gethostname()}  # fmt: skip
    else:
        stmt = stmt.where(
            Job.state == "running", Job.worker_id == worker_id, Job.started_at.is_(None)
        )
    with ws.sessions.begin() as s:
        return s.execute(stmt.values(**values)).rowcount == 1


def run_job(
    ws: Workspace,
    job_id: int,
    worker_id: str | None = None,
    stop: threading.Event | None = None,
) -> JobInfo:
    """Run one job in this process. Without worker_id the job must be queued (it is claimed
    here); with it, the job is the one that worker claimed (core.jobs.lease.claim_next), and
    `stop` set by the worker requeues it at the handler's next step."""
    if not _start(ws, job_id, worker_id):
        return get_job(ws, job_id)  # cancelled while waiting, taken, or (KeyError) unknown
    info = get_job(ws, job_id)
    reporter = JobReporter(ws, job_id, worker_id=worker_id, stop=stop)
    state, error, result = "succeeded", None, {}
    try:
        result = tasks.handler(info.kind)(ws, job_id, dict(info.settings), reporter) or {}
    except Cancelled:
        state = "cancelled"
    except Exception as e:  # a failed job must record why, whatever broke
        state, error = "failed", f"{type(e).__name__}: {e}"
    if reporter.lease_lost:
        return get_job(ws, job_id)  # the worker that declared us dead has recorded why
    with ws.sessions() as s:
        user_cancelled = s.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    stopped = state == "cancelled" and stop is not None and stop.is_set() and not user_cancelled
    if stopped and info.kind in REQUEUE_ON_STOP:
        state = "queued"
    if stopped and state == "cancelled":
        reporter.on_log(
            f"the worker on {socket.gethostname()} (pid {os.getpid()}) was asked to stop; a "
            f"{info.kind} job is not started again by itself (what it registered stays)"
        )
    if state == "queued":
        reporter.on_log(
            f"requeued: the worker on {socket.gethostname()} (pid {os.getpid()}) was asked to "
            "stop; the job starts again from the beginning on the next free worker"
        )
    else:
        reporter.on_log(f"job {state}" + (f": {error}" if error else ""))
    values: dict = {"state": state, "error": error, "result": result}
    if state == "queued":
        values |= {"worker_id": None, "worker_pid": None, "worker_host": None,
                   "started_at": None, "progress": 0.0}  # fmt: skip
    else:
        values["finished_at"] = utcnow()
        if state == "succeeded":
            values["progress"] = 1.0
    stmt = update(Job).where(Job.id == job_id, Job.state == "running")
    if worker_id is not None:
        stmt = stmt.where(Job.worker_id == worker_id)  # still under this worker's lease
    with ws.sessions.begin() as s:
        s.execute(stmt.values(**values))
    return get_job(ws, job_id)
