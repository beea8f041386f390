"""The one place that converts between drawing-canvas objects and shapes in image pixels.

The annotate page draws on streamlit-drawable-canvas (Fabric.js 7). The canvas shows a
*viewport* of the image: the whole image downscaled at 1x, or a crop of it when zoomed. Its
objects live in canvas pixels and carry Fabric's own transform (left/top at an origin,
scaleX/scaleY, angle, skew, flip; polygon points relative to their bounding-box centre,
``pathOffset``). Everything stored is in original-image pixels, so every conversion goes
through `Viewport` and the functions here, in both directions:

- `shapes_to_fabric`: stored shapes -> the canvas's ``initial_drawing`` for this viewport.
- `fabric_to_shapes`: the canvas's ``json_data`` -> shapes in original pixels.

Fabric serialises no custom properties on plain shapes, so two of its inert style fields
carry our data through the browser and back:

- the stroke colour names the label (`LabelColours` gives every label a distinct colour);
- the fill's alpha names the shape type (`TYPE_FILL_ALPHA`), e.g. a polyline is drawn with
  the polygon tool but a transparent fill;
- ``strokeDashOffset`` (meaningless while ``strokeDashArray`` is unset) carries the 1-based
  index of the loaded shape, so group ids, descriptions and flags survive editing.

Pure Python + numpy/OpenCV: no streamlit, torch or sqlalchemy here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from annotations.shapes import Shape

# Fill alpha per shape type. Types drawn by the same Fabric class need distinct values.
TYPE_FILL_ALPHA: dict[str, float] = {
    "polygon": 0.22,
    "rectangle": 0.12,
    "oriented_rectangle": 0.16,
    "circle": 0.18,
    "point": 1.0,
    "linestrip": 0.0,
    "line": 0.0,
}
OUTLINE_WIDTH = 2.0  # canvas pixels: the outline of polygons, boxes and circles on screen
POINT_RADIUS = 4.0  # canvas pixels: how big a point is drawn
_ORIGIN = {"left": -0.5, "top": -0.5, "center": 0.0, "bottom": 0.5, "right": 0.5}
_COORD_DECIMALS = 3


# --- viewport -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewport:
    """The part of the image the canvas shows: canvas pixel (cx, cy) is image pixel
    (left + cx / scale_x, top + cy / scale_y). Continuous coordinates, pixel i spans [i, i+1).
    """

    image_width: int
    image_height: int
    left: int
    top: int
    region_width: int
    region_height: int
    canvas_width: int
    canvas_height: int

    @property
    def scale_x(self) -> float:
        return self.canvas_width / self.region_width

    @property
    def scale_y(self) -> float:
        return self.canvas_height / self.region_height

    @property
    def scale(self) -> float:
        """One number for lengths (stroke widths, radii): the geometric mean of both axes."""
        return math.sqrt(self.scale_x * self.scale_y)

    @property
    def zoom(self) -> float:
        return self.image_width / self.region_width

    def to_canvas(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.left) * self.scale_x, (y - self.top) * self.scale_y

    def to_image(self, cx: float, cy: float) -> tuple[float, float]:
        return self.left + cx / self.scale_x, self.top + cy / self.scale_y

    @property
    def crop(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the shown region in image pixels, end-exclusive."""
        return self.left, self.top, self.left + self.region_width, self.top + self.region_height


