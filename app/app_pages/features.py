"""Feature space: every image where a model version's encoder puts it (PCA or t-SNE), coloured
by finding, reader, Dice, source or uncertainty, to find outliers (a wrong label, another
scanner). Hover shows the thumbnail; a click opens the image in the annotator."""

import altair as alt
import pandas as pd
import streamlit as st
from ui_state import can, reader_name, workspace

from core.jobs.records import cancel_job, get_job
from core.review.features import (
    COLOUR_FIELDS,
    PROJECTIONS,
    embedding_job,
    feature_points,
    feature_stamp,
    has_embedding,
    submit_embedding,
)
from core.versions import active_version, list_versions
from core.vocab import FINISHED_JOB_STATES as FINISHED

QUANTITATIVE = {"dice", "uncertainty"}
CHART_KEY = "features_chart"

ws = workspace()
st.title("Feature space")

versions = [v.id for v in list_versions(ws)]
if not versions:
    st.info("No model versions yet. Train one on the **Train** page, then map its features here.")
    st.stop()

active = active_version(ws)
c1, c2, c3 = st.columns([1, 1, 1])
version_id = c1.selectbox(
    "Model version",
    versions,
    index=versions.index(active.id) if active and active.id in versions else 0,
    format_func=lambda v: f"version {v}" + (" (active)" if active and v == active.id else ""),
    key="features_version",
)
projection = c2.radio(
    "Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, horizontal=True,
    key="features_projection",
)  # fmt: skip
colour = c3.selectbox(
    "Colour by", list(COLOUR_FIELDS), format_func=COLOUR_FIELDS.get, key="features_colour"
)

job = embedding_job(ws, version_id)
computed = has_embedding(ws, version_id)
busy = job is not None and job.state not in FINISHED
label = "Recompute" if computed else "Compute"
if can("train") and st.button(f"{label} the embedding", disabled=busy, key="features_compute"):
    submit_embedding(ws, version_id, reader_name(), force=computed)
    st.rerun()

if busy:

    @st.fragment(run_every=1.5)
    def _progress() -> None:
        current = get_job(ws, job.id)
        note = f" (queue position {current.queue_position})" if current.queue_position else ""
        st.progress(
            min(max(current.progress, 0.0), 1.0),
            text=f"Embedding job {current.id}: {current.state}{note} {current.progress:.0%}",
        )
        if can("train") and st.button("Cancel", key="features_cancel"):
            cancel_job(ws, current.id, actor=reader_name())
            st.rerun()
        if current.state in FINISHED:
            st.rerun()

    _progress()
elif job is not None and job.state == "failed":
    st.error(f"The embedding job failed: {job.error}")

if not computed:
    st.info(
        f"Version {version_id} has no feature-space embedding yet. Press **Compute the "
        "embedding**: a job embeds every image with the version's encoder and projects it "
        "with PCA and t-SNE (stored, so it is computed once per version)."
    )
    st.stop()


@st.cache_data(max_entries=8, show_spinner="Reading the embedding…")
def _points(root: str, version: int, proj: str, stamp: tuple) -> pd.DataFrame:
    # root and stamp key the cache: a new embedding, labels or predictions give a new stamp.
    rows = [
        {
            "x": p.x,
            "y": p.y,
            "image_id": p.image_id,
            "name": p.display_name,
            "finding": p.finding,
            "reader": p.reader,
            "dice": p.dice,
            "source": p.source,
            "uncertainty": p.uncertainty,
            "image": p.thumbnail,
        }
        for p in feature_points(ws, version, proj)
    ]
    return pd.DataFrame(rows)


frame = _points(str(ws.root), version_id, projection, feature_stamp(ws, version_id))
if frame.empty:
    st.info("The embedding holds no images. Import X-rays, then recompute it.")
    st.stop()

title = COLOUR_FIELDS[colour]
if colour in QUANTITATIVE:
    # Images without labels (Dice) or a prediction (uncertainty) stay visible, in grey.
    color = alt.condition(
        f"isValid(datum.{colour})",
        alt.Color(f"{colour}:Q", title=title, scale=alt.Scale(scheme="viridis")),
        alt.value("lightgray"),
    )
else:
    color = alt.Color(f"{colour}:N", title=title)
picked = alt.selection_point(name="picked", fields=["image_id"], on="click")
chart = (
    alt.Chart(frame)
    .mark_circle(size=90, opacity=0.85, stroke="white", strokeWidth=0.5)
    .encode(
        x=alt.X("x:Q", title=f"{PROJECTIONS[projection]} 1"),
        y=alt.Y("y:Q", title=f"{PROJECTIONS[projection]} 2"),
        color=color,
        # vega-tooltip draws a field named "image" as a picture: the thumbnail.
        tooltip=[
            alt.Tooltip("name:N", title="Image"),
            alt.Tooltip(f"{colour}:{'Q' if colour in QUANTITATIVE else 'N'}", title=title),
            alt.Tooltip("image:N", title="image"),
        ],
    )
    .add_params(picked)
    .properties(height=620)
)
st.caption(
    f"{len(frame)} images of version {version_id}, {PROJECTIONS[projection]} of the pooled "
    "encoder features. Hover a point for its thumbnail; click it to open the image in the "
    "annotator."
)
event = st.altair_chart(
    chart, on_select="rerun", selection_mode="picked", key=CHART_KEY, width="stretch"
)
chosen = (event.selection.get("picked") or []) if event else []
if chosen and chosen[0].get("image_id") is not None:
    image_id = int(chosen[0]["image_id"])
    st.session_state["annotate_image_id"] = image_id
    # Coming back to this page must not reopen the annotator: forget the click.
    st.session_state.pop(CHART_KEY, None)
    st.switch_page("app_pages/annotate.py", query_params={"image": str(image_id)})
