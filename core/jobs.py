"""Jobs: long work (training, batch prediction) recorded in our database, run by a worker.

The job row (state, progress, log tail, metrics) is what the UI shows; execution goes through
huey — SQLite storage in the workspace by default, Redis when PNEUMOLAB_REDIS_URL is set — so
queued work survives an app restart. The Streamlit app starts a worker itself when none holds
the workspace's worker lock; `pneumolab worker` starts one by hand.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.workspace import Workspace
from db.models import Job, ModelVersion, utcnow

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = {"succeeded", "failed", "cancelled"}
LOG_TAIL_LINES = 200

# kind -> "module:function"; the function takes (ws, job_id, settings, reporter) and returns
# a JSON-able result dict. Strings keep this module free of torch until a job runs.
HANDLERS: dict[str, str] = {
    "train": "core.jobs:train_then_queue_predictions",
    "predict": "core.training_service:run_prediction_job",
}


class JobCancelled(Exception):
    """Raised inside a handler when the user cancelled its job."""


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


def _info(job: Job, position: int | None = None) -> JobInfo:
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


# --- the queue -------------------------------------------------------------------------------


@cache
def queue_for(root: str):
    """(huey, run_job task) of the workspace at `root` (one per process and workspace)."""
    redis_url = os.environ.get("PNEUMOLAB_REDIS_URL")
    if redis_url:
        from huey import RedisHuey

        huey = RedisHuey(f"pneumolab-{abs(hash(root))}", url=redis_url, results=False)
    else:
        from huey import SqliteHuey

        huey = SqliteHuey("pneumolab", filename=str(Path(root) / "queue.db"), results=False)
    return huey, huey.task(name="run_job")(_run_job_task)


def _run_job_task(root: str, job_id: int) -> None:
    ws = Workspace.open(root)
    try:
        run_job(ws, job_id)
    finally:
        ws.dispose()


def submit_job(ws: Workspace, kind: str, settings: dict[str, Any], created_by: str | None) -> int:
    """Record a job and queue it. Returns the job id."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}; valid kinds: {', '.join(sorted(HANDLERS))}")
    with ws.sessions.begin() as s:
        job = Job(kind=kind, settings=settings, created_by=created_by, state="queued")
        s.add(job)
        s.flush()
        job_id = job.id
    _huey, task = queue_for(str(ws.root))
    task(str(ws.root), job_id)  # calling a huey task enqueues it
    return job_id


def submit_training(ws: Workspace, request) -> int:
    """Check a TrainRequest (names, sizes, enough labels, fine-tune parent) and queue it.

    Bad settings fail here with a message saying what to change, not minutes later in the
    worker. Returns the job id.
    """
    from dataclasses import asdict

    from core import training_service as ts
    from core.training import TrainConfig

    if request.activate not in ts.ACTIVATE_RULES:
        raise ValueError(f"activate must be one of {', '.join(ts.ACTIVATE_RULES)}")
    # The same defaults train() applies (the parent's network when fine-tuning).
    arch, encoder, size, parent_checkpoint = ts.resolve_architecture(ws, request)
    if request.from_version is not None:
        parent = ts.get_version(ws, request.from_version)
        if (parent.arch, parent.encoder) != (arch, encoder):
            raise ValueError(
                f"version {parent.id} is a {parent.arch}/{parent.encoder} model; choose that "
                "architecture and encoder to fine-tune it, or train from scratch"
            )
    TrainConfig(
        arch=arch,
        encoder=encoder,
        size=size,
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=request.lr,
        loss=request.loss,
        device=request.device,
        init_checkpoint=parent_checkpoint,
    )
    n = len(ts.labelled_images(ws, request.label, request.reader))
    if n < ts.MIN_TRAINING_IMAGES:
        raise ValueError(
            f"only {n} image(s) have {request.label!r} labels; label at least "
            f"{ts.MIN_TRAINING_IMAGES} images (better dozens) before training"
        )
    return submit_job(ws, "train", asdict(request), request.created_by)


# --- running one job ---------------------------------------------------------------------------


