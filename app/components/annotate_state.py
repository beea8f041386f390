"""The annotate page's server side: what the browser's annotator is sent for one image, and
what Python does with the annotator's events (autosave a draft, save a revision, move on).

Everything here is JSON in and out; the drawing itself lives in the browser
(app/components/annotator). Drafts are kept on the server (core.labels.drafts), never only
in the Streamlit session, so a reload, a closed tab or an app restart loses nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from core.imaging import Window
from core.imaging.webview import WebImage, encode_web_png, viewer_window
from core.labels.catalog import ImageInfo, image_info, image_pixels, presets
from core.labels.drafts import (
    DraftRefused,
    discard_draft,
    load_draft,
    save_draft,
    store_draft,
)
from core.labels.revisions import labels_visible_to, latest_finding, latest_revision
from core.vocab import MODEL_ORIGINS
from core.workspace import Workspace

WINDOW_NAMES = ("auto", "lung", "soft tissue", "bone", "full range", "header")


# --- pixels as the browser gets them ----------------------------------------------------------


_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotator-prefetch")
_BUILT: OrderedDict[tuple[str, int], Future] = OrderedDict()
_BUILT_LOCK = threading.Lock()
_KEEP = 8


def _build(ws: Workspace, image_id: int) -> tuple[WebImage, dict]:
    info = image_info(ws, image_id)
    pixels = image_pixels(ws, info)
    web = encode_web_png(pixels, info.value_min, info.value_max)
    found = presets(info, pixels)
    header = (
        Window(info.window_center, info.window_width)
        if info.window_center is not None and info.window_width
        else None
    )
    windows = {
        "auto": viewer_window(info.modality, pixels, header, found["default"]),
        "lung": found["lung"],
        "soft tissue": found["soft tissue"],
        "bone": found["bone"],
        "full range": found["full range"],
    }
    if header is not None:
        windows["header"] = header
    out = {k: {"center": float(w.center), "width": float(w.width)} for k, w in windows.items()}
    return web, out


def web_image(ws: Workspace, image_id: int, wait: bool = True) -> tuple[WebImage, dict] | None:
    """The image's 16-bit PNG and its windows (modality units), built once per image (in a
    background thread for the neighbours: None until it is ready when `wait` is False)."""
    key = (str(ws.root), image_id)
    with _BUILT_LOCK:
        future = _BUILT.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = _BUILT[key] = _POOL.submit(_build, ws, image_id)
        _BUILT.move_to_end(key)
        while len(_BUILT) > _KEEP:
            _BUILT.popitem(last=False)
    if not wait and not future.done():
        return None
    return future.result()


def media_url(png: bytes, image_id: int, slot: str) -> str:
    """A URL this server answers with `png` for as long as this run's page shows it."""
    from streamlit import runtime

    if not runtime.exists():  # bare mode (no server): inline it
        import base64

        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    manager = runtime.get_instance().media_file_mgr
    return manager.add(png, "image/png", f"pneumolab.annotator.{slot}.{image_id}")


# --- what the annotator is sent for one image ---------------------------------------------------


def _shape_list(value: Any) -> list[dict] | None:
    if not isinstance(value, list):
        return None
    ok = all(
        isinstance(s, dict) and isinstance(s.get("points"), list) and "shape_type" in s
        for s in value
    )
    return value if ok else None


