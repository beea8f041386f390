"""Department mode, end to end: PostgreSQL (pg_ctl) and Redis (redis-server) as real server
processes, one workspace folder shared by every process (as a mount at the same path), an
image store of its own (PNEUMOLAB_STORE), one secret file; two app processes (separate Python
processes calling the services the Train and Review pages call) and two worker processes."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

TIMEOUT_S = 5  # PNEUMOLAB_WORKER_TIMEOUT_S of these tests (the default is 60)
N_IMAGES = 8
LONG_TRAINING = {
    "label": "lung", "arch": "unet", "encoder": "resnet18", "size": 64, "epochs": 200,
    "batch_size": 2, "early_stopping_patience": None, "device": "cpu", "created_by": "app-a",
}  # fmt: skip
SHORT_TRAINING = {
    "label": "lung", "encoder": "resnet18", "size": 32, "epochs": 1, "batch_size": 4,
    "device": "cpu", "activate": "never", "created_by": "app-b",
}  # fmt: skip


@pytest.fixture
def department(fresh_postgres_database, redis_url, tmp_path, monkeypatch, job_processes):
    """The settings every process of the department gets (this one too)."""
    settings = {
        "PNEUMOLAB_DATABASE_URL": fresh_postgres_database("dept"),
        "PNEUMOLAB_REDIS_URL": redis_url,
        "PNEUMOLAB_STORE": str(tmp_path / "image-store"),
        "PNEUMOLAB_SECRET_FILE": str(tmp_path / "secret.key"),
        "PNEUMOLAB_WORKER_TIMEOUT_S": str(TIMEOUT_S),
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return {"root": tmp_path / "shared-workspace", "env": job_processes.env(**settings)}


def test_claims_go_to_one_worker_each_on_postgres(department, job_processes, tmp_path):
    from core import jobs
    from core.workspace import Workspace

    ws = Workspace.open(department["root"])
    try:
        assert ws.engine.dialect.name == "postgresql"
        ids = [jobs.submit_job(ws, "predict", {"model": "active"}, "t") for _ in range(40)]
        won = job_processes.race_claims(ws.root, department["env"], tmp_path / "gate")
        assert won == ids, "a job claimed twice, or never"
    finally:
        ws.dispose()


def test_two_app_processes_queue_into_one_redis_queue(department, job_processes, redis_url):
    """Every process of one database names the same Redis queues (the name used to come from
    Python's per-process randomised str hash, so each process had queues of its own)."""
    import redis

    from core.jobs.queue import queue_name, wake_channel
    from core.workspace import Workspace

    root, env = str(department["root"]), department["env"]
    job = {"do": "job", "kind": "embed", "settings": {"version": 1}}
    for host in ("a", "b"):  # two app processes, two jobs each, no worker running
        env_host = {**env, "PYTHONHASHSEED": "random"}
        out = job_processes.run({"role": "app", "root": root, "actions": [job, job]}, env_host)
        assert len(out["jobs"]) == 2, host
    seen = [
        job_processes.run({"role": "queue", "root": root, "kinds": ["embed"]}, env)
        for _ in range(2)
    ]
    assert seen[0] == seen[1]
    assert seen[0]["pending"] == {"embed": 4}
    ws = Workspace.open(root)
    try:
        name = queue_name(ws)
        key = wake_channel(ws).storage("embed").queue_key
    finally:
        ws.dispose()
    assert seen[0]["name"] == name and name.replace("-", "") in key
    client = redis.Redis.from_url(redis_url)
    assert client.llen(key) == 4  # in the Redis server itself
    client.close()


@pytest.mark.timeout(300)
def test_two_workers_two_apps_one_killed_mid_epoch(
    department, job_processes, reap, import_real_images, torch_one_thread, tmp_path
):
    from core import jobs
    from core.jobs import lease
    from core.tasks.submit import TrainRequest
    from core.tasks.train import train
    from core.versions import active_version, list_versions
    from core.vocab import FINISHED_JOB_STATES
    from core.workspace import Workspace
    from db.models import AnnotationRevision, Prediction

    root, env = department["root"], department["env"]
    ws = Workspace.open(root)
    try:
        assert ws.engine.dialect.name == "postgresql"
        import_real_images(ws, N_IMAGES)
        assert len(list(Path(os.environ["PNEUMOLAB_STORE"]).rglob("*.png"))) >= N_IMAGES
        v1 = train(ws, TrainRequest(encoder="resnet18", size=32, epochs=1, batch_size=4,
                                    device="cpu"))  # fmt: skip
        registered = {p.name for p in ws.models_dir.glob("run-*")}

        logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
        workers = [reap(job_processes.start_worker(root, env, log=log)) for log in logs]
        job_processes.wait_until(
            lambda: len(lease.live_workers(ws)) == 2, what="both workers' first heartbeat"
        )
        # Two app hosts queue at the same time: a long training and a prediction each.
        app_a = job_processes.spawn(
            {"role": "app", "root": str(root), "actions": [
                {"do": "train", "request": LONG_TRAINING}, {"do": "predict", "version": v1.id},
            ]}, env,
        )  # fmt: skip
        app_b = job_processes.spawn(
            {"role": "app", "root": str(root), "actions": [
                {"do": "train", "request": SHORT_TRAINING}, {"do": "predict", "version": v1.id},
            ]}, env,
        )  # fmt: skip
        long_job, predict_a = job_processes.result(app_a)["jobs"]
        short_job, predict_b = job_processes.result(app_b)["jobs"]

        def mid_second_epoch():
            info = jobs.get_job(ws, long_job)
            assert info.state not in FINISHED_JOB_STATES, info.error
            history = info.metrics.get("history") or []
            return info.state == "running" and len(history) >= 1 and info.progress > 1 / 200

        job_processes.wait_until(mid_second_epoch, what="the long training's second epoch")
        victim_pid = _worker_pid(ws, long_job)
        (victim,) = [w for w in workers if w.pid == victim_pid]
        (survivor,) = [w for w in workers if w is not victim]
        half_made = {p.name for p in ws.models_dir.glob(f"run-{victim.pid}-*")}
        assert half_made, "the long training's run folder, with its epoch-1 checkpoint"
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(10)

        failed = job_processes.wait_until(
            lambda: (j := jobs.get_job(ws, long_job)).state in FINISHED_JOB_STATES and j,
            timeout=60,
            what="the surviving worker to notice the killed one",
        )
        assert time.monotonic() - killed_at < TIMEOUT_S + lease.heartbeat_interval(TIMEOUT_S) + 5
        assert failed.state == "failed"
        # Same host: the pid is gone, so the survivor knows at its next heartbeat.
        assert f"(pid {victim.pid}) stopped (killed or crashed)" in failed.error, failed.error
        assert "active model is unchanged" in failed.error
        worker_logs = "\n".join(log.read_text() for log in logs)
        assert not any(ws.models_dir.glob(f"run-{victim.pid}-*")), worker_logs[-3000:]

        # The survivor finishes the rest, including the prediction job the short training
        # queued for its new version.
        short = jobs.wait_for(ws, short_job, timeout=180)
        assert short.state == "succeeded", short.error
        follow_up = short.result["prediction_job"]
        for job_id in (predict_a, predict_b, follow_up):
            done = jobs.wait_for(ws, job_id, timeout=120)
            assert done.state == "succeeded", done.error

        v2 = short.result["model_version"]
        assert [v.id for v in list_versions(ws)] == [v2, v1.id], "a version registered twice"
        assert active_version(ws).id == v1.id
        assert {p.name for p in ws.models_dir.glob("run-*")} == registered | {
            Path(v.checkpoint_path).parts[1] for v in list_versions(ws) if v.id == v2
        }
        with ws.sessions() as s:
            per_version = dict(
                s.execute(
                    select(Prediction.model_version_id, func.count()).group_by(
                        Prediction.model_version_id
                    )
                ).all()
            )
        assert per_version == {v1.id: N_IMAGES, v2: N_IMAGES}

        # The review step of the loop, from an app host: accept the new model's prediction.
        image_id = 1
        out = job_processes.run(
            {"role": "app", "root": str(root),
             "actions": [{"do": "accept", "image": image_id, "version": v2}]}, env,
        )  # fmt: skip
        with ws.sessions() as s:
            accepted = s.scalars(
                select(AnnotationRevision)
                .where(AnnotationRevision.image_id == image_id)
                .order_by(AnnotationRevision.id)
            ).all()[-1]
        assert (accepted.source, accepted.model_version_id) == ("model", v2)
        assert out["accepted"]["revision"] == accepted.revision

        status = job_processes.worker_status(root, env)
        assert [w["pid"] for w in status["workers"]] == [survivor.pid]
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(60) == 0
        # No job ran twice: each job id appears once in the two workers' logs, on one worker.
        started = re.findall(r"running job (\d+)", "\n".join(log.read_text() for log in logs))
        assert sorted(map(int, started)) == sorted(
            {long_job, predict_a, short_job, predict_b, follow_up}
        ), started
    finally:
        ws.dispose()


def _worker_pid(ws, job_id: int) -> int:
    from db.models import Job

    with ws.sessions() as s:
        return s.scalar(select(Job.worker_pid).where(Job.id == job_id))
