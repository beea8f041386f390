"""The worker process: claims jobs of its kinds under a lease, runs them one at a time in its
main thread, and cleans up after workers that died (core/jobs/lease.py).

Stopping. SIGTERM or SIGINT asks the worker to stop: the running job's handler stops at its
next step (a training between two batches, a prediction between two chunks), the job goes
back into the queue (state "queued": the next free worker runs it again from the beginning;
a training removes its half-made run folder itself; a comparison is marked cancelled, see
core/jobs/runner.py), the worker marks itself stopped and exits 0. The job runs in the main thread, and the process exits only once it has returned:
huey's consumer used to run it in a daemon thread and return from the main thread at once on
SIGTERM, so the interpreter exited while a torch operation ran in that thread; libtorch's
thread pool was then destroyed under it (std::terminate: "terminate called without an active
exception", SIGABRT).

The worker the app starts (ensure_worker) is tied to the app's server process: it is started
with --parent-pid and stops, as on SIGTERM, when that process is gone. A worker started by
hand (`pneumolab worker`) runs until it is stopped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from core import tasks
from core.jobs import lease
from core.jobs.lease import _pid_alive, check_kinds, live_workers, reap_dead_workers
from core.jobs.queue import WAKE_POLL_S, wake_channel, wake_workers
from core.jobs.runner import run_job
from core.workspace import Workspace
from db.models import Job, ModelVersion, utcnow

log = logging.getLogger(__name__)


def recover_dead_jobs(ws: Workspace) -> list[int]:
    """Fail (or requeue) the jobs of workers that stopped answering (lease.reap_dead_workers),
    and the running jobs without a lease (recorded by an older version) whose process on
    this host is gone; remove what they left half-made. Returns the job ids handled."""
    handled = reap_dead_workers(ws)
    host = socket.gethostname()
    with ws.sessions() as s:
        running = list(
            s.execute(
                select(Job.id, Job.worker_host, Job.worker_pid).where(
                    Job.state == "running", Job.worker_id.is_(None)
                )
            )
        )
    dead = {i for i, h, pid in running if h == host and not _pid_alive(pid)}
    if not dead:
        return handled
    remove_orphan_runs(ws, dead_jobs=dead)
    with ws.sessions.begin() as s:
        for job in s.scalars(select(Job).where(Job.id.in_(dead), Job.state == "running")):
            job.state = "failed"
            job.error = (
                f"the worker process on {host} (pid {job.worker_pid}) stopped while running "
                "this job (killed or crashed); no model version was registered and the active "
                "model is unchanged. Start the job again."
            )
            job.finished_at = utcnow()
            handled.append(job.id)
    return handled


def _run_owner_alive(run_dir: Path) -> bool:
    """True when the run folder's name holds the pid of a process alive on this host."""
    owner = run_dir.name.split("-")[1] if run_dir.name.count("-") >= 2 else ""
    return owner.isdigit() and int(owner) != 0 and _pid_alive(int(owner))


def remove_orphan_runs(ws: Workspace, dead_jobs: set[int] = frozenset()) -> list[Path]:
    """Delete run folders under models/ that no model version points to.

    Only while no job runs anywhere (jobs in `dead_jobs`, whose worker is gone, do not count):
    a live training writes into its own, not yet registered, run folder. A killed run's
    folder may hold a best.pt of an early epoch or a temporary checkpoint file; neither may
    be mistaken for a model later. A folder named after a process that is alive on this host
    (`run-<pid>-<id>`) is kept too: a training (a job or the CLI) may have started between
    the look at the jobs and the look at the folders.
    """
    with ws.sessions() as s:
        running = set(s.scalars(select(Job.id).where(Job.state == "running")))
        if running - set(dead_jobs):
            return []
        kept = {Path(p).parts[1] for p in s.scalars(select(ModelVersion.checkpoint_path)) if p}
    removed = []
    for run_dir in ws.models_dir.glob("run-*"):
        if run_dir.is_dir() and run_dir.name not in kept and not _run_owner_alive(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir)
    return removed


# --- the worker --------------------------------------------------------------------------------


def _lock_path(ws: Workspace) -> Path:
    return ws.root / "worker.lock"


def worker_running(ws: Workspace) -> bool:
    """True when some process holds this workspace folder's worker lock (the first worker
    started on this folder; the app starts one only when none does)."""
    path = _lock_path(ws)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


class _Lease(threading.Thread):
    """The heartbeat thread: renews this worker's lease, reaps dead workers, and sets `stop`
    when the parent process (the app that started this worker) is gone."""

    def __init__(self, ws: Workspace, worker_id: str, stop: threading.Event, parent: int | None):
        super().__init__(name="worker-lease", daemon=True)
        self.ws, self.worker_id, self.stop, self.parent = ws, worker_id, stop, parent
        self.lost = threading.Event()  # another worker declared this one dead
        self.done = threading.Event()
        self.reason = ""

    def run(self) -> None:
        interval = lease.heartbeat_interval()
        while not self.done.wait(interval):
            try:
                if not lease.heartbeat(self.ws, self.worker_id):
                    self.lost.set()
                reap_dead_workers(self.ws, self.worker_id)
            except Exception as e:  # noqa: BLE001 - a database hiccup must not end the worker
                log.warning("worker heartbeat failed: %s", e)
            if self.parent and os.getppid() != self.parent and not self.stop.is_set():
                self.reason = f"the app process that started it (pid {self.parent}) stopped"
                self.stop.set()