def start_state(ws: Workspace, image_id: int, reader: str) -> dict[str, Any]:
    """What the reader opens: their autosaved draft if there is one, else their newest
    revision; with the revision and finding as saved (to tell what is unsaved)."""
    rev = latest_revision(ws, image_id, reader)
    saved_shapes = list(rev.shapes) if rev else []
    saved_finding = latest_finding(ws, image_id, reader)
    state = {
        "source": "revision" if rev else "none",
        "shapes": saved_shapes,
        "finding": saved_finding,
        "base_revision": rev.revision if rev else None,
        "saved_shapes": saved_shapes,
        "saved_finding": saved_finding,
        "draft_time": 0,
    }
    draft = load_draft(ws, image_id, reader)
    shapes = _shape_list(draft.get("shapes")) if draft else None
    if draft is not None and shapes is not None:
        when = draft.get("time") if isinstance(draft.get("time"), int | float) else 0
        base = draft.get("base_revision")
        state.update(
            source="draft",
            shapes=shapes,
            finding=draft.get("finding") if isinstance(draft.get("finding"), str) else None,
            base_revision=base if isinstance(base, int) else None,
            draft_time=when,
            draft_when=f"{datetime.fromtimestamp(when / 1000):%H:%M:%S}" if when else "earlier",
        )
    return state


def model_marks(rev, reader: str) -> list[dict]:
    """The model-made shapes of a revision, with the words of their tooltip."""
    if rev is None or rev.origin not in MODEL_ORIGINS or not rev.shapes:
        return []
    model = f"model v{rev.model_version_id}" if rev.model_version_id is not None else "a model"
    if rev.origin == "accepted":
        text = f"from {model}, accepted by {reader}"
    else:
        text = f"prediction of {model}, not yet corrected"
    return [{"text": text, "shapes": list(rev.shapes)}]


def describe_image(
    ws: Workspace, image_id: int, reader: str, order: list[int], slot: str, wait: bool = True
) -> dict[str, Any] | None:
    """Everything the annotator needs to show and edit one image (None while its pixels are
    still being prepared, when `wait` is False)."""
    info: ImageInfo = image_info(ws, image_id)
    built = web_image(ws, image_id, wait)
    if built is None:
        return None
    web, windows = built
    position = order.index(image_id) if image_id in order else None
    where = f"image {position + 1} of {len(order)}" if position is not None else "not in this order"
    start = start_state(ws, image_id, reader)
    latest = labels_visible_to(ws, image_id, reader)  # others' only where allowed
    mine = latest.get(reader)
    others = [
        {
            "reader": name,
            "shapes": list(r.shapes),
            "note": r.provenance if r.origin in MODEL_ORIGINS else "",
        }
        for name, r in latest.items()
        if name != reader and r.shapes
    ]
    values = [float(info.value_min), float(info.value_max)]
    return {
        "id": image_id,
        "url": media_url(web.png, image_id, slot),
        "width": info.width,
        "height": info.height,
        "offset": web.offset,
        "scale": web.scale,
        "lo": min(values),
        "hi": max(values),
        "windows": windows,
        "caption": f"{info.display_name} · {info.width}×{info.height} px · {info.modality} · "
        f"{where} · reader {reader}"
        + (
            f" · your revision {start['base_revision']}"
            if start["base_revision"]
            else " · not saved yet"
        ),
        "start": start,
        "newest_revision": mine.revision if mine else None,
        "others": others,
        "model": model_marks(mine, reader),
    }


def neighbour(order: list[int], image_id: int, step: int) -> int | None:
    if image_id not in order:
        return order[0] if order else None
    i = order.index(image_id) + step
    return order[i] if 0 <= i < len(order) else None


def scope_of(ws: Workspace) -> str:
    """A short token naming this workspace in the browser's storage keys."""
    return hashlib.sha1(str(ws.root.resolve()).encode()).hexdigest()[:10]


# --- what Python does with the annotator's events -----------------------------------------------


def _draft_of(event: dict) -> dict | None:
    draft = event.get("draft")
    if not isinstance(draft, dict) or _shape_list(draft.get("shapes")) is None:
        return None
    return draft


def handle_event(ws: Workspace, reader: str, event: Any, order: list[int]) -> dict[str, Any]:
    """Do what the browser asked; the answer goes back as the next run's ``handled``:
    ``{seq, ok, kind, message, revision, draft_ok, goto, conflict}``. An account that may
    not label gets the reason as the message; nothing is stored."""
    try:
        return _handle(ws, reader, event, order)
    except PermissionError as e:
        seq = event.get("seq") if isinstance(event, dict) else -1
        return {"seq": seq, "ok": False, "draft_ok": False, "kind": "error", "message": str(e)}


