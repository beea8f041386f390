"""Review: each prediction in red over the labels in blue (overlap purple), Grad-CAM, boxes,
Dice/IoU against the reference standard; accept, correct in the annotator, reject, sign off,
adjudicate. Worklist sorted so the most
informative images come first."""

from pathlib import Path

import streamlit as st
from ui_state import as_text, can, reader_name, workspace

from core.labels.readers import list_readers
from core.labels.revisions import latest_by_reader, others_visible_to
from core.review.actions import (
    accept_prediction,
    adjudicate,
    reject_prediction,
    review_history,
    sign_off,
    start_correction,
)
from core.review.explain import gradcam_heatmap
from core.review.overlay import heatmap_overlay
from core.review.rows_cache import cached_review_rows
from core.review.view import load_review, review_stamp, versions_with_predictions
from core.review.worklist import ORDERS, order_rows
from core.tasks.update import submit_update
from core.versions import active_version
from core.vocab import CONSENSUS

ANNOTATE_PAGE = Path(__file__).with_name("annotate.py")

ws = workspace()
st.title("Review predictions")

versions = versions_with_predictions(ws)
if not versions:
    st.info(
        "No predictions yet. Train a model on the **Train** page: when it finishes, a "
        "prediction job runs it over every image and this page fills in."
    )
    st.stop()

active = active_version(ws)
default = versions.index(active.id) if active and active.id in versions else 0
c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
version_id = c1.selectbox(
    "Model version",
    versions,
    index=default,
    format_func=lambda v: f"version {v}" + (" (active)" if active and v == active.id else ""),
    key="review_version",
)
threshold = c2.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="review_threshold")
opacity = c3.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="review_opacity")
order = c4.selectbox("Order", list(ORDERS), format_func=ORDERS.get, key="review_order")
readers = [r.name for r in list_readers(ws)]
c5, c6, c7 = st.columns([2, 1, 1])
TRUTH_CHOICES = {
    None: "reference standard (adjudicated, else newest human labels)",
    CONSENSUS: "consensus of the readers (adjudicated first)",
}
truth_reader = c5.selectbox(
    "Ground truth (blue) from",
    [*TRUTH_CHOICES, *readers],
    format_func=lambda r: TRUTH_CHOICES.get(r, r),
    key="review_truth_reader",
)
if not others_visible_to(ws, reader_name()):
    # An annotator for whom the admin hides other readers' labels scores against their own
    # (load_review enforces the same); the choice above is then moot.
    truth_reader = reader_name()
    c5.caption("Ground truth: your own labels (other readers' are hidden for annotators).")
show_boxes = c6.toggle("Boxes", value=True, key="review_boxes")
show_cam = c7.toggle("Grad-CAM", value=False, key="review_gradcam")
UPDATE_HELP = (
    "Fine-tune the active model on the labels readers changed since it was trained (a short "
    "schedule); predictions of the changed images and the next ones in the worklist refresh "
    "first, the rest follow. The update becomes active only if it beats the current model on "
    "that model's validation images."
)
is_active = active is not None and version_id == active.id
if is_active and can("train") and st.button("Update model", key="review_update", help=UPDATE_HELP):
    try:
        job = submit_update(ws, reader_name())
    except (ValueError, LookupError, PermissionError) as e:
        st.error(f"Model not updated: {as_text(e)}")
    else:
        st.success(f"Update queued (job {job}); the Jobs page shows its progress.")


@st.cache_data(max_entries=8, show_spinner="Scoring predictions…")
def _rows(root: str, version: int, thr: float, reader: str | None, stamp: tuple):
    # root and stamp key the cache: new labels or predictions give a new stamp. Below it, the
    # on-disk cache rescores only the images that changed (a cold page scores none).
    return cached_review_rows(ws, version, thr, reader)


rows = order_rows(
    _rows(str(ws.root), version_id, threshold, truth_reader, review_stamp(ws, version_id)), order
)
if not rows:
    st.info(f"Version {version_id} has no stored predictions.")
    st.stop()

index = min(st.session_state.get("review_index", 0), len(rows) - 1)


def _describe(i: int) -> str:
    r = rows[i]
    dice = "no labels" if r.dice is None else f"Dice {r.dice:.2f}"
    return f"{i + 1}. {r.display_name} · {dice} · entropy {r.uncertainty:.3f}"


nav1, nav2, nav3 = st.columns([1, 6, 1])
if nav1.button("← Previous", disabled=index == 0, key="review_prev"):
    st.session_state["review_index"] = index - 1
    st.rerun()
picked = nav2.selectbox(
    "Image", range(len(rows)), index=index, format_func=_describe, label_visibility="collapsed"
)
if picked != index:
    st.session_state["review_index"] = index = picked
if nav3.button("Next →", disabled=index + 1 >= len(rows), key="review_next"):
    st.session_state["review_index"] = index + 1
    st.rerun()

