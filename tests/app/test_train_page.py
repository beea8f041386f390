"""Train page (AppTest): start a training job, see its queue position, progress, curves and
log; the state survives a reload (a new session) because it lives in the database; cancel.

The worker is off here (tests/core/jobs/test_jobs.py runs real workers): these tests check what
the page shows and sends, with job state written by the same reporter the worker uses.
"""

from __future__ import annotations

import socket

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.workspace import Workspace


@pytest.fixture
def ws(app_env, imported_workspace) -> Workspace:
    return imported_workspace(4, root=app_env)


def start_training(at: AppTest, **choices) -> AppTest:
    for key, value in choices.items():
        at.selectbox(key=key).set_value(value)
    next(b for b in at.button if b.label == "Start training").click()
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [s.value for s in at.subheader]
    parts += [e.value for e in (*at.info, *at.error, *at.success, *at.warning)]
    return "\n".join(str(p) for p in parts)


def test_start_training_queues_a_job_with_the_chosen_settings(ws, open_app):
    app = open_app("train")
    app.radio(key="train_recipe").set_value("custom")  # Custom: the fields below, not a recipe
    at = start_training(
        app,
        train_arch="deeplabv3plus",
        train_encoder="resnet18",
        train_loss="dice",
        train_size=128,
    )
    assert not at.exception
    job = jobs.latest_job(ws, "train")
    assert job is not None and job.state == "queued"
    s = job.settings
    assert (s["arch"], s["encoder"], s["loss"], s["size"], s["label"]) == (
        "deeplabv3plus", "resnet18", "dice", 128, "lung",
    )  # fmt: skip
    assert s["activate"] == "if_better" and job.created_by == "reader"
    assert f"Training job {job.id}: queued" in texts(at)
    assert "position 1" in texts(at)


def test_second_training_waits_with_its_queue_position(ws, open_app):
    at = start_training(open_app("train"), train_encoder="resnet18")
    at = start_training(at, train_encoder="resnet18")
    second = jobs.latest_job(ws, "train")
    assert second.queue_position == 2
    assert f"Training job {second.id}: queued" in texts(at)
    assert "position 2" in texts(at)


def test_one_click_on_a_recipe_queues_the_recipe_with_its_own_network_and_size(ws, open_app):
    app = open_app("train")
    assert app.radio(key="train_recipe").value == "quick"  # the default on CPU
    app.radio(key="train_recipe").set_value("best")
    at = start_training(app)
    assert not at.exception
    s = jobs.latest_job(ws, "train").settings
    assert (s["recipe"], s["arch"], s["encoder"], s["size"]) == ("best", None, None, None)


def test_reload_shows_the_running_job_with_progress_curves_and_log(ws, open_app):
    start_training(open_app("train"), train_encoder="resnet18")
    job = jobs.latest_job(ws, "train")
    # What the worker writes while training (same reporter, in this process).
    with ws.sessions.begin() as s:
        from db.models import Job

        s.get(Job, job.id).state = "running"
    reporter = jobs.JobReporter(ws, job.id, min_interval=0)
    reporter.on_epoch_start(1, 4)
    reporter.on_epoch_end(1, {"train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.5, "val_iou": 0.3})
    reporter.on_epoch_start(2, 4)
    reporter.on_step(2, 1, 2, 0.7)

    at = open_app("train")  # a new session: nothing carried over in session state
    assert not at.exception
    assert f"Training job {job.id}: running" in texts(at)
    bar = at.get("progress")[0]
    assert bar.proto.value == 37  # (1 epoch + 1/2 of the next) of 4 epochs
    assert len(at.get("vega_lite_chart")) == 2  # loss and Dice curves
    assert "epoch 1/4 done" in at.code[0].value
    assert any(b.label == "Cancel training" for b in at.button)


def test_cancel_from_the_page(ws, open_app):
    at = start_training(open_app("train"), train_encoder="resnet18")
    job = jobs.latest_job(ws, "train")
    next(b for b in at.button if b.label == "Cancel training").click()
    at = at.run()
    assert jobs.get_job(ws, job.id).state == "cancelled"
    assert "cancelled" in texts(at)
    assert not any(b.label == "Cancel training" for b in at.button)


def test_training_without_labels_is_refused_with_what_to_do(ws, open_app):
    at = start_training(open_app("train"), train_label="pneumonia")
    assert "Training not started" in texts(at) and "label at least" in texts(at)
    assert jobs.list_jobs(ws) == []


def test_failed_job_shows_its_reason_after_restart(ws, open_app):
    start_training(open_app("train"), train_encoder="resnet18")
    job = jobs.latest_job(ws, "train")
    with ws.sessions.begin() as s:
        from db.models import Job

        row = s.get(Job, job.id)
        row.state, row.worker_pid, row.worker_host = (
            "running",
            2**22 + 12345,
            socket.gethostname(),
        )
    at = open_app("train")  # the app's start recovers jobs whose worker is gone
    assert "Training failed" in texts(at) and "worker process" in texts(at)
