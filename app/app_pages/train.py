"""Train: start a training job, watch it live, cancel it. The job lives in the database, so
closing the page or restarting the app loses nothing; a worker process does the work."""

import pandas as pd
import streamlit as st
from ui_state import as_text, reader_name, workspace

from core.jobs.records import JobInfo, cancel_job, get_job, latest_job, list_jobs
from core.labels.readers import list_labels, list_readers
from core.ml.training.recipes import RECIPES, USER_RECIPES
from core.tasks.submit import TrainRequest, submit_training
from core.versions import active_version, list_versions
from core.vocab import ARCHITECTURES, CONSENSUS, ENCODERS, LOSSES
from core.vocab import FINISHED_JOB_STATES as FINISHED

SIZES = (64, 128, 256, 384, 512)

ws = workspace()
st.title("Train a model")

versions = list_versions(ws)
active = active_version(ws)
labels = [lab.name for lab in list_labels(ws)]
readers = [r.name for r in list_readers(ws)]

with st.form("train_form"):
    choice = st.radio(
        "Recipe",
        [*USER_RECIPES, "custom"],
        format_func=lambda r: RECIPES[r].title if r in RECIPES else "Custom: the settings below",
        key="train_recipe",
        help="A recipe sets network, size, schedule, augmentation, flip test-time augmentation "
        "and the label's post-processing (measured by bench/bench_cv.py); Custom uses the "
        "fields below. Fine-tuning keeps the parent's network and size.",
    )
    recipe = None if choice == "custom" else choice
    c1, c2, c3 = st.columns(3)
    label = c1.selectbox(
        "Label to learn",
        labels,
        index=labels.index("lung") if "lung" in labels else 0,
        key="train_label",
    )
    parent = c1.selectbox(
        "Fine-tune from",
        [None] + [v.id for v in versions],
        format_func=lambda v: (
            "train from scratch"
            if v is None
            else f"version {v} ({next(x for x in versions if x.id == v).arch})"
        ),
        key="train_parent",
        help="Fine-tuning keeps the version's architecture and encoder.",
    )
    arch = c2.selectbox(
        "Architecture", list(ARCHITECTURES), format_func=ARCHITECTURES.get, key="train_arch"
    )
    encoder = c2.selectbox(
        "Encoder",
        ENCODERS,
        index=1,
        key="train_encoder",
        help="The ResNet of U-Net and DeepLabV3(+). SegNet has its own VGG-16-bn encoder, "
        "trained from scratch: for SegNet this choice is stored with the version but ignored.",
    )
    loss = c3.selectbox("Loss", list(LOSSES), format_func=LOSSES.get, key="train_loss")
    size = c3.selectbox("Image size (px)", SIZES, index=SIZES.index(256), key="train_size")
    c4, c5, c6 = st.columns(3)
    epochs = c4.number_input("Epochs", 1, 500, 20, key="train_epochs")
    batch = c5.number_input("Batch size", 1, 64, 8, key="train_batch")
    source = c6.selectbox(
        "Labels of",
        [None, CONSENSUS] + [r for r in readers if r != CONSENSUS],
        format_func=lambda r: {
            None: "reference standard (adjudicated, else newest human labels)",
            CONSENSUS: "consensus (adjudicated, else pixel-wise majority of the readers)",
        }.get(r, r),
        key="train_reader",
    )
    activate_if_better = st.checkbox(
        "Activate the new version if it beats the active one on validation Dice",
        value=True,
        key="train_activate",
        help="Off: the new version is kept but the active model stays until you activate it "
        "on the Models page (the first version of a workspace always becomes active).",
    )
    include_model = st.checkbox(
        "Also learn from accepted predictions that no reviewer has adjudicated",
        value=False,
        key="train_include_model",
        help="Off: model output is not truth until a reviewer adjudicates it, so a model is "
        "never trained on its own predictions by accident.",
    )
    start = st.form_submit_button("Start training", type="primary")

