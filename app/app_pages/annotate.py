"""Annotate: draw, edit and save polygon, box, polyline and point labels on one X-ray.

The annotator (app/components/annotator) does all drawing, editing, zoom, pan, window/level,
undo/redo and shortcuts in the browser. This page sends it the image (and its neighbours in
worklist order, prefetched) and answers its events: autosave a draft, save a revision, move
to another image. Everything stored is in original-image pixels; each Save is a new,
append-only revision for the current reader.
"""

from __future__ import annotations

import streamlit as st
from components.annotate_state import (
    describe_image,
    handle_event,
    neighbour,
    scope_of,
)
from components.annotator import annotator
from ui_state import as_text, current_role, reader_name, workspace

from core.labels.catalog import (
    WORKLIST_SORTS,
    WorklistFilter,
    find_image,
    image_info,
    worklist_ids,
)
from core.labels.readers import add_label, list_labels
from core.labels.revisions import save_revision
from core.vocab import FINDINGS, STATUSES

ws = workspace()
reader = reader_name()
KEY = "annotator"
FINDING_NAMES = {"": "not set", **FINDINGS}

# Messages and choices sit in one container above the annotator, so what they show never
# moves the annotator to another place on the page (which would mount it afresh).
top = st.container()
top.subheader("Annotate", anchor=False)

sort = st.session_state.get("annotate_sort", next(iter(WORKLIST_SORTS)))
status = st.session_state.get("annotate_status", "")
order = worklist_ids(ws, WorklistFilter(status=status or None, sort=sort))


def on_event() -> None:
    """The annotator sent an event: do it before this run draws the page."""
    event = (st.session_state.get(KEY) or {}).get("event")
    if event is None:
        return
    handled = handle_event(ws, reader, event, order)
    conflict = handled.pop("conflict", None)
    if conflict is not None:
        st.session_state["annotate_conflict"] = conflict
    target = handled.pop("goto", None)
    if target is not None:
        st.session_state["annotate_image_id"] = target
    st.session_state["annotate_handled"] = handled


if not order:
    top.info("No images to annotate here. Import X-rays first, or change the worklist filter.")
    st.stop()

wanted = st.query_params.get("image")
if wanted and wanted != st.session_state.get("annotate_query_seen"):
    # Only a checked id reaches the session; the link's text is never stored or shown.
    try:
        st.session_state["annotate_image_id"] = find_image(ws, wanted)
        st.session_state["annotate_query_seen"] = wanted
    except LookupError as e:
        st.session_state["annotate_image_id"] = order[0]
        reason = str(e)
        st.session_state["annotate_link_warning"] = (
            f"{reason[:1].upper()}{reason[1:]}; showing the first image of the worklist."
        )
image_id = st.session_state.get("annotate_image_id")
if image_id is None:
    image_id = st.session_state["annotate_image_id"] = order[0]
try:
    image_info(ws, image_id)
except KeyError:
    image_id = st.session_state["annotate_image_id"] = order[0]
if st.query_params.get("image") != str(image_id):
    st.query_params["image"] = str(image_id)
    st.session_state["annotate_query_seen"] = str(image_id)

link_warning = st.session_state.get("annotate_link_warning")
if link_warning:
    top.warning(link_warning)


def use_other_version(conflict: dict) -> None:
    result = save_revision(
        ws, conflict["image_id"], conflict["reader"], conflict["theirs_shapes"],
        based_on=conflict["mine"], tool="canvas",
    )  # fmt: skip
    st.session_state["annotate_reset"] = st.session_state.get("annotate_reset", 0) + 1
    st.session_state["annotate_reset_image"] = conflict["image_id"]
    st.session_state["annotate_handled"] = {
        "seq": -1,
        "ok": True,
        "kind": "success",
        "message": f"Revision {conflict['theirs']} restored as revision "
        f"{result.revision.revision}.",
    }


conflict = st.session_state.get("annotate_conflict")
if conflict and conflict["image_id"] == image_id and conflict["reader"] == reader:
    with top.container(border=True):
        st.warning(
            f"**Saved with a conflict.** While you were editing, revision {conflict['theirs']} "
            f"of this image was saved for reader {as_text(reader)} elsewhere (another tab) at "
            f"{conflict['theirs_time']}. Both are kept. Yours is revision {conflict['mine']} "
            f"({conflict['mine_count']} shape(s)) and is the one shown; the other has "
            f"{len(conflict['theirs_shapes'])} shape(s)."
        )
        k1, k2 = st.columns(2)
        if k1.button("Keep mine", key="annotate_conflict_keep"):
            st.session_state.pop("annotate_conflict")
            st.rerun()
        if k2.button(f"Use revision {conflict['theirs']} instead", key="annotate_conflict_theirs"):
            use_other_version(st.session_state.pop("annotate_conflict"))
            st.rerun()

# --- the annotator --------------------------------------------------------------------------

labels = list_labels(ws)
data = {
    "scope": scope_of(ws),
    "account": reader,
    "labels": [{"name": lb.name, "color": lb.color} for lb in labels],
    "label": labels[0].name if labels else "",
    "findings": [[k, v] for k, v in FINDING_NAMES.items()],
    "image": describe_image(ws, image_id, reader, order, "current"),
    "nav": {
        "prev": neighbour(order, image_id, -1) is not None,
        "next": neighbour(order, image_id, 1) is not None,
    },
    "handled": st.session_state.get("annotate_handled"),
    "reset": {
        "n": st.session_state.get("annotate_reset", 0),
        "image": st.session_state.get("annotate_reset_image"),
    },
}
# The neighbours in worklist order, prefetched: their pixels are prepared in the background
# and sent once ready (the browser asks again while `preparing` is set).
data["preparing"] = False
for name, step in (("next", 1), ("prev", -1)):
    other = neighbour(order, image_id, step)
    found = describe_image(ws, other, reader, order, name, wait=False) if other else None
    data[name] = found
    data["preparing"] |= other is not None and found is None
annotator(data, key=KEY, on_event=on_event)

# --- below the annotator: worklist order, labels ------------------------------------------------

with st.expander("Worklist order", expanded=False):
    oc1, oc2 = st.columns(2)
    oc1.selectbox("Order", list(WORKLIST_SORTS), key="annotate_sort")
    oc2.selectbox(
        "Status",
        ["", *STATUSES],
        format_func=lambda s: s or "any",
        key="annotate_status",
    )

if current_role() == "admin":
    with st.expander("Add a label (admin)"):
        new_name = st.text_input("Name", key="annotate_new_label")
        new_colour = st.color_picker("Colour", "#ff9500", key="annotate_new_colour")
        if st.button("Add label", key="annotate_add_label"):
            try:
                add_label(ws, new_name, new_colour, actor=reader)
                st.success(f"Label {as_text(new_name.strip())!r} added.")
                st.rerun()
            except (ValueError, PermissionError) as e:
                st.error(as_text(e))
