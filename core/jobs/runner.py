"""Running one job in this process: the worker's huey task calls run_job."""

from __future__ import annotations

import os
import socket

from core import tasks
from core.errors import Cancelled
from core.jobs.records import JobInfo, job_info
from core.jobs.reporter import JobReporter
from core.workspace import Workspace
from db.models import Job, utcnow


def run_job(ws: Workspace, job_id: int) -> JobInfo:
    """Run one queued job in this process (the worker calls this)."""
    with ws.sessions.begin() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise ValueError(f"job {job_id} does not exist")
        if job.state != "queued":
            return job_info(job)  # cancelled while waiting, or already taken
        job.state = "running"
        job.started_at = utcnow()
        job.worker_pid = os.getpid()
        job.worker_host = socket.gethostname()
        kind, settings = job.kind, dict(job.settings)
    reporter = JobReporter(ws, job_id)
    state, error, result = "succeeded", None, {}
    try:
        result = tasks.handler(kind)(ws, job_id, settings, reporter) or {}
    except Cancelled:
        state = "cancelled"
    except Exception as e:  # a failed job must record why, whatever broke
        state, error = "failed", f"{type(e).__name__}: {e}"
    reporter.on_log(f"job {state}" + (f": {error}" if error else ""))
    with ws.sessions.begin() as s:
        job = s.get(Job, job_id)
        job.state = state
        job.error = error
        job.result = result
        job.finished_at = utcnow()
        if state == "succeeded":
            job.progress = 1.0
        return job_info(job)