def fit_viewport(
    image_size: tuple[int, int],
    max_canvas: tuple[int, int],
    zoom: float = 1.0,
    centre: tuple[float, float] = (0.5, 0.5),
) -> Viewport:
    """The viewport showing 1/zoom of the image around `centre` (fractions of width/height).

    The canvas keeps the size of the whole image fitted into `max_canvas` at every zoom, so
    zooming in magnifies instead of resizing the page. The region is whole pixels (an exact
    crop) and is kept inside the image, so panning stops at the borders.
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    if zoom < 1:
        raise ValueError(f"zoom must be at least 1, got {zoom}")
    fit = min(max_canvas[0] / width, max_canvas[1] / height)
    canvas_w, canvas_h = max(1, round(width * fit)), max(1, round(height * fit))
    region_w = min(width, max(1, round(width / zoom)))
    region_h = min(height, max(1, round(height / zoom)))
    left = round(centre[0] * width - region_w / 2)
    top = round(centre[1] * height - region_h / 2)
    left = min(max(left, 0), width - region_w)
    top = min(max(top, 0), height - region_h)
    return Viewport(width, height, left, top, region_w, region_h, canvas_w, canvas_h)


def render_viewport(image: np.ndarray, vp: Viewport) -> np.ndarray:
    """Crop `image` (full resolution, any dtype OpenCV resizes) to the viewport and resize
    it to the canvas: area averaging when shrinking, bilinear when magnifying."""
    import cv2

    x0, y0, x1, y1 = vp.crop
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    if region.shape[1] == vp.canvas_width and region.shape[0] == vp.canvas_height:
        return region
    shrink = vp.canvas_width < vp.region_width
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(region, (vp.canvas_width, vp.canvas_height), interpolation=interp)


# --- colours ----------------------------------------------------------------------------------

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_RGBA = re.compile(r"^rgba?\(([^)]*)\)$")


def parse_colour(value: Any) -> tuple[tuple[int, int, int], float] | None:
    """(rgb, alpha) of a CSS '#rrggbb', 'rgb(...)' or 'rgba(...)' string, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "")
    m = _HEX.match(text)
    if m:
        h = m.group(1)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)), 1.0
    m = _RGBA.match(text)
    if m:
        parts = m.group(1).split(",")
        try:
            rgb = tuple(int(round(float(p))) for p in parts[:3])
            alpha = float(parts[3]) if len(parts) > 3 else 1.0
        except ValueError:
            return None
        if len(rgb) == 3:
            return (rgb[0], rgb[1], rgb[2]), alpha
    return None


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def rgba(colour: str, alpha: float) -> str:
    """CSS rgba() of a '#rrggbb' colour with the given alpha."""
    parsed = parse_colour(colour)
    if parsed is None:
        raise ValueError(f"colour {colour!r} is not of the form #RRGGBB")
    r, g, b = parsed[0]
    return f"rgba({r}, {g}, {b}, {alpha:g})"


@dataclass(frozen=True)
class LabelColours:
    """A distinct canvas colour per label, so a canvas object's stroke names its label.

    Two labels of the same colour get colours one step apart (invisible to the eye), in the
    order given; build it from the same ordered label list on both sides of a round trip.
    """

    colours: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, labels: Iterable[tuple[str, str]]) -> LabelColours:
        used: set[tuple[int, int, int]] = set()
        out: dict[str, str] = {}
        for name, colour in labels:
            if name in out:
                continue
            parsed = parse_colour(colour)
            rgb = parsed[0] if parsed else (255, 204, 0)
            step = 0
            while rgb in used:
                step += 1
                rgb = (rgb[0], rgb[1], (rgb[2] + (3 if rgb[2] < 128 else -3)) % 256)
                if step > 80:  # pathological palettes: walk the green channel too
                    rgb = ((rgb[0] + 7) % 256, (rgb[1] + 5) % 256, rgb[2])
            used.add(rgb)
            out[name] = _hex(rgb)
        return cls(out)

    def with_labels(self, labels: Iterable[tuple[str, str]]) -> LabelColours:
        """This palette plus any labels it lacks, appended: colours already given never change,
        so objects drawn before a label was added keep reading back as their label."""
        extra = [(n, c) for n, c in labels if n not in self.colours]
        if not extra:
            return self
        return LabelColours.build([*self.colours.items(), *extra])

    def colour(self, label: str) -> str:
        try:
            return self.colours[label]
        except KeyError:
            raise KeyError(f"label {label!r} has no canvas colour; add it to the palette") from None

    def label(self, colour: Any) -> str | None:
        """The label whose colour is nearest to `colour` (None for an empty palette)."""
        parsed = parse_colour(colour)
        if not self.colours:
            return None
        if parsed is None:
            return next(iter(self.colours))
        rgb = np.array(parsed[0], dtype=float)

        def dist(item: tuple[str, str]) -> float:
            return float(np.sum((np.array(parse_colour(item[1])[0], dtype=float) - rgb) ** 2))

        return min(self.colours.items(), key=dist)[0]


# --- Fabric geometry ---------------------------------------------------------------------------