class JobReporter:
    """Progress callback that writes to the job row (throttled) and answers cancellation."""

    def __init__(self, ws: Workspace, job_id: int, min_interval: float = 1.0) -> None:
        self.ws, self.job_id, self.min_interval = ws, job_id, min_interval
        self._lines: list[str] = []
        self._history: list[dict] = []
        self._progress = 0.0
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = False
        self._epochs = 1

    # ProgressCallback
    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self._epochs = max(epochs, 1)
        self.on_log(f"epoch {epoch}/{epochs} started")

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        self._progress = ((epoch - 1) + step / max(steps, 1)) / self._epochs
        self._flush(force=False, loss=loss)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._history.append({"epoch": epoch, **{k: float(v) for k, v in metrics.items()}})
        self._progress = epoch / self._epochs
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.on_log(f"epoch {epoch}/{self._epochs} done: {shown}", force=True)

    def on_log(self, message: str, force: bool = True) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._lines = (self._lines + [f"{stamp} {message}"])[-LOG_TAIL_LINES:]
        self._flush(force=force)

    def set_progress(self, fraction: float, message: str | None = None) -> None:
        self._progress = min(max(fraction, 0.0), 1.0)
        if message:
            self.on_log(message, force=False)
        self._flush(force=False)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= self.min_interval:
            self._last_cancel_check = now
            with self.ws.sessions() as s:
                self._cancelled = bool(
                    s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
                )
        return self._cancelled

    def _flush(self, force: bool, loss: float | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        with self.ws.sessions.begin() as s:
            job = s.get(Job, self.job_id)
            job.progress = round(self._progress, 4)
            job.log_tail = "\n".join(self._lines)
            metrics = dict(job.metrics)
            metrics["history"] = self._history
            if loss is not None:
                metrics["last_loss"] = float(loss)
            job.metrics = metrics


def _handler(kind: str) -> Callable[..., dict]:
    module, _, name = HANDLERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def run_job(ws: Workspace, job_id: int) -> JobInfo:
    """Run one queued job in this process (the worker calls this)."""
    with ws.sessions.begin() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise ValueError(f"job {job_id} does not exist")
        if job.state != "queued":
            return _info(job)  # cancelled while waiting, or already taken
        job.state = "running"
        job.started_at = utcnow()
        job.worker_pid = os.getpid()
        job.worker_host = socket.gethostname()
        kind, settings = job.kind, dict(job.settings)
    reporter = JobReporter(ws, job_id)
    state, error, result = "succeeded", None, {}
    try:
        result = _handler(kind)(ws, job_id, settings, reporter) or {}
    except JobCancelled:
        state = "cancelled"
    except Exception as e:  # a failed job must record why, whatever broke
        if type(e).__name__ == "TrainingCancelled":
            state = "cancelled"
        else:
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
        return _info(job)


def train_then_queue_predictions(
    ws: Workspace, job_id: int, settings: dict, reporter: JobReporter
) -> dict:
    """The "train" handler: train and register a version, then queue a prediction job for it
    over the workspace's images, so the review page opens on ready-made predictions."""
    from core.training_service import TrainRequest, train

    req = TrainRequest(**settings)
    version = train(ws, req, reporter)
    assert version is not None, "jobs run in one process, never under torchrun"
    dice = version.val_dice
    reporter.on_log(
        f"registered model version {version.id}"
        + (f" (validation Dice {dice:.4f})" if dice is not None else "")
        + ("; it is now the active model" if version.is_active else "; not activated")
    )
    predict_job = submit_job(
        ws,
        "predict",
        {"model": version.id, "device": req.device, "after_job": job_id},
        req.created_by,
    )
    reporter.on_log(f"queued prediction job {predict_job} for the review page")
    return {
        "model_version": version.id,
        "val_dice": dice,
        "active": version.is_active,
        "prediction_job": predict_job,
    }


# --- reading and controlling jobs --------------------------------------------------------------


def get_job(ws: Workspace, job_id: int) -> JobInfo:
    with ws.sessions() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise KeyError(f"job {job_id} does not exist")
        return _info(job, _position(s, job))


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
        return [_info(j, _position(s, j)) for j in s.scalars(stmt)]


def latest_job(ws: Workspace, kind: str | None = None) -> JobInfo | None:
    """The newest job (of `kind`): what a reopened page shows."""
    jobs = list_jobs(ws, limit=1, kind=kind)
    return jobs[0] if jobs else None


def cancel_job(ws: Workspace, job_id: int) -> JobInfo:
    """Queued jobs are cancelled at once; a running job stops at its next step."""
    with ws.sessions.begin() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise KeyError(f"job {job_id} does not exist")
        if job.state == "queued":
            job.state = "cancelled"
            job.finished_at = utcnow()
        elif job.state == "running":
            job.cancel_requested = True
        return _info(job)


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
    project_root = str(Path(__file__).resolve().parents[1])
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


def wait_for(ws: Workspace, job_id: int, timeout: float = 600, poll: float = 0.5) -> JobInfo:
    """Block until the job finishes (tests, CLI)."""
    deadline = time.monotonic() + timeout
    while True:
        info = get_job(ws, job_id)
        if info.state in FINISHED or time.monotonic() > deadline:
            return info
        time.sleep(poll)