if start:
    if parent is not None:  # a fine-tune keeps its parent's network
        chosen = next(v for v in versions if v.id == parent)
        arch, encoder = chosen.arch, chosen.encoder
    by_recipe = recipe is not None and parent is None  # the recipe's network and size
    request = TrainRequest(
        label=label,
        arch=None if by_recipe else arch,
        encoder=None if by_recipe else encoder,
        size=None if recipe is not None else int(size),
        recipe=recipe,
        epochs=int(epochs),
        loss=loss,
        batch_size=int(batch),
        from_version=parent,
        reader=source,
        include_model_labels=include_model,
        activate="if_better" if activate_if_better else "never",
        created_by=reader_name(),
    )
    try:
        with st.spinner("Checking the settings and labels…"):
            st.session_state["train_job_id"] = submit_training(ws, request)
    except (ValueError, LookupError) as e:
        st.error(f"Training not started: {as_text(e)}")


def _job_to_show() -> JobInfo | None:
    job_id = st.session_state.get("train_job_id")
    if job_id is not None:
        try:
            return get_job(ws, job_id)
        except KeyError:
            pass
    return latest_job(ws, "train")  # a reopened page picks up the newest training


def _curves(job: JobInfo) -> None:
    history = job.metrics.get("history") or []
    if not history:
        return
    frame = pd.DataFrame(history).set_index("epoch")
    c1, c2 = st.columns(2)
    c1.caption("Loss per epoch")
    c1.line_chart(frame[[c for c in ("train_loss", "val_loss") if c in frame]])
    c2.caption("Validation Dice / IoU per epoch")
    c2.line_chart(frame[[c for c in ("val_dice", "val_iou") if c in frame]])


def _panel(job: JobInfo) -> None:
    st.subheader(f"Training job {job.id}: {job.state}")
    if job.state == "queued":
        st.info(f"Waiting in the queue: position {job.queue_position} (one training at a time).")
    text = f"{job.progress:.0%}"
    if job.metrics.get("last_loss") is not None and job.state == "running":
        text += f" · loss {job.metrics['last_loss']:.4f}"
    st.progress(min(max(job.progress, 0.0), 1.0), text=text)
    if job.state in ("queued", "running") and st.button("Cancel training", key="train_cancel"):
        cancel_job(ws, job.id, actor=reader_name())
        st.rerun()
    if job.state == "failed":
        st.error(f"Training failed: {job.error}")
    if job.state == "cancelled":
        st.warning("Training cancelled; no model version was registered.")
    if job.state == "succeeded":
        version = job.result.get("model_version")
        dice = job.result.get("val_dice")
        st.success(
            f"Model version {version} registered"
            + (f" (validation Dice {dice:.3f})" if dice is not None else "")
            + (
                " and activated."
                if job.result.get("active")
                else "; the active model is unchanged."
            )
        )
        predict_id = job.result.get("prediction_job")
        if predict_id is not None:
            pj = get_job(ws, predict_id)
            st.progress(
                min(max(pj.progress, 0.0), 1.0),
                text=f"Predictions for review (job {pj.id}): {pj.state} {pj.progress:.0%}",
            )
            if pj.state == "succeeded":
                st.page_link(
                    "app_pages/review.py",
                    label="Open the review page",
                    icon=":material/fact_check:",
                )
    _curves(job)
    with st.expander("Log", expanded=job.state in ("running", "failed")):
        st.code(job.log_tail[-6000:] or "(no output yet)", language=None)


def _still_working(job: JobInfo) -> bool:
    if job.state not in FINISHED:
        return True
    predict_id = job.result.get("prediction_job")
    return predict_id is not None and get_job(ws, predict_id).state not in FINISHED


job = _job_to_show()
if job is None:
    st.info("No training yet. Choose the settings above and press **Start training**.")
else:
    live = _still_working(job)

    @st.fragment(run_every=1.5 if live else None)
    def _live_panel() -> None:
        current = get_job(ws, job.id)
        _panel(current)
        if live and not _still_working(current):
            st.rerun()  # finished: redraw the whole page once, then stop polling

    _live_panel()

st.divider()
st.caption(
    f"Active model: version {active.id} ({active.arch}/{active.encoder}, {active.label})"
    if active
    else "No active model yet."
)
recent = list_jobs(ws, limit=10)
if recent:
    st.caption("Recent jobs")
    st.dataframe(
        [
            {
                "job": j.id,
                "kind": j.kind,
                "state": j.state,
                "progress": f"{j.progress:.0%}",
                "queue position": j.queue_position,
                "started by": j.created_by,
                "created": f"{j.created_at:%Y-%m-%d %H:%M}",
            }
            for j in recent
        ],
        hide_index=True,
    )