def _num(obj: Mapping[str, Any], key: str, default: float) -> float:
    value = obj.get(key, default)
    return default if value is None else float(value)


def _origin(value: Any) -> float:
    """Fabric's resolveOrigin: named origins, or a number in [0, 1] from the left/top."""
    if isinstance(value, str):
        return _ORIGIN.get(value, -0.5)
    if isinstance(value, int | float):
        return float(value) - 0.5
    return -0.5  # Fabric < 7 default; 0.13's tools always write the origin explicitly


def _dims_matrix(obj: Mapping[str, Any]) -> np.ndarray:
    """Fabric's calcDimensionsMatrix: scale (with flips), then skewX, then skewY."""
    sx, sy = _num(obj, "scaleX", 1.0), _num(obj, "scaleY", 1.0)
    if obj.get("flipX"):
        sx = -sx
    if obj.get("flipY"):
        sy = -sy
    m = np.diag([sx, sy, 1.0])
    skew_x, skew_y = _num(obj, "skewX", 0.0), _num(obj, "skewY", 0.0)
    if skew_x:
        m = m @ np.array([[1, math.tan(math.radians(skew_x)), 0], [0, 1, 0], [0, 0, 1]])
    if skew_y:
        m = m @ np.array([[1, 0, 0], [math.tan(math.radians(skew_y)), 1, 0], [0, 0, 1]])
    return m


def _transformed_size(obj: Mapping[str, Any], width: float, height: float) -> tuple[float, float]:
    """Fabric's _getTransformedDimensions: the box that origins are measured on."""
    stroke = _num(obj, "strokeWidth", 1.0)
    pre, post = (0.0, stroke) if obj.get("strokeUniform") else (stroke, 0.0)
    w, h = width + pre, height + pre
    if not _num(obj, "skewX", 0.0) and not _num(obj, "skewY", 0.0):
        return abs(w * _num(obj, "scaleX", 1.0)) + post, abs(h * _num(obj, "scaleY", 1.0)) + post
    corners = np.array(
        [[-w / 2, -h / 2, 1], [w / 2, -h / 2, 1], [-w / 2, h / 2, 1], [w / 2, h / 2, 1]]
    )
    m = _dims_matrix({k: v for k, v in obj.items() if k not in ("flipX", "flipY")})
    pts = corners @ m.T
    return float(np.ptp(pts[:, 0])) + post, float(np.ptp(pts[:, 1])) + post


def _rotation(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _own_matrix(obj: Mapping[str, Any], width: float, height: float) -> np.ndarray:
    """Fabric's calcOwnMatrix: object-local (centre-relative) -> canvas coordinates."""
    left, top = _num(obj, "left", 0.0), _num(obj, "top", 0.0)
    dim_w, dim_h = _transformed_size(obj, width, height)
    cx = left - _origin(obj.get("originX")) * dim_w
    cy = top - _origin(obj.get("originY")) * dim_h
    angle = _num(obj, "angle", 0.0)
    if angle:  # the origin point is the pivot: rotate the centre about (left, top)
        r = _rotation(angle)
        cx, cy = (r @ np.array([cx - left, cy - top, 1.0]))[:2] + (left, top)
    return np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]]) @ _rotation(angle) @ _dims_matrix(obj)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    homog = np.column_stack([points, np.ones(len(points))])
    return (homog @ m.T)[:, :2]


def _poly_points(obj: Mapping[str, Any]) -> np.ndarray:
    raw = obj.get("points") or []
    return np.array([[float(p["x"]), float(p["y"])] for p in raw], dtype=float).reshape(-1, 2)


def _path_points(path: Any) -> tuple[np.ndarray, bool] | None:
    """Vertices of a path made only of M/L(/z) commands, and whether it is closed."""
    points, closed = [], False
    for cmd in path or []:
        if not isinstance(cmd, list | tuple) or not cmd:
            return None
        op = str(cmd[0]).upper()
        if op in ("M", "L") and len(cmd) == 3:
            points.append((float(cmd[1]), float(cmd[2])))
        elif op == "Z":
            closed = True
        else:
            return None
    return np.array(points, dtype=float).reshape(-1, 2), closed


