"""Worker leases: which worker runs which job, and what happens when a worker dies.

Every worker process registers a row in `workers` (host, pid, the kinds it takes) and writes
its heartbeat every heartbeat_interval() seconds from a thread of its own, also while it
trains. A job is claimed with one conditional UPDATE (`... WHERE id = :id AND state =
'queued'`); the database lets exactly one claimer change the row (SQLite: one writer at a
time; PostgreSQL: the second UPDATE waits for the first and then finds the row no longer
queued), so a job runs on one worker only. The claim names the worker (jobs.worker_id).

A worker is dead when its heartbeat is older than the worker timeout (PNEUMOLAB_WORKER_TIMEOUT_S,
default 60 s), or at once when it ran on this host and its process is gone. Every live worker
looks for dead ones at each heartbeat; the one whose UPDATE marks the dead worker "dead" (one
wins) cleans up after it: first it removes the dead worker's unregistered run folders under
models/ (half-made checkpoints), then it marks the job failed with the reason, or puts it back
in the queue when its handler had not started (jobs.started_at still empty). A model version
is registered only at the end of a training, so a dead job's version never exists, and the
active model is never touched. Times come from the database server (PostgreSQL) so that the
clocks of several hosts never disagree about a heartbeat; SQLite is one host's file.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, or_, select, update

from core import tasks
from core.workspace import Workspace
from db.models import Job, ModelVersion, Worker

log = logging.getLogger(__name__)

TIMEOUT_ENV = "PNEUMOLAB_WORKER_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0


def worker_timeout() -> float:
    """Seconds without a heartbeat after which a worker counts as dead (the setting)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds above 0, not {raw!r}")
    return value


def heartbeat_interval(timeout: float | None = None) -> float:
    """How often a worker writes its heartbeat: four times per timeout, at most every 10 s."""
    timeout = worker_timeout() if timeout is None else timeout
    return min(max(timeout / 4, 0.2), 10.0)


def check_kinds(kinds: Sequence[str] | str | None) -> list[str]:
    """The job kinds a worker takes ("train,compare", a list, or None: every kind);
    ValueError naming the valid kinds for an unknown one."""
    if kinds is None:
        return sorted(tasks.TASKS)
    if isinstance(kinds, str):
        kinds = kinds.split(",")
    names = list(dict.fromkeys(k.strip() for k in kinds if k.strip()))
    unknown = [k for k in names if k not in tasks.TASKS]
    if unknown or not names:
        raise ValueError(
            (f"unknown job kind {unknown[0]!r}" if unknown else "no job kinds given")
            + f"; valid kinds: {', '.join(sorted(tasks.TASKS))} (comma-separated)"
        )
    return names


def _aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def db_now(ws: Workspace) -> datetime:
    """Now, by the database server's clock where there is one (all hosts agree on it)."""
    if ws.engine.dialect.name == "postgresql":
        with ws.sessions() as s:
            return _aware(s.scalar(select(func.now())))
    return datetime.now(UTC)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# --- one worker's own lease ---------------------------------------------------------------------


def register_worker(ws: Workspace, kinds: Sequence[str]) -> str:
    """A new live worker row for this process. Returns its id."""
    now = db_now(ws)
    worker_id = uuid.uuid4().hex
    with ws.sessions.begin() as s:
        s.add(
            Worker(
                id=worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                kinds=list(kinds),
                state="alive",
                started_at=now,
                heartbeat_at=now,
            )
        )
    return worker_id


def heartbeat(ws: Workspace, worker_id: str) -> bool:
    """Renew the lease. False when another worker has declared this one dead (its job is then
    no longer this worker's to finish)."""
    now = db_now(ws)
    with ws.sessions.begin() as s:
        done = s.execute(
            update(Worker)
            .where(Worker.id == worker_id, Worker.state == "alive")
            .values(heartbeat_at=now)
        )
        return done.rowcount == 1


def retire_worker(ws: Workspace, worker_id: str, note: str) -> None:
    """Mark this worker stopped (a clean exit), with why."""
    now = db_now(ws)
    with ws.sessions.begin() as s:
        s.execute(
            update(Worker)
            .where(Worker.id == worker_id, Worker.state == "alive")
            .values(state="stopped", stopped_at=now, current_job_id=None, note=note)
        )


def claim_next(ws: Workspace, worker_id: str, kinds: Sequence[str]) -> int | None:
    """Claim the oldest queued job of `kinds` for this worker; None when there is none. Of
    several workers claiming at once each job goes to exactly one."""
    from core.jobs.queue import queued_job_ids

    host, pid = socket.gethostname(), os.getpid()
    for job_id in queued_job_ids(ws, kinds):
        with ws.sessions.begin() as s:
            won = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "queued")
                .values(
                    state="running",
                    worker_id=worker_id,
                    worker_pid=pid,
                    worker_host=host,
                    started_at=None,
                )
            )
            if won.rowcount != 1:
                continue  # another worker took it, or it was cancelled: try the next
            s.execute(update(Worker).where(Worker.id == worker_id).values(current_job_id=job_id))
            return job_id
    return None


def job_done(ws: Workspace, worker_id: str) -> None:
    with ws.sessions.begin() as s:
        s.execute(update(Worker).where(Worker.id == worker_id).values(current_job_id=None))


