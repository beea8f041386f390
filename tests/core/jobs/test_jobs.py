"""Jobs through a real worker process: a killed worker, cancel, queue order, predictions after
training. Everything runs on real X-rays with their LabelMe lung polygons, tiny models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import jobs
from core.tasks.submit import TrainRequest, submit_training
from core.tasks.train import train
from core.versions import active_version, list_versions
from core.vocab import FINISHED_JOB_STATES
from core.workspace import Workspace
from db.models import Job, Prediction

N_IMAGES = 8
# Long enough that the job is still running when the test acts on it.
LONG_TRAINING = {
    "label": "lung",
    "arch": "unet",
    "encoder": "resnet18",
    "size": 64,
    "epochs": 200,
    "batch_size": 2,
    "early_stopping_patience": None,
    "device": "cpu",
}


def _train_one_version(ws: Workspace) -> None:
    train(
        ws,
        TrainRequest(
            label="lung", encoder="resnet18", size=32, epochs=1, batch_size=4, device="cpu"
        ),
    )


@pytest.fixture(scope="module")
def prepared(prepared_workspace) -> Path:
    """A workspace with 8 labelled X-rays and one trained, active version (built once)."""
    return prepared_workspace("jobs", N_IMAGES, _train_one_version)


@pytest.fixture
def ws(prepared: Path, workspace_copy) -> Workspace:
    return workspace_copy(prepared)


@pytest.fixture
def workers(ws):
    """start() -> a `pneumolab worker` process on ws; all are killed after the test."""
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = jobs.start_worker_process(ws, {"OMP_NUM_THREADS": "1"})
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_dirs(ws: Workspace) -> set[str]:
    return {p.name for p in ws.models_dir.glob("run-*")}


def test_killed_worker_leaves_job_failed_and_active_model_untouched(ws, workers, job_processes):
    wait_until = job_processes.wait_until
    before = active_version(ws)
    dirs_before = run_dirs(ws)
    worker = workers()
    job_id = jobs.submit_job(ws, "train", LONG_TRAINING, "tester")

    def mid_second_epoch():
        info = jobs.get_job(ws, job_id)
        assert info.state not in FINISHED_JOB_STATES, info.error
        history = info.metrics.get("history") or []
        return info.state == "running" and len(history) >= 1 and info.progress > 1 / 200

    wait_until(mid_second_epoch, what="the training to pass its first epoch")
    # Epoch 1 wrote a best.pt into the run's folder: the half-made run the kill leaves behind.
    assert any((ws.models_dir / d / "best.pt").exists() for d in run_dirs(ws) - dirs_before)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    assert jobs.get_job(ws, job_id).state == "running"  # nobody has noticed yet

    workers()  # start again: the new worker recovers the dead job first
    info = wait_until(
        lambda: (j := jobs.get_job(ws, job_id)).state in FINISHED_JOB_STATES and j,
        timeout=60,
        what="the restarted worker to recover the job",
    )
    assert info.state == "failed"
    assert "worker process" in info.error and "stopped" in info.error
    assert [v.id for v in list_versions(ws)] == [before.id]
    assert active_version(ws).id == before.id
    assert run_dirs(ws) == dirs_before, "the killed run's folder (half-made checkpoint) remains"
    assert not list(ws.models_dir.rglob("*.tmp"))


def test_queue_position_cancel_and_next_job_runs(ws, workers, job_processes):
    wait_until = job_processes.wait_until
    v1 = active_version(ws)
    dirs_before = run_dirs(ws)
    long_job = jobs.submit_job(ws, "train", LONG_TRAINING, "tester")
    waiting = jobs.submit_job(ws, "train", {**LONG_TRAINING, "epochs": 1}, "tester")
    predict = jobs.submit_job(ws, "predict", {"model": v1.id, "device": "cpu"}, "tester")
    assert [jobs.get_job(ws, j).queue_position for j in (long_job, waiting, predict)] == [1, 2, 3]

    workers()
    wait_until(lambda: jobs.get_job(ws, long_job).state == "running", what="the first job to start")
    # One training at a time: the others wait, with their place in the line.
    assert jobs.get_job(ws, waiting).queue_position == 1
    assert jobs.get_job(ws, predict).queue_position == 2

    cancelled = jobs.cancel_job(ws, waiting)
    assert cancelled.state == "cancelled"  # a queued job is cancelled at once
    assert jobs.get_job(ws, predict).queue_position == 1

    wait_until(lambda: jobs.get_job(ws, long_job).progress > 0, what="training steps")
    jobs.cancel_job(ws, long_job)
    info = wait_until(
        lambda: (j := jobs.get_job(ws, long_job)).state in FINISHED_JOB_STATES and j,
        timeout=60,
        what="the running job to stop",
    )
    assert info.state == "cancelled"
    assert "job cancelled" in info.log_tail

    done = jobs.wait_for(ws, predict, timeout=90)
    assert done.state == "succeeded", done.error
    assert jobs.get_job(ws, waiting).state == "cancelled"  # its queue entry was skipped
    assert [v.id for v in list_versions(ws)] == [v1.id]
    assert run_dirs(ws) == dirs_before
    with ws.sessions() as s:
        n = s.scalar(select(func.count(Prediction.id)).where(Prediction.model_version_id == v1.id))
    assert n == N_IMAGES
    assert jobs.worker_running(ws)
    assert jobs.stop_worker(ws) and not jobs.worker_running(ws)


def test_training_job_registers_version_and_queues_predictions(ws):
    """In-process run (what the worker does per job): a training job records its curves,
    registers a version without activating it, and queues a prediction job for review."""
    v1 = active_version(ws)
    settings = {**LONG_TRAINING, "size": 32, "epochs": 2, "batch_size": 4, "activate": "never"}
    job_id = submit_training(ws, TrainRequest(**settings, created_by="tester"))
    info = jobs.run_job(ws, job_id)
    assert info.state == "succeeded", info.error
    assert [h["epoch"] for h in info.metrics["history"]] == [1, 2]
    assert {"train_loss", "val_dice"} <= set(info.metrics["history"][0])
    new_id = info.result["model_version"]
    assert active_version(ws).id == v1.id  # "never": the user activates it on the Models page
    predict = jobs.get_job(ws, info.result["prediction_job"])
    assert predict.kind == "predict" and predict.state == "queued"
    assert predict.settings["model"] == new_id

    done = jobs.run_job(ws, predict.id)
    assert done.state == "succeeded", done.error
    with ws.sessions() as s:
        n = s.scalar(select(func.count(Prediction.id)).where(Prediction.model_version_id == new_id))
    assert n == N_IMAGES


def test_bad_training_settings_are_refused_before_queueing(ws):
    with pytest.raises(ValueError, match="label at least 3 images"):
        submit_training(ws, TrainRequest(label="pneumonia", encoder="resnet18"))
    v1 = active_version(ws)
    with pytest.raises(ValueError, match="architecture and encoder"):
        submit_training(ws, TrainRequest(arch="deeplabv3", encoder="resnet18", from_version=v1.id))
    with pytest.raises(ValueError, match="multiple of 32"):
        submit_training(ws, TrainRequest(encoder="resnet18", size=100))
    assert jobs.list_jobs(ws) == []


def test_recovery_ignores_jobs_of_live_workers(ws):
    """A running job whose worker is alive (this process) is left alone."""
    job_id = jobs.submit_job(ws, "predict", {"model": "active"}, "tester")
    with ws.sessions.begin() as s:
        job = s.get(Job, job_id)
        job.state, job.worker_pid, job.worker_host = "running", os.getpid(), socket.gethostname()
    assert jobs.recover_dead_jobs(ws) == []
    assert jobs.get_job(ws, job_id).state == "running"


def test_recovery_keeps_the_run_folder_of_a_training_that_is_alive(ws):
    """Recovery of a dead job removes that job's half-made run, but not the folder of a
    training that started meanwhile in a live process (it is named after that process), and
    never a registered version's folder."""
    registered = run_dirs(ws)
    assert registered, "the prepared workspace has a registered version"
    dead_pid = subprocess.Popen(["true"])  # a pid that is no longer alive
    dead_pid.wait()
    live = ws.models_dir / f"run-{os.getpid()}-{'a' * 12}"
    dead = ws.models_dir / f"run-{dead_pid.pid}-{'b' * 12}"
    for folder in (live, dead):
        folder.mkdir()
        (folder / "best.pt.tmp").write_bytes(b"half")
    job_id = jobs.submit_job(ws, "train", {"label": "lung"}, "tester")
    with ws.sessions.begin() as s:
        job = s.get(Job, job_id)
        job.state, job.worker_pid, job.worker_host = "running", dead_pid.pid, socket.gethostname()

    assert jobs.recover_dead_jobs(ws) == [job_id]

    assert jobs.get_job(ws, job_id).state == "failed"
    assert not dead.exists(), "the dead run's half-made folder remains"
    assert (live / "best.pt.tmp").exists(), "a live training's folder was deleted under it"
    assert run_dirs(ws) == registered | {live.name}