def object_canvas_points(obj: Mapping[str, Any]) -> np.ndarray:
    """The geometric points of one Fabric object in canvas coordinates.

    Polygon/Polyline/Path: every vertex. Rect/LabeledRect: the 4 corners (tl, tr, br, bl).
    Circle: centre, then a point on the circle. Line: both ends. Raises ValueError otherwise.
    """
    kind = str(obj.get("type", "")).lower()
    if kind in ("polygon", "polyline", "path"):
        if kind == "path":
            parsed = _path_points(obj.get("path"))
            if parsed is None:
                raise ValueError("a freehand path cannot be stored; undo it and use a tool")
            pts = parsed[0]
        else:
            pts = _poly_points(obj)
        if len(pts) == 0:
            return pts
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        width, height = hi - lo
        local = pts - (lo + hi) / 2  # pathOffset: the bounding-box centre of the points
        return _apply(_own_matrix(obj, width, height), local)
    if kind in ("rect", "labeledrect"):
        w, h = _num(obj, "width", 0.0), _num(obj, "height", 0.0)
        local = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
        return _apply(_own_matrix(obj, w, h), local)
    if kind == "circle":
        r = _num(obj, "radius", 0.0)
        return _apply(_own_matrix(obj, 2 * r, 2 * r), np.array([[0.0, 0.0], [r, 0.0]]))
    if kind == "line":
        x1, y1 = _num(obj, "x1", 0.0), _num(obj, "y1", 0.0)
        x2, y2 = _num(obj, "x2", 0.0), _num(obj, "y2", 0.0)
        w, h = abs(x2 - x1), abs(y2 - y1)
        # Fabric's calcLinePoints: ends relative to the centre, by the direction of the line.
        mx, my = (-1 if x1 <= x2 else 1), (-1 if y1 <= y2 else 1)
        local = np.array([[mx * w / 2, my * h / 2], [-mx * w / 2, -my * h / 2]])
        return _apply(_own_matrix(obj, w, h), local)
    raise ValueError(f"canvas object of type {obj.get('type')!r} is not a supported shape")


# --- canvas -> shapes --------------------------------------------------------------------------


@dataclass(frozen=True)
class CanvasReadout:
    """What the canvas holds, in original pixels. `open_polygons` counts polygons still
    being drawn (not closed yet); `problems` names objects that could not be read."""

    shapes: list[Shape]
    open_polygons: int = 0
    problems: list[str] = field(default_factory=list)


def _nearest_type(alpha: float, candidates: Sequence[str]) -> str:
    return min(candidates, key=lambda t: abs(TYPE_FILL_ALPHA[t] - alpha))


def _axis_aligned_box(pts: np.ndarray, tol: float = 1e-3) -> bool:
    if len(pts) != 4:
        return False
    xs, ys = np.unique(np.round(pts[:, 0] / tol)), np.unique(np.round(pts[:, 1] / tol))
    return len(xs) == 2 and len(ys) == 2


def _stroke_in_image(obj: Mapping[str, Any], vp: Viewport) -> float:
    stroke = _num(obj, "strokeWidth", 1.0)
    if not obj.get("strokeUniform"):
        stroke *= math.sqrt(abs(_num(obj, "scaleX", 1.0) * _num(obj, "scaleY", 1.0)))
    return round(stroke / vp.scale, _COORD_DECIMALS)


def _object_to_shape(
    obj: Mapping[str, Any], vp: Viewport, colours: LabelColours
) -> tuple[str, np.ndarray, float | None]:
    """(shape_type, canvas points, stroke width in image pixels or None) of one object."""
    kind = str(obj.get("type", "")).lower()
    parsed = parse_colour(obj.get("fill"))
    alpha = parsed[1] if parsed else TYPE_FILL_ALPHA["polygon"]
    pts = object_canvas_points(obj)
    if kind in ("rect", "labeledrect"):
        angle = _num(obj, "angle", 0.0) % 90
        if min(angle, 90 - angle) < 1e-6:
            return "rectangle", np.array([pts.min(axis=0), pts.max(axis=0)]), None
        return "polygon", pts, None
    if kind == "polyline":
        return "linestrip", pts, _stroke_in_image(obj, vp)
    if kind in ("polygon", "path"):
        shape_type = _nearest_type(
            alpha, ["polygon", "rectangle", "oriented_rectangle", "linestrip"]
        )
        if shape_type == "linestrip":
            return "linestrip", pts, _stroke_in_image(obj, vp)
        if shape_type == "rectangle" and _axis_aligned_box(pts):
            return "rectangle", np.array([pts.min(axis=0), pts.max(axis=0)]), None
        if shape_type == "oriented_rectangle" and len(pts) == 4:
            return "oriented_rectangle", pts, None
        return "polygon", pts, None
    if kind == "circle":
        if _nearest_type(alpha, ["circle", "point"]) == "point":
            return "point", pts[:1], None
        return "circle", pts, None
    if kind == "line":
        return "line", pts, None
    raise ValueError(f"canvas object of type {obj.get('type')!r} is not a supported shape")


