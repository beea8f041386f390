"""The worker process: runs the queue's jobs, and the clean-up of jobs whose worker died.

The Streamlit app starts a worker itself when none holds the workspace's worker lock
(ensure_worker); `pneumolab worker` starts one by hand.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select

from core.jobs.queue import queue_for
from core.workspace import Workspace
from db.models import Job, ModelVersion, utcnow


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


def recover_dead_jobs(ws: Workspace) -> list[int]:
    """Mark running jobs whose worker process is gone as failed, with the reason, and remove
    what a killed training run left half-made (its run folder: never a model version).

    The folders go first and the jobs are marked failed after: whoever sees the job failed
    also sees its half-made run gone.
    """
    host = socket.gethostname()
    with ws.sessions() as s:
        running = list(
            s.execute(select(Job.id, Job.worker_host, Job.worker_pid).where(Job.state == "running"))
        )
    dead = {i for i, h, pid in running if h == host and not _pid_alive(pid)}
    if not dead:
        return []
    remove_orphan_runs(ws, dead_jobs=dead)
    failed = []
    with ws.sessions.begin() as s:
        for job in s.scalars(select(Job).where(Job.id.in_(dead), Job.state == "running")):
            job.state = "failed"
            job.error = (
                f"the worker process (pid {job.worker_pid}) stopped while running this job "
                "(killed or crashed); no model version was registered and the active model "
                "is unchanged. Start the job again."
            )
            job.finished_at = utcnow()
            failed.append(job.id)
    return failed


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
    """True when some process holds this workspace's worker lock."""
    path = _lock_path(ws)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def run_worker(ws: Workspace, workers: int = 1) -> None:
    """Run the huey consumer for this workspace until interrupted (blocks).

    One worker thread by default: one training at a time per GPU; start one worker process
    per GPU (CUDA_VISIBLE_DEVICES) to use several.
    """
    lock = open(_lock_path(ws), "a+")  # noqa: SIM115 - held for the life of the worker
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
    except BlockingIOError:
        pass  # another worker holds it; we are an extra one (e.g. second GPU)
    recover_dead_jobs(ws)
    _exit_when_workspace_removed(ws.root)
    huey, _task = queue_for(str(ws.root))
    consumer = huey.create_consumer(
        workers=workers, worker_type="thread", periodic=False, initial_delay=0.2, max_delay=1.0
    )
    consumer.run()


def _exit_when_workspace_removed(root: Path, interval: float = 2.0) -> None:
    """A worker whose workspace folder was deleted (temporary workspaces) has nothing left to
    do; without this it would poll a vanished queue forever."""

    def watch() -> None:
        while root.exists():
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="workspace-watchdog", daemon=True).start()


def ensure_worker(ws: Workspace) -> bool:
    """Start a background worker for `ws` unless one is running. Returns True if started.

    PNEUMOLAB_AUTOSTART_WORKER=0 turns this off (a worker is run by hand or elsewhere).
    """
    recover_dead_jobs(ws)
    if os.environ.get("PNEUMOLAB_AUTOSTART_WORKER") == "0" or worker_running(ws):
        return False
    start_worker_process(ws)
    # Wait briefly for the lock so a quick second call does not start a twin.
    for _ in range(50):
        if worker_running(ws):
            break
        time.sleep(0.1)
    return True


def stop_worker(ws: Workspace, timeout: float = 10.0) -> bool:
    """Stop the worker that holds this workspace's lock (SIGTERM: huey stops at once; a job it
    was running is marked failed by the next recover_dead_jobs). True if one was stopped."""
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


def start_worker_process(ws: Workspace, extra_env: dict[str, str] | None = None):
    """Spawn `pneumolab worker` for `ws` in its own session (it outlives Streamlit reruns and
    restarts); output goes to worker.log in the workspace. Returns the Popen."""
    project_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (project_root, os.environ.get("PYTHONPATH")) if p)
    log = open(ws.root / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", "--workspace", str(ws.root), "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # The project root on the path: `-m core.cli` must work whatever the app's cwd.
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(extra_env or {})},
        )
    finally:
        log.close()
