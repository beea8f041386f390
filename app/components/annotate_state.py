"""State of the annotate page: the reader's draft of one image, and its canvas background.

A draft lives in `st.session_state` per (reader, image) and holds only JSON: the shapes as
stored (original-image pixels), the revision they were loaded from, the finding, and which
canvas "epoch" is mounted. The canvas itself is rebuilt from the draft only when the view
changes (image, zoom, pan) or a list action edits shapes; between those the canvas keeps
its own undo/redo history and the draft follows it. A session history of every state of the
shapes per (reader, image) gives undo/redo across those rebuilds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import astuple
from typing import Any

import cv2
import numpy as np
import streamlit as st

from annotations.canvas import LabelColours, Viewport, draw_overlay, render_viewport
from annotations.shapes import Shape, shape_from_dict, shape_to_dict
from core.imaging import Window, apply_window
from core.labels.catalog import image_info, image_pixels, presets
from core.labels.revisions import latest_finding, latest_revision
from core.workspace import Workspace

DRAFTS = "annotate_drafts"
OTHER_READERS_COLOUR = "#00e5ff"
_TOL = 1e-3


def draft_key(reader: str, image_id: int) -> str:
    return f"{reader}\x1f{image_id}"


def _saved_state(ws: Workspace, image_id: int, reader: str) -> dict[str, Any]:
    rev = latest_revision(ws, image_id, reader)
    return {
        "base_revision": rev.revision if rev else None,
        "saved_shapes": list(rev.shapes) if rev else [],
        "saved_finding": latest_finding(ws, image_id, reader),
    }


def next_epoch() -> int:
    """A number never used before in this session: canvas keys built from it are fresh, so
    a remounted canvas never returns a drawing sent for an earlier view."""
    st.session_state["annotate_epoch_seq"] = st.session_state.get("annotate_epoch_seq", 0) + 1
    return st.session_state["annotate_epoch_seq"]


def fresh_draft(ws: Workspace, image_id: int, reader: str) -> dict[str, Any]:
    saved = _saved_state(ws, image_id, reader)
    return {
        **saved,
        "key": draft_key(reader, image_id),
        "loaded": list(saved["saved_shapes"]),
        "shapes": list(saved["saved_shapes"]),
        "finding": saved["saved_finding"],
        "epoch": next_epoch(),
        "viewport": None,
        "colours": {},
        "open_polygons": 0,
        "problems": [],
    }


def get_draft(ws: Workspace, image_id: int, reader: str) -> dict[str, Any]:
    """This reader's draft of the image; a clean draft follows the newest saved revision."""
    drafts = st.session_state.setdefault(DRAFTS, {})
    key = draft_key(reader, image_id)
    draft = drafts.get(key)
    if draft is None:
        draft = drafts[key] = fresh_draft(ws, image_id, reader)
        return draft
    rev = latest_revision(ws, image_id, reader)
    newest = rev.revision if rev else None
    if newest != draft["base_revision"] and not is_dirty(draft):
        draft = drafts[key] = fresh_draft(ws, image_id, reader)
    draft["newest_revision"] = newest
    return draft


def drop_draft(reader: str, image_id: int) -> None:
    st.session_state.setdefault(DRAFTS, {}).pop(draft_key(reader, image_id), None)


def rebase(draft: dict[str, Any], shapes: list[dict] | None = None) -> None:
    """Remount the canvas from the draft's shapes (or `shapes`, an undoable change)."""
    if shapes is not None:
        set_shapes(draft, shapes)
    draft["loaded"] = list(draft["shapes"])
    draft["epoch"] = next_epoch()
    draft["open_polygons"] = 0


# --- undo / redo ------------------------------------------------------------------------------
# The canvas's own undo lives in the mounted canvas and ends when it is remounted (zoom, pan,
# a delete or clear from the shape list). This history belongs to (reader, image) for the
# whole session, across remounts, saves and a discarded draft: every state the shapes took.

HISTORY = "annotate_history"
HISTORY_LIMIT = 200


def _history(draft: dict[str, Any]) -> dict[str, list[list[dict]]]:
    return st.session_state.setdefault(HISTORY, {}).setdefault(
        draft["key"], {"undo": [], "redo": []}
    )


def set_shapes(draft: dict[str, Any], shapes: list[dict]) -> None:
    """Make `shapes` the draft's shapes; a real change can be undone (and ends the redos)."""
    if not same_shapes(shapes, draft["shapes"]):
        history = _history(draft)
        history["undo"].append(list(draft["shapes"]))
        del history["undo"][:-HISTORY_LIMIT]
        history["redo"].clear()
    draft["shapes"] = list(shapes)


