"""The one rasteriser: shapes + image size -> boolean masks.

Pixel conventions are labelme's `utils.shape_to_mask`, which draws with PIL ImageDraw
(fill and 1-px outline, so edge pixels are in). PIL truncates fractional vertex coordinates
to integers for polygons, rectangles and lines (toward zero; our coordinates are clipped to
>= 0, so that is the floor). Polygons and lines are drawn on a band of whole rows around the
shape: PIL's scanline fill computes edge crossings in floating point from the edge's start x,
so shifting x can flip a tie at .5 by one pixel, while shifting by whole rows cannot. Ellipses
(circles, points) use PIL's float geometry in both axes, so they are drawn on the full image
with labelme's exact arithmetic. Self-intersecting polygons fill even-odd, as PIL does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import PIL.Image
import PIL.ImageDraw

from annotations.shapes import Shape, validate_shape

# labelme's shape_to_mask defaults: a linestrip without a stroke width is 10 px wide, and a
# point is a disc of radius 5.
DEFAULT_LINE_WIDTH = 10
POINT_RADIUS = 5


def line_width(shape: Shape) -> int:
    """Stroke width in whole pixels (PIL draws integer widths); at least 1."""
    if shape.stroke_width is None:
        return DEFAULT_LINE_WIDTH
    return max(1, round(shape.stroke_width))


def _draw_ellipse(out: np.ndarray, shape: Shape) -> None:
    if shape.shape_type == "point":
        (cx, cy), r = shape.points[0], POINT_RADIUS
    else:
        (cx, cy), (px, py) = shape.points
        # Same expression as labelme, so the float radius is bit-identical.
        r = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
    image = PIL.Image.new("L", (out.shape[1], out.shape[0]), 0)
    PIL.ImageDraw.Draw(image).ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=1, fill=1)
    out |= np.asarray(image, dtype=bool)


def _draw_into(out: np.ndarray, shape: Shape) -> None:
    """OR the mask of an already validated shape into `out` (H, W)."""
    kind = shape.shape_type
    if kind in ("circle", "point"):
        _draw_ellipse(out, shape)
        return
    # Validated coordinates are >= 0, so astype (truncation toward zero) equals PIL's cast.
    vertices = np.asarray(shape.points, dtype=np.float64).astype(np.int64)
    if kind == "rectangle":
        # PIL fills [x0, x1] x [y0, y1] inclusive of the truncated corners.
        (x0, y0), (x1, y1) = vertices.tolist()
        out[y0 : y1 + 1, x0 : x1 + 1] = True
        return
    height = out.shape[0]
    is_line = kind in ("linestrip", "line")
    margin = line_width(shape) if is_line else 0  # a wide stroke spills past its vertices
    y0 = max(int(vertices[:, 1].min()) - margin, 0)
    y1 = min(int(vertices[:, 1].max()) + margin, height - 1)
    band = PIL.Image.new("L", (out.shape[1], y1 - y0 + 1), 0)
    draw = PIL.ImageDraw.Draw(band)
    xy = [tuple(p) for p in (vertices - (0, y0)).tolist()]
    if is_line:
        draw.line(xy, fill=1, width=line_width(shape))
    else:
        draw.polygon(xy, outline=1, fill=1)
    out[y0 : y1 + 1] |= np.asarray(band, dtype=bool)


def _empty(image_size: tuple[int, int]) -> np.ndarray:
    width, height = image_size
    return np.zeros((height, width), dtype=bool)


def shape_mask(shape: Shape, image_size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of one shape on a (width, height) image."""
    out = _empty(image_size)
    _draw_into(out, validate_shape(shape, image_size))
    return out


def valid_shape_mask(shape: Shape, image_size: tuple[int, int]) -> np.ndarray:
    """`shape_mask` for a shape that `validate_shape` already returned (skips re-checking)."""
    out = _empty(image_size)
    _draw_into(out, shape)
    return out


def rasterise(shapes: Iterable[Shape], image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """One boolean (H, W) mask per label: the union of that label's shapes."""
    masks: dict[str, np.ndarray] = {}
    for i, shape in enumerate(shapes):
        shape = validate_shape(shape, image_size, index=i)
        if shape.label not in masks:
            masks[shape.label] = _empty(image_size)
        _draw_into(masks[shape.label], shape)
    return masks


def label_mask(shapes: Iterable[Shape], image_size: tuple[int, int], label: str) -> np.ndarray:
    """Boolean (H, W) union of the shapes with `label`; all False when there are none."""
    out = _empty(image_size)
    for i, shape in enumerate(shapes):
        if shape.label == label:
            _draw_into(out, validate_shape(shape, image_size, index=i))
    return out