# --- the others' leases ----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    kinds: list[str]
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    job: dict | None  # {"id", "kind", "state", "progress"} of its current job

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "kinds": self.kinds,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "heartbeat_age_s": round(self.heartbeat_age_s, 1),
            "job": self.job,
        }


def live_workers(ws: Workspace) -> list[WorkerInfo]:
    """The workers whose heartbeat is within the timeout, oldest first, with their job."""
    now = db_now(ws)
    cutoff = now - timedelta(seconds=worker_timeout())
    with ws.sessions() as s:
        rows = list(
            s.scalars(
                select(Worker)
                .where(Worker.state == "alive", Worker.heartbeat_at >= cutoff)
                .order_by(Worker.started_at)
            )
        )
        jobs = {
            j.id: j
            for j in s.scalars(
                select(Job).where(Job.id.in_([w.current_job_id for w in rows if w.current_job_id]))
            )
        }
    found = []
    for w in rows:
        job = jobs.get(w.current_job_id)
        found.append(
            WorkerInfo(
                id=w.id,
                host=w.host,
                pid=w.pid,
                kinds=list(w.kinds),
                started_at=_aware(w.started_at),
                heartbeat_at=_aware(w.heartbeat_at),
                heartbeat_age_s=max((now - _aware(w.heartbeat_at)).total_seconds(), 0.0),
                job=None
                if job is None
                else {"id": job.id, "kind": job.kind, "state": job.state, "progress": job.progress},
            )
        )
    return found


def reap_dead_workers(ws: Workspace, reaper_id: str | None = None) -> list[int]:
    """Find workers that stopped answering (heartbeat older than the timeout, or a process of
    this host that is gone), mark each dead (one reaper wins each) and clean up after it:
    its run folders go first, then its job is failed with the reason, or requeued when its
    handler had not started. Returns the ids of the jobs failed or requeued."""
    from core.jobs.queue import wake_workers

    timeout = worker_timeout()
    now = db_now(ws)
    cutoff = now - timedelta(seconds=timeout)
    host = socket.gethostname()
    with ws.sessions() as s:
        candidates = list(
            s.execute(
                select(Worker.id, Worker.host, Worker.pid, Worker.heartbeat_at).where(
                    Worker.state == "alive",
                    or_(Worker.heartbeat_at < cutoff, Worker.host == host),
                )
            )
        )
    handled: list[int] = []
    for worker_id, w_host, pid, beat in candidates:
        if worker_id == reaper_id:
            continue
        silent = _aware(beat) < cutoff
        if not silent and not (w_host == host and not _pid_alive(pid)):
            continue
        age = (now - _aware(beat)).total_seconds()
        why = (
            f"the worker process on {w_host} (pid {pid}) stopped answering: no heartbeat for "
            f"{age:.0f} s (limit {timeout:g} s, {TIMEOUT_ENV})"
            if silent
            else f"the worker process on {w_host} (pid {pid}) stopped (killed or crashed)"
        )
        stmt = update(Worker).where(Worker.id == worker_id, Worker.state == "alive")
        if silent:
            stmt = stmt.where(Worker.heartbeat_at < cutoff)  # it may have answered meanwhile
        with ws.sessions.begin() as s:
            if s.execute(stmt.values(state="dead", stopped_at=now, note=why)).rowcount != 1:
                continue  # another worker reaps it, or it came back
        removed = remove_runs_of(ws, pid)
        log.warning("%s; declared dead, its half-made run folders removed: %s", why,
                    ", ".join(r.name for r in removed) or "none")  # fmt: skip
        requeued = []
        with ws.sessions.begin() as s:
            for job in s.scalars(
                select(Job).where(Job.worker_id == worker_id, Job.state == "running")
            ):
                handled.append(job.id)
                if job.started_at is None:  # claimed, but nothing had run yet: run it again
                    job.state, job.worker_id, job.worker_pid, job.worker_host = (
                        "queued", None, None, None,
                    )  # fmt: skip
                    job.log_tail = (job.log_tail + f"\nrequeued: {why} before it started").strip()
                    requeued.append((job.kind, job.id))
                    continue
                job.state = "failed"
                job.error = (
                    f"{why} while running this job; no model version was registered and the "
                    "active model is unchanged. Start the job again."
                )
                job.finished_at = now
        for kind, job_id in requeued:
            wake_workers(ws, kind, job_id)
    return handled


def remove_runs_of(ws: Workspace, pid: int) -> list[Path]:
    """Delete the run folders (`models/run-<pid>-*`) a dead worker process left half-made:
    never one a model version points to, and never while a live worker or a process on this
    host has that pid (a training of its own could be writing into it)."""
    with ws.sessions() as s:
        kept = {Path(p).parts[1] for p in s.scalars(select(ModelVersion.checkpoint_path)) if p}
        pid_in_use = s.scalar(
            select(func.count(Worker.id)).where(Worker.state == "alive", Worker.pid == pid)
        )
    if pid_in_use or _pid_alive(pid):
        log.warning("run folders of pid %s kept: a live process has that pid", pid)
        return []
    removed = []
    for run_dir in ws.models_dir.glob(f"run-{pid}-*"):
        if run_dir.is_dir() and run_dir.name not in kept:
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir)
    return removed
