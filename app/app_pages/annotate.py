"""Annotate: draw, edit and save polygon, box, polyline and point labels on one X-ray.

The canvas shows a windowed, downscaled (or, zoomed, cropped) rendition; everything saved is
in original-image pixels (annotations.canvas does the conversion). Each Save is a new,
append-only revision for the current reader.
"""

from __future__ import annotations

import html

import streamlit as st
from components.annotate_state import (
    OTHER_READERS_COLOUR,
    any_unsaved,
    background_jpeg,
    can_redo,
    can_undo,
    dicts_of,
    drop_draft,
    get_draft,
    is_dirty,
    overlay_key,
    palette,
    rebase,
    set_shapes,
    shapes_of,
    undo,
    window_presets,
)
from components.drawing_canvas import drawing_canvas, jpeg_data_url
from components.leave_guard import leave_guard
from ui_state import as_text, reader_name, workspace

from annotations.canvas import (
    TYPE_FILL_ALPHA,
    fabric_to_shapes,
    fit_viewport,
    rgba,
    shapes_to_fabric,
)
from core.labels.catalog import (
    WORKLIST_SORTS,
    WorklistFilter,
    find_image,
    image_info,
    worklist_ids,
)
from core.labels.drafts import DraftRefused, save_draft
from core.labels.readers import add_label, list_labels, list_readers
from core.labels.revisions import latest_by_reader, save_revision
from core.vocab import FINDINGS, STATUSES

ws = workspace()
reader = reader_name()
CANVAS_BOX = (820, 820)
TOOLS = {
    "Polygon": ("polygon", "polygon"),
    "Box": ("rect", "rectangle"),
    "Polyline": ("polygon", "linestrip"),
    "Point": ("point", "point"),
}
TOOL_HELP = {
    "Polygon": "Click each vertex; click the **first** vertex again to close the polygon.",
    "Box": "Press, drag and release to draw a box.",
    "Polyline": "Click each point; click the **first** point again to finish. The closing "
    "segment is not stored: it is an open line of the width set below.",
    "Point": "Click to place a point.",
}
FINDING_NAMES = {"": "not set", **FINDINGS}
ZOOMS = {"1x": 1.0, "2x": 2.0, "4x": 4.0}

st.title("Annotate")


def flash(kind: str, text: str) -> None:
    """A message kept until the reader's next action (the canvas reruns the page on its own
    when it mounts, so a message shown only once would vanish before it is read)."""
    st.session_state.setdefault("annotate_flash", []).append((kind, text))


def clear_flash() -> None:
    st.session_state.pop("annotate_flash", None)


for kind, text in st.session_state.get("annotate_flash", []):
    getattr(st, kind)(text)

# --- which image, in worklist order ---------------------------------------------------------

with st.expander("Worklist order", expanded=False):
    oc1, oc2 = st.columns(2)
    sort = oc1.selectbox("Order", list(WORKLIST_SORTS), key="annotate_sort")
    status = oc2.selectbox(
        "Status",
        ["", *STATUSES],
        format_func=lambda s: s or "any",
        key="annotate_status",
    )
order = worklist_ids(ws, WorklistFilter(status=status or None, sort=sort))
if not order:
    st.info("No images to annotate here. Import X-rays first, or change the worklist filter.")
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
        message = f"{reason[:1].upper()}{reason[1:]}; showing the first image of the worklist."
        flash("warning", message)  # for the reruns to come
        st.warning(message)  # this run drew the flashed messages before it knew of this one
image_id = st.session_state.get("annotate_image_id")
if image_id is None:
    image_id = st.session_state["annotate_image_id"] = order[0]
try:
    info = image_info(ws, image_id)
except KeyError:
    st.session_state["annotate_image_id"] = order[0]
    st.rerun()
if st.query_params.get("image") != str(image_id):
    st.query_params["image"] = str(image_id)
    st.session_state["annotate_query_seen"] = str(image_id)

draft = get_draft(ws, image_id, reader)
position = order.index(image_id) if image_id in order else None


def go(target: int | None) -> None:
    """Move to `target`, warning first if this image has unsaved changes."""
    clear_flash()
    if target is None:
        flash("info", "That was the end of the worklist.")
        return
    if is_dirty(draft):
        st.session_state["annotate_pending"] = target
        return
    st.session_state["annotate_image_id"] = target


