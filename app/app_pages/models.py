"""Models: every trained version with its settings, data, curves and scores; activate or roll
back; compare two versions on the same images; compare architectures trained alike."""

import pandas as pd
import streamlit as st
from ui_state import as_text, can, reader_name, workspace

from core.jobs.records import JobInfo, get_job, latest_job
from core.labels.readers import list_labels
from core.review.report import compare_versions, curves, image_level, snapshot_size
from core.review.view import load_review, versions_with_predictions
from core.tasks.submit import TrainRequest, submit_compare, submit_prediction
from core.versions import VersionInfo, activate, list_versions
from core.vocab import ARCHITECTURES, ENCODERS
from core.vocab import FINISHED_JOB_STATES as FINISHED

COMPARE_SIZES = (64, 128, 256, 384, 512)
# What the side-by-side table shows of each architecture's report (core.tasks.compare).
COMPARE_COLUMNS = {
    "model_version": "version",
    "val_dice": "val Dice",
    "val_iou": "val IoU",
    "pixel_accuracy": "pixel accuracy",
    "image_auc": "image AUC",
    "image_sensitivity": "image sensitivity",
    "image_specificity": "image specificity",
    "best_epoch": "best epoch",
    "duration_s": "seconds",
}

ws = workspace()
st.title("Model versions")

versions = list_versions(ws)


def _compare_form() -> None:
    labels = [lab.name for lab in list_labels(ws)]
    with st.form("models_arch_form"):
        c1, c2, c3 = st.columns(3)
        archs = c1.multiselect(
            "Architectures",
            list(ARCHITECTURES),
            default=[a for a in ("unet", "deeplabv3", "segnet") if a in ARCHITECTURES],
            format_func=ARCHITECTURES.get,
            key="models_arch_archs",
        )
        label = c1.selectbox(
            "Label to learn",
            labels,
            index=labels.index("lung") if "lung" in labels else 0,
            key="models_arch_label",
        )
        size = c2.selectbox("Image size (px)", COMPARE_SIZES, index=1, key="models_arch_size")
        epochs = c2.number_input("Epochs for each", 1, 500, 10, key="models_arch_epochs")
        encoder = c3.selectbox(
            "Encoder of U-Net / DeepLabV3",
            ENCODERS,
            index=1,
            key="models_arch_encoder",
            help="SegNet has its own VGG-16-bn encoder; for it this is stored but ignored.",
        )
        start = st.form_submit_button("Start comparison", type="primary")
    st.caption(
        "Each architecture trains on the same patient-wise split (same seed) with the same "
        "budget: all epochs, no early stopping. Each becomes a model version that is not "
        "activated."
    )
    if start:
        request = TrainRequest(
            label=label or "lung",
            encoder=encoder,
            size=int(size),
            epochs=int(epochs),
            activate="never",
            created_by=reader_name(),
        )
        try:
            st.session_state["models_arch_job"] = submit_compare(ws, archs, request)
        except (ValueError, LookupError) as e:
            st.error(f"Comparison not started: {as_text(e)}")


def _compare_job() -> JobInfo | None:
    job_id = st.session_state.get("models_arch_job")
    if job_id is not None:
        try:
            return get_job(ws, job_id)
        except KeyError:
            pass
    return latest_job(ws, "compare")  # a reopened page shows the newest comparison


def _compare_result(job: JobInfo, by_id: dict[int, VersionInfo]) -> None:
    report = job.result.get("comparison") or {}
    st.dataframe(
        [
            {"architecture": ARCHITECTURES.get(arch, arch)}
            | {name: row.get(key) for key, name in COMPARE_COLUMNS.items()}
            for arch, row in report.items()
        ],
        hide_index=True,
    )
    st.caption(
        f"{job.result.get('n_train')} training and {job.result.get('n_val')} validation images, "
        f"the same for each; {job.result.get('size')} px, {job.result.get('epochs')} epochs."
    )
    dice, loss = {}, {}
    for arch, row in report.items():
        version = by_id.get(row["model_version"])
        if version is None:
            continue
        rows = curves(version)
        name = ARCHITECTURES.get(arch, arch)
        dice[name] = {r["epoch"]: r.get("val_dice") for r in rows}
        loss[name] = {r["epoch"]: r.get("val_loss") for r in rows}
    if dice:
        l1, l2 = st.columns(2)
        l1.caption("Validation Dice per epoch")
        l1.line_chart(pd.DataFrame(dice).rename_axis("epoch"))
        l2.caption("Validation loss per epoch")
        l2.line_chart(pd.DataFrame(loss).rename_axis("epoch"))


