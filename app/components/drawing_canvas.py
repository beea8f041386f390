"""Mount streamlit-drawable-canvas 0.13 with the one setting its `st_canvas` wrapper forbids.

`st_canvas` forces live updates off in polygon mode, so an undo, redo or "delete selected"
made while the polygon tool is active never reaches Python until the next polygon is
closed — Save would then store a shape the reader has already undone. We mount the same
registered component (`streamlit_drawable_canvas.out`) with the same data contract, live
updates always on. The contract is that of 0.13.x (pinned in pyproject.toml); the
end-to-end tests exercise it in a real browser.
"""

from __future__ import annotations

import base64
from typing import Any

import streamlit_drawable_canvas as sdc

DRAWING_MODES = ("polygon", "rect", "line", "point", "circle", "freedraw")


def jpeg_data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def drawing_canvas(
    *,
    background_url: str,
    initial_drawing: dict[str, Any],
    drawing_mode: str,
    stroke_color: str,
    fill_color: str,
    stroke_width: float,
    width: int,
    height: int,
    key: str,
    point_display_radius: float = 4.0,
) -> dict[str, Any] | None:
    """The canvas's current Fabric JSON (``initial_drawing`` until the reader changes it).

    Change `key` whenever `initial_drawing` is rebuilt (other image, zoom or pan): a new
    key mounts a fresh canvas, so a drawing sent for the previous view is never read back
    against the new one.
    """
    if drawing_mode not in DRAWING_MODES:
        raise ValueError(f"drawing_mode must be one of {DRAWING_MODES}, got {drawing_mode!r}")
    base = {**initial_drawing, "background": ""}
    data = {
        "fillColor": fill_color,
        "strokeWidth": stroke_width,
        "strokeColor": stroke_color,
        "backgroundColor": "",
        "backgroundImageURL": background_url,
        "realtimeUpdateStreamlit": True,
        "canvasWidth": width,
        "canvasHeight": height,
        "drawingMode": drawing_mode,
        "initialDrawing": base,
        "displayRadius": point_display_radius,
        "returnImageData": False,
        "disabled": False,
        "backgroundImageFit": "stretch",
        "maxDisplayHeight": None,
        "fontSize": 20,
        "label": "",
    }
    result = sdc.out(
        data=data,
        key=key,
        default={"drawing": {"raw": base, "data": None}, "backgroundFit": None},
        on_drawing_change=lambda: None,
        on_backgroundFit_change=lambda: None,
        width="content",
        height="content",
    )
    drawing = result.get("drawing") or {"raw": base}
    return drawing.get("raw")