def neighbour(step: int) -> int | None:
    if position is None:
        return order[0] if order else None
    i = position + step
    return order[i] if 0 <= i < len(order) else None


# --- save -------------------------------------------------------------------------------------


def save() -> bool:
    """Store the draft as a new revision (and the finding). False, with a message, if not."""
    clear_flash()
    try:
        saved = save_draft(
            ws,
            image_id,
            reader,
            draft["shapes"],
            draft["finding"],
            base_revision=draft["base_revision"],
            saved_finding=draft["saved_finding"],
            changed=is_dirty(draft),
            open_shapes=bool(draft.get("open_polygons")),
            problems=draft.get("problems") or (),
        )
    except DraftRefused as e:
        st.session_state["annotate_error"] = str(e)
        return False
    rev = saved.revision
    if rev is None:
        flash("info", f"Nothing changed since your revision {draft['base_revision']}.")
        return True
    flash("success", f"Saved revision {rev.revision} ({len(rev.shapes)} shape(s)).")
    if saved.clipped:
        flash(
            "info", f"Shape(s) {saved.clipped} reached past the image edge and were clipped to it."
        )
    if saved.conflict is not None:
        c = saved.conflict
        st.session_state["annotate_conflict"] = {
            "image_id": image_id,
            "reader": reader,
            "mine": rev.revision,
            "theirs": c.revision,
            "theirs_time": f"{c.created_at:%H:%M:%S}",
            "theirs_shapes": c.shapes,
            "mine_count": len(rev.shapes),
        }
    drop_draft(reader, image_id)
    return True


def use_other_version(conflict: dict) -> None:
    result = save_revision(
        ws, conflict["image_id"], conflict["reader"], conflict["theirs_shapes"],
        based_on=conflict["mine"], tool="canvas",
    )  # fmt: skip
    drop_draft(conflict["reader"], conflict["image_id"])
    flash(
        "success", f"Revision {conflict['theirs']} restored as revision {result.revision.revision}."
    )


# --- messages that need a choice ------------------------------------------------------------

error = st.session_state.pop("annotate_error", None)
if error:
    st.error(error)