def fabric_to_shapes(
    drawing: Mapping[str, Any] | None,
    vp: Viewport,
    colours: LabelColours,
    loaded: Sequence[Shape] = (),
) -> CanvasReadout:
    """Read the canvas's ``json_data`` back as shapes in original-image pixels.

    `loaded` are the shapes the canvas was built from (`shapes_to_fabric`); an object that
    came from one keeps that shape's group id, description, flags and unknown keys. The
    label is read from the stroke colour, the type from the fill alpha and Fabric class.
    Coordinates are not validated here: `annotations.shapes.validate_shapes` does that.
    """
    shapes: list[Shape] = []
    problems: list[str] = []
    open_polygons = 0
    used: set[int] = set()
    for i, obj in enumerate((drawing or {}).get("objects") or []):
        if not isinstance(obj, Mapping):
            problems.append(f"canvas object #{i} is not an object")
            continue
        if str(obj.get("type", "")).lower() == "path":
            parsed = _path_points(obj.get("path"))
            if parsed is not None and not parsed[1]:
                open_polygons += 1  # the polygon tool's preview of a polygon not closed yet
                continue
        try:
            shape_type, pts, stroke = _object_to_shape(obj, vp, colours)
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"canvas object #{i}: {e}")
            continue
        image_pts = tuple(
            (round(x, _COORD_DECIMALS), round(y, _COORD_DECIMALS))
            for x, y in (vp.to_image(float(cx), float(cy)) for cx, cy in pts)
        )
        label = colours.label(obj.get("stroke")) or "unlabelled"
        index = int(_num(obj, "strokeDashOffset", 0.0)) - 1
        base = loaded[index] if 0 <= index < len(loaded) and index not in used else None
        if base is not None:
            used.add(index)
            shapes.append(
                replace(base, label=label, shape_type=shape_type, points=image_pts,
                        stroke_width=stroke)
            )  # fmt: skip
        else:
            shapes.append(Shape(label, shape_type, image_pts, stroke_width=stroke))
    return CanvasReadout(shapes, open_polygons, problems)


# --- shapes -> canvas --------------------------------------------------------------------------


def _style(shape: Shape, colours: LabelColours, index: int, vp: Viewport) -> dict[str, Any]:
    colour = colours.colour(shape.label)
    stroke = OUTLINE_WIDTH
    if shape.shape_type == "linestrip":
        stroke = (shape.stroke_width or 10.0) * vp.scale
    elif shape.shape_type == "point":
        stroke = 1.0
    return {
        "version": "7.0.0",
        "originX": "left",
        "originY": "top",
        "stroke": colour,
        "fill": rgba(colour, TYPE_FILL_ALPHA.get(shape.shape_type, 0.2)),
        "strokeWidth": stroke,
        "strokeDashArray": None,
        "strokeDashOffset": index + 1,
        "strokeUniform": False,
        "scaleX": 1,
        "scaleY": 1,
        "angle": 0,
        "skewX": 0,
        "skewY": 0,
        "flipX": False,
        "flipY": False,
        "opacity": 1,
        "visible": True,
    }


def _poly_object(kind: str, pts: np.ndarray, style: dict[str, Any]) -> dict[str, Any]:
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    sw = style["strokeWidth"]
    return {
        **style,
        "type": kind,
        "points": [{"x": float(x), "y": float(y)} for x, y in pts],
        "width": float(hi[0] - lo[0]),
        "height": float(hi[1] - lo[1]),
        # origin left/top is the stroke's outer edge: centre = left + (width + stroke) / 2
        "left": float(lo[0] - sw / 2),
        "top": float(lo[1] - sw / 2),
    }


