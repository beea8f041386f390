"""Several workers on one workspace (SQLite here; PostgreSQL + Redis in tests/db/department):
leases and heartbeats, SIGTERM, kinds, the app's own worker, `worker --status`. Real worker
processes on real X-rays with their LabelMe lungs, tiny models."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from core import jobs, tasks
from core.jobs import lease
from core.tasks.submit import TrainRequest
from core.tasks.train import train
from core.versions import active_version, list_versions
from core.vocab import FINISHED_JOB_STATES
from core.workspace import Workspace

N_IMAGES = 8
TIMEOUT_S = 5  # PNEUMOLAB_WORKER_TIMEOUT_S of these tests (the default is 60)
# Long enough that the job is still running when the test acts on it.
LONG_TRAINING = {
    "label": "lung", "arch": "unet", "encoder": "resnet18", "size": 64, "epochs": 200,
    "batch_size": 2, "early_stopping_patience": None, "device": "cpu",
}  # fmt: skip


def _train_one_version(ws: Workspace) -> None:
    train(ws, TrainRequest(encoder="resnet18", size=32, epochs=1, batch_size=4, device="cpu"))


@pytest.fixture(scope="module")
def prepared(prepared_workspace) -> Path:
    """8 labelled X-rays and one trained, active version (built once per module)."""
    return prepared_workspace("workers", N_IMAGES, _train_one_version)


@pytest.fixture
def ws(prepared: Path, workspace_copy, monkeypatch) -> Workspace:
    monkeypatch.setenv(lease.TIMEOUT_ENV, str(TIMEOUT_S))
    return workspace_copy(prepared)


@pytest.fixture
def child_env(job_processes) -> dict:
    return job_processes.env(PNEUMOLAB_WORKER_TIMEOUT_S=str(TIMEOUT_S))


def run_dirs(ws: Workspace) -> set[str]:
    return {p.name for p in ws.models_dir.glob("run-*")}


def mid_second_epoch(ws: Workspace, job_id: int):
    def check():
        info = jobs.get_job(ws, job_id)
        assert info.state not in FINISHED_JOB_STATES, info.error
        history = info.metrics.get("history") or []
        return info.state == "running" and len(history) >= 1 and info.progress > 1 / 200 and info

    return check


@pytest.mark.timeout(240)
def test_sigterm_mid_epoch_requeues_the_job_and_exits_0(ws, job_processes, reap, child_env):
    before, dirs_before = active_version(ws), run_dirs(ws)
    worker = reap(job_processes.start_worker(ws.root, child_env))
    job_id = jobs.submit_job(ws, "train", LONG_TRAINING, "tester")
    job_processes.wait_until(mid_second_epoch(ws, job_id), what="the second epoch")
    assert any((ws.models_dir / d / "best.pt").exists() for d in run_dirs(ws) - dirs_before)

    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err[-3000:]  # not -6 (SIGABRT), not a traceback
    assert "terminate called" not in err
    said = json.loads(out.strip().splitlines()[-1])
    assert said["worker"] == "stopped" and said["reason"] == "SIGTERM received"

    info = jobs.get_job(ws, job_id)
    assert info.state == "queued", "a stopped worker's job goes back into the queue"
    assert info.queue_position == 1 and info.progress == 0 and info.started_at is None
    assert "requeued: the worker on" in info.log_tail and "was asked to stop" in info.log_tail
    assert run_dirs(ws) == dirs_before, "the stopped run's half-made folder remains"
    assert [v.id for v in list_versions(ws)] == [before.id]
    assert active_version(ws).id == before.id
    assert job_processes.worker_status(ws.root, child_env)["count"] == 0
    # The requeued job is an ordinary queued job: a user can still cancel it at once.
    assert jobs.cancel_job(ws, job_id).state == "cancelled"


@pytest.mark.timeout(300)
def test_a_frozen_worker_is_declared_dead_and_its_job_failed_by_the_other(
    ws, job_processes, reap, child_env
):
    """A worker that stops answering (SIGSTOP: its process lives, its heartbeat stops, as a
    host that hangs or drops off the network) is declared dead by a live worker of other
    kinds within the timeout; when it wakes up it finds its lease gone, drops the job without
    touching its record, removes its half-made run and takes a new lease."""
    before, dirs_before = active_version(ws), run_dirs(ws)
    gpu = reap(job_processes.start_worker(ws.root, child_env, kinds="train,compare"))
    job_id = jobs.submit_job(ws, "train", LONG_TRAINING, "tester")
    job_processes.wait_until(mid_second_epoch(ws, job_id), what="the second epoch")
    reap(job_processes.start_worker(ws.root, child_env, kinds="predict,embed"))
    job_processes.wait_until(
        lambda: len(lease.live_workers(ws)) == 2, what="the CPU worker's first heartbeat"
    )

    os.kill(gpu.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    info = job_processes.wait_until(
        lambda: (j := jobs.get_job(ws, job_id)).state in FINISHED_JOB_STATES and j,
        timeout=60,
        what="the live worker to declare the frozen one dead",
    )
    detected_after = time.monotonic() - frozen_at
    assert info.state == "failed"
    assert f"pid {gpu.pid}) stopped answering: no heartbeat for" in info.error
    assert "active model is unchanged" in info.error
    # Within the stated time: the timeout plus one heartbeat of the reaper, and some slack
    # for a loaded two-core machine.
    assert detected_after < TIMEOUT_S + lease.heartbeat_interval(TIMEOUT_S) + 5
    status = job_processes.worker_status(ws.root, child_env)
    assert [w["kinds"] for w in status["workers"]] == [["predict", "embed"]]
    assert status["kinds_without_worker"] == sorted(set(tasks.TASKS) - {"predict", "embed"})

    os.kill(gpu.pid, signal.SIGCONT)
    job_processes.wait_until(
        lambda: run_dirs(ws) == dirs_before, timeout=60, what="the woken worker to drop its run"
    )
    job_processes.wait_until(
        lambda: len(lease.live_workers(ws)) == 2, timeout=30, what="the woken worker's new lease"
    )
    again = jobs.get_job(ws, job_id)
    assert (again.state, again.error) == (info.state, info.error), "the failure was overwritten"
    assert [v.id for v in list_versions(ws)] == [before.id]
    assert active_version(ws).id == before.id


@pytest.mark.timeout(240)
def test_workers_take_only_their_kinds(ws, job_processes, reap, child_env):
    v1 = active_version(ws)
    training = jobs.submit_job(ws, "train", {**LONG_TRAINING, "epochs": 1}, "tester")
    predict = jobs.submit_job(ws, "predict", {"model": v1.id, "device": "cpu"}, "tester")
    cpu = reap(job_processes.start_worker(ws.root, child_env, kinds="predict,embed"))
    done = jobs.wait_for(ws, predict, timeout=120)
    assert done.state == "succeeded", done.error
    status = job_processes.worker_status(ws.root, child_env)
    (shown,) = status["workers"]
    assert (shown["pid"], shown["kinds"], shown["job"]) == (cpu.pid, ["predict", "embed"], None)
    assert shown["heartbeat_age_s"] < TIMEOUT_S
    # The training waits for a worker that takes training, first in line.
    info = jobs.get_job(ws, training)
    assert (info.state, info.queue_position) == ("queued", 1)

    code, out = job_processes.cli(ws.root, child_env, "worker", "--kinds", "train,gpu")
    assert code == 2 and "unknown job kind 'gpu'" in out["error"]
    assert f"valid kinds: {', '.join(sorted(tasks.TASKS))}" in out["error"]


def test_the_kinds_requeued_on_stop_are_job_kinds():
    from core.jobs.runner import REQUEUE_ON_STOP

    assert set(tasks.TASKS) >= REQUEUE_ON_STOP and "compare" not in REQUEUE_ON_STOP


def test_claims_go_to_one_worker_each(ws, job_processes, tmp_path):
    """Four processes claim 40 queued jobs at the same moment: each job is won exactly once."""
    ids = [jobs.submit_job(ws, "predict", {"model": "active"}, "tester") for _ in range(40)]
    won = job_processes.race_claims(ws.root, job_processes.env(), tmp_path / "gate")
    assert won == ids, "a job claimed twice, or never"
    assert all(jobs.get_job(ws, j).state == "running" for j in ids)


@pytest.mark.timeout(180)
def test_the_apps_worker_stops_when_the_app_stops(ws, job_processes, reap, child_env):
    """The worker that the app starts (ensure_worker) watches the app's process: when the app
    is killed, the worker stops cleanly (exit 0, its lease retired) within a heartbeat."""
    app = reap(job_processes.spawn({"role": "parent", "root": str(ws.root)}, child_env))
    assert json.loads(app.stdout.readline()) == {"started": True}
    (worker,) = job_processes.wait_until(
        lambda: lease.live_workers(ws), what="the app's worker to take its lease"
    )
    assert jobs.worker_running(ws)
    # A second app on this workspace folder does not start a twin.
    assert not jobs.ensure_worker(ws)

    app.kill()
    app.wait(10)
    job_processes.wait_until(
        lambda: not lease._pid_alive(worker.pid), timeout=60, what="the app's worker to exit"
    )
    assert lease.live_workers(ws) == []
    assert not jobs.worker_running(ws)
    with ws.sessions() as s:
        from db.models import Worker

        row = s.get(Worker, worker.id)
        assert row.state == "stopped"
        assert row.note == f"the app process that started it (pid {app.pid}) stopped"


def test_the_app_starts_no_worker_when_live_workers_take_every_kind(ws):
    """Department mode: dedicated workers (here one live lease of this process) take every
    kind, so an app host's start adds no worker of its own; one kind without a worker and it
    would (PNEUMOLAB_AUTOSTART_WORKER=0 is the switch for app hosts)."""
    worker_id = lease.register_worker(ws, sorted(tasks.TASKS))
    try:
        assert jobs.worker_status(ws)["kinds_without_worker"] == []
        assert not jobs.ensure_worker(ws)
        assert not jobs.worker_running(ws)
    finally:
        lease.retire_worker(ws, worker_id, "test done")
    assert jobs.worker_status(ws)["kinds_without_worker"] == sorted(tasks.TASKS)