def _handle(ws: Workspace, reader: str, event: Any, order: list[int]) -> dict[str, Any]:
    if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
        return {"seq": -1, "ok": False, "kind": "error", "message": "Unreadable request."}
    seq, kind = event["seq"], event.get("kind")
    image_id = event.get("image_id")
    out: dict[str, Any] = {"seq": seq, "ok": True, "kind": "info", "message": ""}
    if not isinstance(image_id, int):
        return {**out, "ok": False, "kind": "error", "message": "No image named."}
    draft = _draft_of(event)
    if kind in ("draft", "go") and draft is not None:
        try:
            if event.get("clean"):
                discard_draft(ws, image_id, reader)
            else:
                other = load_draft(ws, image_id, reader)
                store_draft(ws, image_id, reader, draft)
                if other and other.get("tab") not in (None, draft.get("tab")):
                    out.update(
                        kind="warning",
                        message="This image is open in another tab of yours too. Saving "
                        "from both keeps both as revisions; you then choose which stays current.",
                    )
        except DraftRefused as e:
            out.update(draft_ok=False, ok=False, kind="error", message=str(e))
    if kind == "go":
        step = 1 if event.get("to") == "next" else -1
        target = neighbour(order, image_id, step)
        if target is None:
            out.update(message="That was the end of the worklist." if step > 0 else "")
        out["goto"] = target
    elif kind == "save":
        out.update(_save(ws, reader, image_id, event))
        if out["ok"] and event.get("then") in ("next", "prev"):
            step = 1 if event["then"] == "next" else -1
            out["goto"] = neighbour(order, image_id, step)
    elif kind == "discard":
        discard_draft(ws, image_id, reader)
    return out


def _save(ws: Workspace, reader: str, image_id: int, event: dict) -> dict[str, Any]:
    shapes = _shape_list(event.get("shapes"))
    if shapes is None:
        return {"ok": False, "kind": "error", "message": "Not saved: the shapes were unreadable."}
    finding = event.get("finding") if isinstance(event.get("finding"), str) else None
    base = event.get("base_revision") if isinstance(event.get("base_revision"), int) else None
    saved_finding = event.get("saved_finding")
    try:
        saved = save_draft(
            ws,
            image_id,
            reader,
            shapes,
            finding,
            base_revision=base,
            saved_finding=saved_finding if isinstance(saved_finding, str) else None,
            changed=bool(event.get("changed", True)),
        )
    except DraftRefused as e:
        # The work stays in the browser and in the autosaved draft.
        draft = _draft_of(event)
        if draft is not None:
            store_draft(ws, image_id, reader, draft)
        return {"ok": False, "kind": "error", "message": str(e)}
    discard_draft(ws, image_id, reader)
    rev = saved.revision
    if rev is None:
        return {
            "ok": True,
            "message": f"Nothing changed since your revision {base}.",
            "revision": base,
        }
    message = f"Saved revision {rev.revision} ({len(rev.shapes)} shape(s))."
    if saved.clipped:
        message += f" Shape(s) {saved.clipped} reached past the image edge and were clipped to it."
    out: dict[str, Any] = {
        "ok": True,
        "kind": "success",
        "message": message,
        "revision": rev.revision,
    }
    if saved.conflict is not None:
        c = saved.conflict
        out["conflict"] = {
            "image_id": image_id,
            "reader": reader,
            "mine": rev.revision,
            "theirs": c.revision,
            "theirs_time": f"{c.created_at:%H:%M:%S}",
            "theirs_shapes": c.shapes,
            "mine_count": len(rev.shapes),
        }
        out["kind"] = "warning"
        out["message"] = message + " Saved with a conflict: see the message above the image."
    return out