conflict = st.session_state.get("annotate_conflict")
if conflict and conflict["image_id"] == image_id and conflict["reader"] == reader:
    with st.container(border=True):
        st.warning(
            f"**Saved with a conflict.** While you were editing, revision {conflict['theirs']} "
            f"of this image was saved for reader {reader} elsewhere (another tab) at "
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

pending = st.session_state.get("annotate_pending")
if pending is not None:
    with st.container(border=True):
        st.warning("This image has unsaved changes. Save them before leaving?")
        p1, p2, p3 = st.columns(3)
        if p1.button("Save and go", type="primary", key="annotate_pending_save"):
            st.session_state.pop("annotate_pending")
            if save():
                st.session_state["annotate_image_id"] = pending
            st.rerun()
        if p2.button("Discard changes and go", key="annotate_pending_discard"):
            st.session_state.pop("annotate_pending")
            drop_draft(reader, image_id)
            st.session_state["annotate_image_id"] = pending
            st.rerun()
        if p3.button("Stay", key="annotate_pending_stay"):
            st.session_state.pop("annotate_pending")
            st.rerun()

# --- controls -------------------------------------------------------------------------------

where = f"image {position + 1} of {len(order)}" if position is not None else "not in this order"
st.caption(
    f"**{info.display_name}** · {info.width}×{info.height} px · {info.modality} · {where} · "
    f"reader **{as_text(reader)}**"
    + (
        f" · your revision {draft['base_revision']}"
        if draft["base_revision"]
        else " · not saved yet"
    )
)

left, right = st.columns([3, 1], gap="medium")
labels = list_labels(ws)
colours = palette(draft, [(lb.name, lb.color) for lb in labels])
readers = {r.name: r.role for r in list_readers(ws)}

with right:
    label = st.selectbox("Label", [lb.name for lb in labels], key="annotate_label")
    st.markdown(
        f"<span style='color:{colours.colour(label)}'>■</span> new shapes get this label",
        unsafe_allow_html=True,
    )
    if readers.get(reader) == "admin":
        with st.expander("Add a label (admin)"):
            new_name = st.text_input("Name", key="annotate_new_label")
            new_colour = st.color_picker("Colour", "#ff9500", key="annotate_new_colour")
            if st.button("Add label", key="annotate_add_label"):
                try:
                    add_label(ws, new_name, new_colour)
                    flash("success", f"Label {new_name.strip()!r} added.")
                    st.rerun()
                except ValueError as e:
                    st.error(str(e))
    tool = st.radio("Tool", list(TOOLS), horizontal=True, key="annotate_tool")
    st.caption(TOOL_HELP[tool])
    line_width = st.number_input(
        "Polyline width (image pixels)", 1.0, 500.0, 10.0, 1.0, key="annotate_line_width",
        disabled=tool != "Polyline",
    )  # fmt: skip
    st.caption(
        "Edit, move or delete: hover the canvas and click ✎ (Edit) in its toolbar, click a "
        "shape to select it (drag to move), click it again to drag its vertices; ✕ deletes "
        "the selected shape. The toolbar's undo/redo work within the current view; the "
        "buttons below go through every change to this image's shapes (also deletes, "
        "clears and edits at another zoom, and past a save)."
    )
    u1, u2 = st.columns(2)
    if u1.button("↶ Undo", key="annotate_undo", disabled=not can_undo(draft)):
        undo(draft)
        st.rerun()
    if u2.button("↷ Redo", key="annotate_redo", disabled=not can_redo(draft)):
        undo(draft, redo=True)
        st.rerun()
    zoom_name = st.radio("Zoom", list(ZOOMS), horizontal=True, key="annotate_zoom")
    zoom = ZOOMS[zoom_name]
    pan_x = pan_y = 0.5
    if zoom > 1:
        pan_x = st.slider("Pan left ↔ right", 0.0, 1.0, 0.5, 0.01, key="annotate_pan_x")
        pan_y = st.slider("Pan top ↕ bottom", 0.0, 1.0, 0.5, 0.01, key="annotate_pan_y")

    found = window_presets(str(ws.root), image_id, ws)
    wc_key, ww_key = f"annotate_wc_{image_id}", f"annotate_ww_{image_id}"
    if wc_key not in st.session_state:
        st.session_state[wc_key], st.session_state[ww_key] = found["default"]

    def apply_preset() -> None:
        name = st.session_state[f"annotate_preset_{image_id}"]
        st.session_state[wc_key], st.session_state[ww_key] = found[name]

    st.selectbox(
        "Window preset", list(found), key=f"annotate_preset_{image_id}", on_change=apply_preset
    )
    lo, hi = float(info.value_min), float(info.value_max)
    span = max(hi - lo, 1.0)
    step = max(span / 1000.0, 0.01) if span > 255 else 1.0
    st.session_state[wc_key] = min(max(float(st.session_state[wc_key]), lo), hi)
    st.session_state[ww_key] = min(max(float(st.session_state[ww_key]), 1.0), span * 2)
    center = st.slider("Level (window centre)", lo, hi, step=step, key=wc_key)
    width = st.slider("Window width", 1.0, span * 2, step=step, key=ww_key)
    show_others = st.checkbox(
        "Show other readers' shapes (read-only)", value=True, key="annotate_show_others"
    )

    finding_options = list(FINDING_NAMES)
    finding_key = f"annotate_finding_{reader}_{image_id}_{draft['epoch']}"
    if finding_key not in st.session_state:
        st.session_state[finding_key] = draft["finding"] or ""
    chosen = st.radio(
        "Image-level finding", finding_options, format_func=FINDING_NAMES.get, key=finding_key
    )
    draft["finding"] = chosen or None

# --- canvas ---------------------------------------------------------------------------------

vp = fit_viewport((info.width, info.height), CANVAS_BOX, zoom, (pan_x, pan_y))
vp_tuple = (
    vp.image_width, vp.image_height, vp.left, vp.top,
    vp.region_width, vp.region_height, vp.canvas_width, vp.canvas_height,
)  # fmt: skip
if draft["viewport"] != list(vp_tuple):
    if draft["viewport"] is not None:
        rebase(draft)
    draft["viewport"] = list(vp_tuple)

others = {n: r for n, r in latest_by_reader(ws, image_id).items() if n != reader and r.shapes}
overlay = [d for r in others.values() for d in r.shapes] if show_others else []
jpeg = background_jpeg(
    str(ws.root), image_id, (float(center), float(width)), vp_tuple, overlay_key(overlay),
    ws, overlay,
)  # fmt: skip

mode, shape_type = TOOLS[tool]
colour = colours.colour(label)
loaded = shapes_of(draft["loaded"])
initial = shapes_to_fabric(loaded, vp, colours)
with left:
    drawing = drawing_canvas(
        background_url=jpeg_data_url(jpeg),
        initial_drawing=initial,
        drawing_mode=mode,
        stroke_color=colour,
        fill_color=rgba(colour, TYPE_FILL_ALPHA[shape_type]),
        stroke_width=line_width * vp.scale if shape_type == "linestrip" else 2.0,
        width=vp.canvas_width,
        height=vp.canvas_height,
        key=f"annotate_canvas_{reader}_{image_id}_{draft['epoch']}",
    )
    if drawing is not None and drawing.get("objects") != initial["objects"]:
        readout = fabric_to_shapes(drawing, vp, colours, loaded)
        set_shapes(draft, dicts_of(readout.shapes))
        draft["open_polygons"] = readout.open_polygons
        draft["problems"] = readout.problems
    if others:
        names = ", ".join(f"{as_text(html.escape(n))} ({len(r.shapes)})" for n, r in others.items())
        shown = "shown" if show_others else "hidden"
        st.markdown(
            f"<span style='color:{OTHER_READERS_COLOUR}'>■</span> other readers, read-only "
            f"({shown}): {names}",
            unsafe_allow_html=True,
        )
    if zoom > 1:
        x0, y0, x1, y1 = vp.crop
        st.caption(f"Showing x {x0}–{x1}, y {y0}–{y1} of the image at {zoom_name}.")

    dirty = is_dirty(draft)
    if draft.get("open_polygons"):
        st.info("A polygon is still open: click its first point to close it.")
    newest = draft.get("newest_revision")
    if dirty and newest != draft["base_revision"]:
        st.warning(
            f"Revision {newest} was saved elsewhere since you opened this image. Saving keeps "
            "both; yours becomes the newest."
        )
    st.caption("● Unsaved changes" if dirty else "All changes saved")
    b1, b2, b3, b4 = st.columns(4)
    if b1.button("← Previous", key="annotate_prev", disabled=neighbour(-1) is None):
        go(neighbour(-1))
        st.rerun()
    if b2.button("Skip →", key="annotate_skip"):
        go(neighbour(1))
        st.rerun()
    if b3.button("Save", key="annotate_save", type="primary"):
        save()
        st.rerun()
    if b4.button("Save & next", key="annotate_save_next", type="primary"):
        if save():
            target = neighbour(1)
            if target is None:
                flash("info", "That was the last image of the worklist.")
            else:
                st.session_state["annotate_image_id"] = target
        st.rerun()

# --- shape list: delete, relabel, clear -------------------------------------------------------

with right, st.expander(f"Shapes ({len(draft['shapes'])})", expanded=False):
    label_names = [lb.name for lb in labels]
    for i, d in enumerate(draft["shapes"]):
        c1, c2 = st.columns([3, 1])
        options = label_names if d["label"] in label_names else [d["label"], *label_names]
        new = c1.selectbox(
            f"#{i + 1} {d['shape_type']} · {len(d['points'])} pt",
            options,
            index=options.index(d["label"]),
            key=f"annotate_shape_label_{draft['epoch']}_{i}",
        )
        if new != d["label"]:
            rebase(draft, [*draft["shapes"][:i], {**d, "label": new}, *draft["shapes"][i + 1 :]])
            st.rerun()
        if c2.button("🗑", key=f"annotate_shape_del_{draft['epoch']}_{i}", help="Delete this shape"):
            rebase(draft, draft["shapes"][:i] + draft["shapes"][i + 1 :])
            st.rerun()
    if draft["shapes"] and st.button("Clear all shapes", key="annotate_clear"):
        rebase(draft, [])
        st.rerun()

# Closing or reloading the tab would lose every unsaved draft of this session: the browser asks.
leave_guard(any_unsaved())