def run_worker(
    ws: Workspace, kinds: Sequence[str] | str | None = None, parent_pid: int | None = None
) -> dict:
    """Claim and run jobs of `kinds` (default every kind) until SIGTERM / SIGINT, or until the
    process `parent_pid` is gone (blocks). Returns what the CLI prints.

    One job at a time: one training per GPU; start one worker process per GPU
    (CUDA_VISIBLE_DEVICES) to use several.
    """
    kinds = check_kinds(kinds)
    lock = open(_lock_path(ws), "a+")  # noqa: SIM115 - held for the life of the worker
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
    except BlockingIOError:
        pass  # another worker holds it; we are an extra one (e.g. second GPU)
    stop = threading.Event()
    reason: list[str] = []

    def on_signal(signum, _frame) -> None:
        if not stop.is_set():
            reason.append(f"{signal.Signals(signum).name} received")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    recover_dead_jobs(ws)
    _exit_when_workspace_removed(ws.root)
    worker_id = lease.register_worker(ws, kinds)
    beat = _Lease(ws, worker_id, stop, parent_pid)
    beat.start()
    _say(f"worker {worker_id[:8]} (pid {os.getpid()}) takes {', '.join(kinds)}")
    channel = wake_channel(ws)
    ran = 0
    try:
        while not stop.is_set():
            if beat.lost.is_set():  # declared dead (e.g. a long stall): start a new lease
                beat.done.set()
                beat.join()
                worker_id = lease.register_worker(ws, kinds)
                beat = _Lease(ws, worker_id, stop, parent_pid)
                beat.start()
            try:
                job_id = lease.claim_next(ws, worker_id, kinds)
            except DBAPIError as e:  # the database is away for a moment: try again soon
                log.warning("claiming a job failed (%s); trying again", e)
                stop.wait(WAKE_POLL_S)
                continue
            if job_id is None:
                try:
                    channel.wait(kinds, WAKE_POLL_S, stop.is_set)
                except Exception as e:  # noqa: BLE001 - no wake-ups: poll the database
                    log.warning("waiting for wake-ups failed (%s); polling", e)
                    stop.wait(WAKE_POLL_S)
                continue
            _say(f"worker {worker_id[:8]} (pid {os.getpid()}): running job {job_id}")
            info = run_job(ws, job_id, worker_id=worker_id, stop=stop)
            lease.job_done(ws, worker_id)
            _say(f"worker {worker_id[:8]} (pid {os.getpid()}): job {job_id} {info.state}")
            ran += 1
            if info.state == "queued":
                wake_workers(ws, info.kind, info.id)  # another worker may take it now
    finally:
        beat.done.set()
        beat.join()
        why = (reason or [beat.reason or "stopped"])[0]
        lease.retire_worker(ws, worker_id, why)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()
    return {"worker": "stopped", "id": worker_id, "kinds": kinds, "jobs_run": ran, "reason": why}


def _say(line: str) -> None:
    """The worker's log (stderr; the app's worker writes it to worker.log): one line per job
    started and ended, no patient data."""
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    sys.stderr.flush()


def worker_status(ws: Workspace) -> dict:
    """What `pneumolab worker --status` prints: the live workers and their jobs."""
    workers = [w.as_dict() for w in live_workers(ws)]
    covered = sorted({k for w in workers for k in w["kinds"]})
    return {
        "workers": workers,
        "count": len(workers),
        "timeout_s": lease.worker_timeout(),
        "kinds_without_worker": [k for k in sorted(tasks.TASKS) if k not in covered],
    }


def _exit_when_workspace_removed(root: Path, interval: float = 2.0) -> None:
    """A worker whose workspace folder was deleted (temporary workspaces) has nothing left to
    do; without this it would poll a vanished queue forever."""

    def watch() -> None:
        while root.exists():
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="workspace-watchdog", daemon=True).start()


def ensure_worker(ws: Workspace) -> bool:
    """Start a background worker for `ws`, tied to this process (it stops when this process
    stops), unless this workspace folder has one, or live workers (any host) already take
    every kind of job. Returns True if started.

    PNEUMOLAB_AUTOSTART_WORKER=0 turns this off (workers are run by hand or elsewhere).
    """
    recover_dead_jobs(ws)
    if os.environ.get("PNEUMOLAB_AUTOSTART_WORKER") == "0" or worker_running(ws):
        return False
    if not worker_status(ws)["kinds_without_worker"]:
        return False
    start_worker_process(ws, parent_pid=os.getpid())
    # Wait briefly for the lock so a quick second call does not start a twin.
    for _ in range(50):
        if worker_running(ws):
            break
        time.sleep(0.1)
    return True


def stop_worker(ws: Workspace, timeout: float = 30.0) -> bool:
    """Stop the worker that holds this workspace folder's lock (SIGTERM: it requeues the job it
    was running and exits). True if one was stopped."""
    if not worker_running(ws):
        return False
    try:
        pid = int(_lock_path(ws).read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while worker_running(ws) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not worker_running(ws)


def start_worker_process(
    ws: Workspace,
    extra_env: dict[str, str] | None = None,
    kinds: Sequence[str] | None = None,
    parent_pid: int | None = None,
):
    """Spawn `pneumolab worker` for `ws` in its own session (Streamlit's reruns and signals do
    not reach it); output goes to worker.log in the workspace. With parent_pid it stops when
    that process is gone. Returns the Popen."""
    project_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (project_root, os.environ.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "core.cli", "--workspace", str(ws.root), "worker"]
    if kinds:
        command += ["--kinds", ",".join(check_kinds(kinds))]
    if parent_pid:
        command += ["--parent-pid", str(parent_pid)]
    log_file = open(ws.root / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # The project root on the path: `-m core.cli` must work whatever the app's cwd.
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(extra_env or {})},
        )
    finally:
        log_file.close()