def compare_architectures() -> None:
    """The "Compare architectures" section: start a comparison job, watch it, read it."""
    if can("train"):  # the service checks the role too
        _compare_form()
    job = _compare_job()
    if job is None:
        return
    live = job.state not in FINISHED

    @st.fragment(run_every=1.5 if live else None)
    def _panel() -> None:
        current = get_job(ws, job.id)
        st.markdown(f"**Comparison job {current.id}: {current.state}**")
        if current.state not in FINISHED:
            st.progress(min(max(current.progress, 0.0), 1.0), text=f"{current.progress:.0%}")
            with st.expander("Log"):
                st.code(current.log_tail[-6000:] or "(no output yet)", language=None)
        elif current.state == "failed":
            st.error(f"Comparison failed: {current.error}")
        elif current.state == "cancelled":
            st.warning("Comparison cancelled.")
        if live and current.state in FINISHED:
            st.rerun()  # finished: redraw the page once so the new versions are listed
        if current.state == "succeeded":
            _compare_result(current, {v.id: v for v in versions})

    _panel()


if not versions:
    st.info("No model versions yet. Start a training on the **Train** page.")
    st.subheader("Compare architectures")
    compare_architectures()
    st.stop()

active = next((v for v in versions if v.is_active), None)
predicted = set(versions_with_predictions(ws))
st.dataframe(
    [
        {
            "version": v.id,
            "active": "●" if v.is_active else "",
            "label": v.label,
            "model": f"{v.arch}/{v.encoder}",
            "size": v.image_size,
            "loss": v.settings.get("loss"),
            "epochs": v.settings.get("epochs"),
            "images": v.data_snapshot.get("n_images"),
            "val Dice": v.metrics.get("dice"),
            "val IoU": v.metrics.get("iou"),
            "parent": v.parent_version_id,
            "device": v.device,
            "precision": v.settings.get("precision", ""),
            "minutes": round(v.duration_s / 60, 1),
            "predictions": "yes" if v.id in predicted else "",
            "created": f"{v.created_at:%Y-%m-%d %H:%M}",
        }
        for v in versions
    ],
    hide_index=True,
)

tab_detail, tab_compare, tab_archs = st.tabs(
    ["Version details", "Compare two versions", "Compare architectures"]
)

with tab_archs:
    compare_architectures()