def shape_to_fabric(
    shape: Shape, vp: Viewport, colours: LabelColours, index: int = 0
) -> dict[str, Any]:
    """One stored shape as a Fabric object on this viewport's canvas (see module doc)."""
    style = _style(shape, colours, index, vp)
    pts = np.array([vp.to_canvas(x, y) for x, y in shape.points], dtype=float).reshape(-1, 2)
    kind = shape.shape_type
    if kind in ("polygon", "oriented_rectangle"):
        return _poly_object("Polygon", pts, style)
    if kind == "linestrip":
        return _poly_object("Polyline", pts, style)
    if kind == "rectangle":
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        sw = style["strokeWidth"]
        return {
            **style,
            "type": "Rect",
            "strokeUniform": True,  # as the box tool draws them: outline stays 2 px when resized
            "left": float(x0 - sw / 2),
            "top": float(y0 - sw / 2),
            "width": float(x1 - x0),
            "height": float(y1 - y0),
        }
    if kind in ("circle", "point"):
        (cx, cy) = pts[0]
        radius = POINT_RADIUS if kind == "point" else float(math.hypot(*(pts[1] - pts[0])))
        return {
            **style,
            "type": "Circle",
            "originX": "center",
            "originY": "center",
            "left": float(cx),
            "top": float(cy),
            "radius": radius,
            "width": 2 * radius,
            "height": 2 * radius,
            "startAngle": 0,
            "endAngle": 360,
        }
    if kind == "line":
        (x1, y1), (x2, y2) = pts
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        return {
            **style,
            "type": "Line",
            "originX": "center",
            "originY": "center",
            "left": float(cx),
            "top": float(cy),
            "x1": float(x1 - cx),
            "y1": float(y1 - cy),
            "x2": float(x2 - cx),
            "y2": float(y2 - cy),
            "width": float(abs(x2 - x1)),
            "height": float(abs(y2 - y1)),
        }
    raise ValueError(f"shape type {kind!r} cannot be drawn on the canvas")


def shapes_to_fabric(
    shapes: Sequence[Shape], vp: Viewport, colours: LabelColours
) -> dict[str, Any]:
    """The canvas ``initial_drawing`` for `shapes` on this viewport, in their order."""
    return {"objects": [shape_to_fabric(s, vp, colours, i) for i, s in enumerate(shapes)]}


# --- read-only overlay ---------------------------------------------------------------------------


def draw_overlay(
    rgb: np.ndarray, shapes: Iterable[Shape], vp: Viewport, colour: str, thickness: int = 2
) -> np.ndarray:
    """Draw `shapes` (image pixels) as outlines onto a canvas-sized RGB image, in place.

    Used for other readers' shapes: part of the background, so they cannot be edited.
    """
    import cv2

    parsed = parse_colour(colour)
    col = parsed[0] if parsed else (0, 200, 255)
    shift = 4  # sub-pixel precision for cv2 drawing
    k = 1 << shift
    for shape in shapes:
        pts = np.array([vp.to_canvas(x, y) for x, y in shape.points], dtype=float).reshape(-1, 2)
        ipts = np.round(pts * k).astype(np.int32)
        kind = shape.shape_type
        if kind in ("polygon", "oriented_rectangle", "linestrip", "line"):
            closed = kind in ("polygon", "oriented_rectangle")
            cv2.polylines(rgb, [ipts], closed, col, thickness, cv2.LINE_AA, shift)
        elif kind == "rectangle":
            (x0, y0), (x1, y1) = ipts
            cv2.rectangle(rgb, (x0, y0), (x1, y1), col, thickness, cv2.LINE_AA, shift)
        elif kind == "circle":
            r = int(round(math.hypot(*(pts[1] - pts[0])) * k))
            cv2.circle(rgb, tuple(ipts[0]), r, col, thickness, cv2.LINE_AA, shift)
        elif kind == "point":
            cv2.circle(rgb, tuple(ipts[0]), int(POINT_RADIUS * k), col, -1, cv2.LINE_AA, shift)
    return rgb