row = rows[index]
review = load_review(ws, row.image_id, version_id, threshold, truth_reader, viewer=reader_name())

left, right = st.columns([3, 2] if not show_cam else [1, 1])
with left:
    st.image(
        review.render(opacity, show_boxes),
        caption="Red: prediction · Blue: ground truth · Purple: both",
        width="stretch",
        output_format="PNG",
    )
if show_cam:
    with right, st.spinner("Computing Grad-CAM…"):
        heat = gradcam_heatmap(ws, row.image_id, version_id, threshold)
        st.image(
            heatmap_overlay(review.gray, heat, 0.45),
            caption="Grad-CAM: what drove the predicted region",
            width="stretch",
            output_format="PNG",
        )
    info_col = st.container()
else:
    info_col = right

with info_col:
    st.subheader(review.display_name)
    m1, m2, m3 = st.columns(3)
    m1.metric("Dice", "–" if review.dice is None else f"{review.dice:.3f}")
    m2.metric("IoU", "–" if review.iou is None else f"{review.iou:.3f}")
    m3.metric(
        "Pixel accuracy", "–" if review.pixel_accuracy is None else f"{review.pixel_accuracy:.3f}"
    )
    st.caption(
        f"Ground truth: {as_text(review.truth_reason or 'none: no human labels for this image')} · "
        f"image score {review.score:.2f} · mean entropy {review.uncertainty:.3f} bits"
    )
    if review.boxes:
        st.dataframe(
            [
                {"x": b.x0, "y": b.y0, "width": b.width, "height": b.height,
                 "confidence": round(b.confidence, 3)}
                for b in review.boxes
            ],
            hide_index=True,
            height=min(35 * len(review.boxes) + 40, 200),
        )  # fmt: skip
    else:
        st.caption(f"No region above threshold {threshold:.2f}.")

    reader = reader_name()
    may_review = can("review")  # the services check the role too
    if not may_review:
        st.caption("Accepting, correcting, rejecting, signing off and adjudicating need the "
                   "reviewer role.")  # fmt: skip
    comment = st.text_input("Comment", key=f"review_comment_{row.image_id}") if may_review else ""
    a1, a2, a3, a4 = st.columns(4)
    if may_review and a1.button(
        "Accept", type="primary", key="review_accept", help="Save as your labels"
    ):
        try:
            rev = accept_prediction(ws, row.image_id, version_id, reader, threshold, comment)
            st.session_state["review_message"] = (
                f"Saved as {as_text(reader)}'s revision {rev.revision} (from model version {version_id})."
            )
            st.rerun()
        except ValueError as e:
            st.error(as_text(e))
    if may_review and a2.button(
        "Correct…", key="review_correct", help="Open the prediction in the annotator"
    ):
        try:
            start_correction(ws, row.image_id, version_id, reader, threshold)
        except ValueError as e:
            st.error(as_text(e))
        else:
            st.session_state["annotate_image_id"] = row.image_id
            if ANNOTATE_PAGE.exists():
                st.switch_page("app_pages/annotate.py")
            st.session_state["review_message"] = (
                "The prediction is saved as your newest revision; open the Annotate page to "
                "correct it."
            )
            st.rerun()
    if may_review and a3.button("Reject", key="review_reject"):
        reject_prediction(ws, row.image_id, version_id, reader, comment)
        st.session_state["review_message"] = "Prediction rejected; your labels are unchanged."
        st.rerun()
    if may_review and a4.button("Sign off", key="review_signoff"):
        sign_off(ws, row.image_id, reader, comment, version_id)
        st.session_state["review_message"] = f"Signed off by {as_text(reader)}."
        st.rerun()
    current = latest_by_reader(ws, row.image_id)
    if current and may_review:
        with st.expander("Adjudicate (reviewer): choose the reference standard"):
            chosen = st.selectbox(
                "Revision",
                list(current.values()),
                format_func=lambda r: f"{r.reader}, revision {r.revision} ({r.provenance})",
                key=f"review_adjudicate_pick_{row.image_id}",
            )
            if st.button("Make it the reference standard", key="review_adjudicate"):
                try:
                    adjudicate(ws, row.image_id, chosen.id, reader, comment)
                except (PermissionError, ValueError) as e:
                    st.error(as_text(e))
                else:
                    st.session_state["review_message"] = (
                        f"{as_text(chosen.reader)}'s revision {chosen.revision} is now the reference "
                        "standard of this image."
                    )
                    st.rerun()
    message = st.session_state.pop("review_message", None)
    if message:
        st.success(message)
    history = review_history(ws, row.image_id)
    if history:
        st.caption("Review history")
        st.dataframe(
            [
                {"when": f"{h.created_at:%Y-%m-%d %H:%M}", "reader": h.reader,
                 "decision": h.decision, "version": h.model_version_id,
                 "revision": h.revision_id, "comment": h.comment}
                for h in history
            ],
            hide_index=True,
        )  # fmt: skip
