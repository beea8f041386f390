"""Models: every trained version with its settings, data, curves and scores; activate or roll
back; compare two versions on the same images."""

import pandas as pd
import streamlit as st
from ui_state import reader_name, workspace

from core.review.report import compare_versions, curves, image_level, snapshot_size
from core.review.view import load_review, versions_with_predictions
from core.tasks.submit import submit_prediction
from core.versions import activate, list_versions

ws = workspace()
st.title("Model versions")

versions = list_versions(ws)
if not versions:
    st.info("No model versions yet. Start a training on the **Train** page.")
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
            "minutes": round(v.duration_s / 60, 1),
            "predictions": "yes" if v.id in predicted else "",
            "created": f"{v.created_at:%Y-%m-%d %H:%M}",
        }
        for v in versions
    ],
    hide_index=True,
)

tab_detail, tab_compare = st.tabs(["Version details", "Compare two versions"])

with tab_detail:
    chosen_id = st.selectbox(
        "Version",
        [v.id for v in versions],
        format_func=lambda i: f"version {i}" + (" (active)" if active and i == active.id else ""),
        key="models_version",
    )
    chosen = next(v for v in versions if v.id == chosen_id)
    b1, b2 = st.columns(2)
    if not chosen.is_active:
        verb = "Roll back to" if active and chosen.id < active.id else "Activate"
        if b1.button(f"{verb} version {chosen.id}", type="primary", key="models_activate"):
            activate(ws, chosen.id)
            st.session_state["models_message"] = f"Version {chosen.id} is now the active model."
            st.rerun()
    else:
        b1.success("This is the active model.")
    if chosen.id not in predicted and b2.button(
        f"Predict all images with version {chosen.id}", key="models_predict"
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