def can_undo(draft: dict[str, Any]) -> bool:
    return bool(_history(draft)["undo"])


def can_redo(draft: dict[str, Any]) -> bool:
    return bool(_history(draft)["redo"])


def undo(draft: dict[str, Any], redo: bool = False) -> bool:
    """Step the shapes back (or forward with `redo`) one change and remount the canvas."""
    history = _history(draft)
    source, target = (
        (history["redo"], history["undo"]) if redo else (history["undo"], history["redo"])
    )
    if not source:
        return False
    target.append(list(draft["shapes"]))
    draft["shapes"] = source.pop()
    rebase(draft)
    return True


def _same_shape(a: dict, b: dict) -> bool:
    if (a.get("label"), a.get("shape_type")) != (b.get("label"), b.get("shape_type")):
        return False
    pa, pb = np.asarray(a.get("points") or [], float), np.asarray(b.get("points") or [], float)
    if pa.shape != pb.shape or (pa.size and np.abs(pa - pb).max() > _TOL):
        return False
    wa, wb = a.get("stroke_width"), b.get("stroke_width")
    return (wa is None) == (wb is None) and (wa is None or abs(wa - wb) <= _TOL)


def same_shapes(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(_same_shape(x, y) for x, y in zip(a, b, strict=True))


def is_dirty(draft: dict[str, Any]) -> bool:
    return (
        not same_shapes(draft["shapes"], draft["saved_shapes"])
        or draft["finding"] != draft["saved_finding"]
        or draft.get("open_polygons", 0) > 0
    )


def any_unsaved() -> bool:
    """True when any draft of this session (any reader, any image) has unsaved changes."""
    return any(is_dirty(d) for d in st.session_state.get(DRAFTS, {}).values())


def shapes_of(dicts: list[dict]) -> list[Shape]:
    return [shape_from_dict(d, i) for i, d in enumerate(dicts)]


def dicts_of(shapes: list[Shape]) -> list[dict]:
    return [shape_to_dict(s) for s in shapes]


def palette(draft: dict[str, Any], labels: list[tuple[str, str]]) -> LabelColours:
    """The draft's label colours, extended with new labels; fixed for the draft's lifetime
    so the canvas's stroke colours keep naming the same labels."""
    in_shapes = [(d["label"], "#ffcc00") for d in draft["shapes"] + draft["saved_shapes"]]
    colours = LabelColours(draft["colours"]).with_labels([*labels, *in_shapes])
    draft["colours"] = dict(colours.colours)
    return colours


# --- pixels and background ------------------------------------------------------------------


@st.cache_resource(max_entries=3, show_spinner=False)
def _pixels(root: str, image_id: int, _ws: Workspace) -> np.ndarray:
    # Shared read-only: cache_resource hands out the same array, no per-run copy.
    pixels = image_pixels(_ws, image_info(_ws, image_id))
    pixels.setflags(write=False)
    return pixels


@st.cache_data(max_entries=64, show_spinner=False)
def window_presets(root: str, image_id: int, _ws: Workspace) -> dict[str, tuple[float, float]]:
    info = image_info(_ws, image_id)
    found = presets(info, _pixels(root, image_id, _ws))
    return {name: (w.center, w.width) for name, w in found.items()}


@st.cache_data(max_entries=32, show_spinner=False)
def background_jpeg(
    root: str,
    image_id: int,
    window: tuple[float, float],
    viewport: tuple,
    overlay_key: str,
    _ws: Workspace,
    _overlay: list[dict],
) -> bytes:
    """The canvas background: the viewport's crop, windowed, sized to the canvas, with other
    readers' shapes burned in (read-only by construction). JPEG keeps reruns light."""
    vp = Viewport(*viewport)
    x0, y0, x1, y1 = vp.crop
    region = _pixels(root, image_id, _ws)[y0:y1, x0:x1]
    u8 = apply_window(region, Window(*window))
    local = Viewport(vp.region_width, vp.region_height, 0, 0, *astuple(vp)[4:])
    canvas = render_viewport(u8, local)
    if _overlay:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)
        draw_overlay(canvas, shapes_of(_overlay), vp, OTHER_READERS_COLOUR)
        canvas = cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError("could not encode the canvas background")
    return buf.tobytes()


def overlay_key(shapes: list[dict]) -> str:
    return hashlib.sha1(json.dumps(shapes, sort_keys=True).encode()).hexdigest()
