"""Job records: what the UI shows of long work (state, progress, log tail, metrics, queue
position). One row per job in our database; execution is the queue's and the worker's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from core.accounts import require
from core.accounts.audit import add_audit
from core.vocab import FINISHED_JOB_STATES
from core.workspace import Workspace
from db.models import Job, utcnow

LOG_TAIL_LINES = 200


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    state: str
    progress: float
    settings: dict
    log_tail: str
    metrics: dict
    result: dict
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue_position: int | None  # 1 = next to run; None unless queued


def job_info(job: Job, position: int | None = None) -> JobInfo:
    return JobInfo(
        id=job.id,
        kind=job.kind,
        state=job.state,
        progress=job.progress,
        settings=dict(job.settings),
        log_tail=job.log_tail,
        metrics=dict(job.metrics),
        result=dict(job.result),
        error=job.error,
        created_by=job.created_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        queue_position=position,
    )


def get_job(ws: Workspace, job_id: int) -> JobInfo:
    with ws.sessions() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise KeyError(f"job {job_id} does not exist")
        return job_info(job, _position(s, job))


def _position(s, job: Job) -> int | None:
    """1 = runs next (when the running job, if any, finishes); None unless queued.

    Jobs run in submission order (one worker thread per worker process, see run_worker)."""
    if job.state != "queued":
        return None
    ahead = s.scalar(select(func.count(Job.id)).where(Job.state == "queued", Job.id < job.id))
    return int(ahead or 0) + 1


def list_jobs(ws: Workspace, limit: int = 50, kind: str | None = None) -> list[JobInfo]:
    with ws.sessions() as s:
        stmt = select(Job).order_by(Job.id.desc()).limit(limit)
        if kind:
            stmt = stmt.where(Job.kind == kind)
        return [job_info(j, _position(s, j)) for j in s.scalars(stmt)]


def latest_job(ws: Workspace, kind: str | None = None) -> JobInfo | None:
    """The newest job (of `kind`): what a reopened page shows."""
    jobs = list_jobs(ws, limit=1, kind=kind)
    return jobs[0] if jobs else None


def cancel_job(ws: Workspace, job_id: int, *, actor: str | None = None) -> JobInfo:
    """Queued jobs are cancelled at once; a running job stops at its next step. `actor` is
    the account cancelling (PermissionDenied unless it may train); an audit row "cancel"."""
    require(ws, actor, "train")
    with ws.sessions.begin() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise KeyError(f"job {job_id} does not exist")
        if job.state == "queued":
            job.state = "cancelled"
            job.finished_at = utcnow()
        elif job.state == "running":
            job.cancel_requested = True
        add_audit(s, actor, "cancel", f"job {job_id}", {"kind": job.kind})
        return job_info(job)


def wait_for(ws: Workspace, job_id: int, timeout: float = 600, poll: float = 0.5) -> JobInfo:
    """Block until the job finishes (tests, CLI)."""
    deadline = time.monotonic() + timeout
    while True:
        info = get_job(ws, job_id)
        if info.state in FINISHED_JOB_STATES or time.monotonic() > deadline:
            return info
        time.sleep(poll)