with tab_detail:
    chosen_id = st.selectbox(
        "Version",
        [v.id for v in versions],
        format_func=lambda i: f"version {i}" + (" (active)" if active and i == active.id else ""),
        key="models_version",
    )
    chosen = next(v for v in versions if v.id == chosen_id)
    b1, b2 = st.columns(2)
    if not chosen.is_active and can("activate"):
        verb = "Roll back to" if active and chosen.id < active.id else "Activate"
        if b1.button(f"{verb} version {chosen.id}", type="primary", key="models_activate"):
            activate(ws, chosen.id, actor=reader_name())
            st.session_state["models_message"] = f"Version {chosen.id} is now the active model."
            st.rerun()
    elif chosen.is_active:
        b1.success("This is the active model.")
    if (
        chosen.id not in predicted
        and can("train")
        and b2.button(f"Predict all images with version {chosen.id}", key="models_predict")
    ):
        job = submit_prediction(ws, chosen.id, reader_name())
        st.session_state["models_message"] = (
            f"Prediction job {job} queued; its progress shows on the Train page."
        )
        st.rerun()
    message = st.session_state.pop("models_message", None)
    if message:
        st.success(message)

    m = chosen.metrics
    c = st.columns(4)
    c[0].metric("Validation Dice", f"{m['dice']:.3f}" if "dice" in m else "–")
    c[1].metric("Validation IoU", f"{m['iou']:.3f}" if "iou" in m else "–")
    c[2].metric("Pixel accuracy", f"{m['pixel_accuracy']:.3f}" if "pixel_accuracy" in m else "–")
    c[3].metric("Best epoch", m.get("best_epoch", "–"))
    st.caption("Data snapshot")
    st.dataframe([snapshot_size(chosen)], hide_index=True)
    rows = curves(chosen)
    if rows:
        frame = pd.DataFrame(rows).set_index("epoch")
        l1, l2 = st.columns(2)
        l1.caption("Loss per epoch")
        l1.line_chart(frame[[k for k in ("train_loss", "val_loss") if k in frame]])
        l2.caption("Validation Dice / IoU per epoch")
        l2.line_chart(frame[[k for k in ("val_dice", "val_iou") if k in frame]])

    st.subheader("Image-level finding (validation images)")
    threshold = st.slider("Operating point", 0.05, 0.95, 0.5, 0.05, key="models_threshold")
    report = image_level(ws, chosen.id, threshold) if chosen.id in predicted else None
    if report is None:
        st.caption(
            "Needs predictions and both positive and explicit negative ('reviewed: no "
            "finding') images in the validation set."
        )
    else:
        r1, r2, r3 = st.columns(3)
        r1.metric("Sensitivity", f"{report.sensitivity:.3f}")
        r2.metric("Specificity", f"{report.specificity:.3f}")
        r3.metric("ROC AUC", f"{report.auc:.3f}" if report.auc is not None else "–")
        (tn, fp), (fn, tp) = report.matrix
        st.table(
            pd.DataFrame(
                [[tn, fp], [fn, tp]],
                index=["truth: no finding", "truth: finding"],
                columns=["called: no finding", "called: finding"],
            )
        )
        st.caption("ROC curve (true- vs false-positive rate)")
        st.line_chart(pd.DataFrame({"fpr": report.fpr, "tpr": report.tpr}).set_index("fpr"))
    with st.expander("All settings"):
        st.json(chosen.settings)

with tab_compare:
    ids = sorted(predicted, reverse=True)
    if len(ids) < 2:
        st.info("Two versions need predictions to be compared; predict with another version.")
    else:
        k1, k2, k3 = st.columns(3)
        a = k1.selectbox("Version A", ids, index=1, key="models_cmp_a")
        b = k2.selectbox("Version B", ids, index=0, key="models_cmp_b")
        thr = k3.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="models_cmp_threshold")
        comparison = compare_versions(ws, a, b, thr)
        if not comparison.image_ids:
            st.info("No labelled image has predictions from both versions.")
        else:
            s1, s2, s3 = st.columns(3)
            s1.metric(f"Mean Dice, version {a}", f"{comparison.mean_a:.3f}")
            s2.metric(f"Mean Dice, version {b}", f"{comparison.mean_b:.3f}")
            s3.metric(f"Images where {b} is better", f"{comparison.b_better}")
            pick = st.selectbox(
                "Image",
                range(len(comparison.image_ids)),
                format_func=lambda i: (
                    f"image {comparison.image_ids[i]}: "
                    f"{comparison.dice_a[i]:.2f} vs {comparison.dice_b[i]:.2f}"
                ),
                key="models_cmp_image",
            )
            image_id = comparison.image_ids[pick]
            left, right = st.columns(2)
            for col, vid in ((left, a), (right, b)):
                rv = load_review(ws, image_id, vid, thr)
                col.image(
                    rv.render(0.45),
                    caption=f"version {vid}: Dice {rv.dice:.3f}" if rv.dice is not None else "",
                    width="stretch",
                    output_format="PNG",
                )
