"""Annotation shapes in original-image pixel coordinates, their validation and JSON form.

The JSON form of a shape is the LabelMe per-shape dict (what our database stores):
``label, points, group_id, description, shape_type, flags, mask``, plus ``stroke_width``
when set, plus any unknown keys the shape arrived with.

Coordinates outside the image are clipped (clamped per vertex) into ``[0, w-1] x [0, h-1]``,
the same box labelme's own canvas keeps vertices in: a stored shape then always lies on
the image, and masks never depend on pixels nobody can see. Clamping a vertex is not
polygon clipping: a polygon crossing the border changes shape near it, which is the
documented price of keeping every stored coordinate on the image.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from annotations._frozen import FrozenMap, freeze, thaw

ShapeType = Literal[
    "polygon", "linestrip", "rectangle", "point", "circle", "line", "oriented_rectangle"
]
# "line" and "oriented_rectangle" are labelme types too; accepted so that every file labelme
# can rasterise imports. labelme's "mask" and "points" types are not supported.
SHAPE_TYPES: tuple[str, ...] = get_args(ShapeType)

# Keys of the stored dict that are fields, never "extra". "mask" is absent on purpose: a
# non-null labelme mask is kept verbatim in `extra` so it survives a round trip.
_FIELD_KEYS = frozenset(
    {"label", "points", "group_id", "description", "shape_type", "flags", "stroke_width"}
)


class ShapeError(ValueError):
    """An invalid shape; the message names the shape (index, label, type) and the rule."""


@dataclass(frozen=True)
class Shape:
    """One drawn shape; points are (x, y) pixels of the original image."""

    label: str
    shape_type: str
    points: tuple[tuple[float, float], ...]
    group_id: int | None = None
    description: str = ""
    flags: Mapping[str, bool] = field(default_factory=FrozenMap)
    stroke_width: float | None = None
    extra: Mapping[str, Any] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        # Freeze containers so a Shape is immutable and hashable whatever it was built from.
        try:
            points = tuple(map(tuple, self.points))
        except TypeError:  # a non-sequence entry: kept as it is for validation to name it
            points = tuple(tuple(p) if isinstance(p, list | tuple) else p for p in self.points)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "flags", FrozenMap(self.flags))
        object.__setattr__(self, "extra", FrozenMap(self.extra))


def shape_name(shape: Any, index: int | None = None) -> str:
    """How errors name a shape: 'shape #2 'lung' (polygon)'."""
    where = f"shape #{index}" if index is not None else "shape"
    label = getattr(shape, "label", None)
    shape_type = getattr(shape, "shape_type", None)
    if isinstance(shape, Mapping):
        label, shape_type = shape.get("label"), shape.get("shape_type")
    return f"{where} {label!r} ({shape_type})"


def _fail(shape: Any, index: int | None, rule: str) -> ShapeError:
    return ShapeError(f"{shape_name(shape, index)}: {rule}")


def _is_number(value: Any) -> bool:
    # bool is an int in Python but never a coordinate.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bad_point(points: Any) -> tuple[int, Any] | None:
    """The first entry that is not a pair of numbers, as (index, entry), or None."""
    # Fast path at C speed (real polygons have ~1,000 vertices): exact types, so bools (an
    # int subclass) and odd entries drop to the careful loop below.
    if (
        set(map(type, points)) <= {list, tuple}
        and set(map(len, points)) <= {2}
        and set(map(type, itertools.chain.from_iterable(points))) <= {int, float}
    ):
        return None
    for i, p in enumerate(points):
        if not (isinstance(p, list | tuple) and len(p) == 2 and all(_is_number(v) for v in p)):
            return i, p
    return None


# JSON integers have no size limit; one beyond float range cannot be a pixel position.
MAX_GROUP_ID = 2**53  # the largest integer a browser's numbers hold exactly


def _as_float_points(shape: Any, points: Any, index: int | None) -> np.ndarray:
    """(n, 2) float64 vertices; a coordinate too large for a float is refused by point."""
    try:
        return np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except OverflowError:
        i = next((i for i, p in enumerate(points) if any(abs(v) > 1e300 for v in p)), len(points))
        raise _fail(
            shape, index, f"point {i} has a coordinate too large to be a pixel position"
        ) from None


def _check_points(shape: Shape, index: int | None) -> np.ndarray:
    bad = _bad_point(shape.points)
    if bad is not None:
        raise _fail(
            shape, index, f"point {bad[0]} must be a pair of numbers [x, y], got {bad[1]!r}"
        )
    points = _as_float_points(shape, shape.points, index)
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise _fail(shape, index, f"point {i} is not finite: {shape.points[i]!r}")
    return points


def _count_rule(shape_type: str, n: int) -> str | None:
    """The point-count rule broken, or None."""
    exact = {"rectangle": 2, "circle": 2, "line": 2, "point": 1, "oriented_rectangle": 4}
    if shape_type in exact and n != exact[shape_type]:
        return f"needs exactly {exact[shape_type]} point(s), got {n}"
    minimum = {"polygon": 3, "linestrip": 2}.get(shape_type, 1)
    if n < minimum:
        return f"needs at least {minimum} points, got {n}"
    return None


def _distinct_rule(shape_type: str, points: list[tuple[float, float]]) -> str | None:
    distinct = len(set(points))
    minimum = {"polygon": 3, "oriented_rectangle": 3, "linestrip": 2, "line": 2}.get(shape_type)
    if minimum is not None and distinct < minimum:
        return f"needs at least {minimum} distinct points inside the image, got {distinct}"
    if shape_type == "rectangle":
        (x0, y0), (x1, y1) = points
        if x0 == x1 or y0 == y1:
            return "rectangle has zero area inside the image"
    if shape_type == "circle" and points[0] == points[1]:
        return "circle has zero radius inside the image"
    return None


def _unsupported_type_rule(shape_type: Any) -> str:
    rule = f"unsupported shape type {shape_type!r}; expected one of {', '.join(SHAPE_TYPES)}"
    if shape_type in ("mask", "points"):
        # labelme's AI tools write these; they carry no outline we can edit or rasterise alike.
        rule += " (labelme AI 'mask'/'points' shapes: redraw them as polygons in labelme)"
    return rule


def validate_shape(shape: Shape, image_size: tuple[int, int], index: int | None = None) -> Shape:
    """Check `shape` against the rules and return it clipped to the (width, height) image.

    Rectangles come back as (top-left, bottom-right). Self-intersecting polygons are allowed;
    the rasteriser fills them even-odd, as PIL (and so labelme) does.
    """
    width, height = image_size
    if not (isinstance(shape.label, str) and shape.label):
        raise _fail(shape, index, "label must be a non-empty string")
    if shape.shape_type not in SHAPE_TYPES:
        raise _fail(shape, index, _unsupported_type_rule(shape.shape_type))
    rule = _count_rule(shape.shape_type, len(shape.points))
    if rule:
        raise _fail(shape, index, rule)
    points = _check_points(shape, index)
    if shape.stroke_width is not None and not (
        _is_number(shape.stroke_width)
        and abs(shape.stroke_width) < 1e300  # before isfinite: a huge int overflows a float
        and math.isfinite(shape.stroke_width)
        and shape.stroke_width > 0
    ):
        raise _fail(
            shape, index, f"stroke width must be a positive number, got {shape.stroke_width!r}"
        )
    if shape.group_id is not None and not (
        isinstance(shape.group_id, int) and not isinstance(shape.group_id, bool)
    ):
        raise _fail(shape, index, f"group_id must be an integer or null, got {shape.group_id!r}")
    if shape.group_id is not None and abs(shape.group_id) > MAX_GROUP_ID:
        raise _fail(shape, index, "group_id is too large (at most 2**53 in magnitude)")
    clashes = sorted(set(shape.extra) & _FIELD_KEYS)
    if clashes:
        raise _fail(shape, index, f"extra keys clash with shape fields: {clashes}")

    clipped = np.clip(points, 0.0, (float(width - 1), float(height - 1)))
    points = list(map(tuple, clipped.tolist()))
    rule = _distinct_rule(shape.shape_type, points)
    if rule:
        raise _fail(shape, index, rule)
    if shape.shape_type == "rectangle":
        (x0, y0), (x1, y1) = points
        points = [(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))]
    stroke = None if shape.stroke_width is None else float(shape.stroke_width)
    return dataclasses.replace(shape, points=tuple(points), stroke_width=stroke)


def validate_shapes(shapes: Iterable[Shape], image_size: tuple[int, int]) -> tuple[Shape, ...]:
    """Validate every shape; the first invalid one raises, named with its index."""
    return tuple(validate_shape(s, image_size, index=i) for i, s in enumerate(shapes))


def shape_to_dict(shape: Shape) -> dict[str, Any]:
    """The stored JSON form: labelme's per-shape dict, + stroke_width, + unknown keys."""
    d: dict[str, Any] = {
        "label": shape.label,
        "points": [[x, y] for x, y in shape.points],
        "group_id": shape.group_id,
        "description": shape.description,
        "shape_type": shape.shape_type,
        "flags": thaw(shape.flags),
        "mask": None,
    }
    if shape.stroke_width is not None:
        d["stroke_width"] = shape.stroke_width
    clashes = sorted(set(shape.extra) & _FIELD_KEYS)
    if clashes:
        raise _fail(shape, None, f"extra keys clash with shape fields: {clashes}")
    d.update(thaw(shape.extra))
    return d


def shape_from_dict(d: Any, index: int | None = None) -> Shape:
    """Build a Shape from its JSON form, checking types (not geometry: see validate_shape).

    Accepts labelme 3.x-7.x shapes: a missing shape_type means polygon (labelme 3.x), missing
    group_id/description/flags/mask take their defaults, other keys go to `extra`.
    """
    if not isinstance(d, Mapping):
        raise ShapeError(
            f"{shape_name(None, index)}: must be a JSON object, got {type(d).__name__}"
        )

    def need(ok: bool, rule: str) -> None:
        if not ok:
            raise _fail(d, index, rule)

    need("label" in d, "missing required key 'label'")
    need(isinstance(d["label"], str), f"label must be a string, got {d['label']!r}")
    need("points" in d, "missing required key 'points'")
    points = d["points"]
    need(isinstance(points, list | tuple), f"points must be a list, got {type(points).__name__}")
    bad = _bad_point(points)
    if bad is not None:
        raise _fail(d, index, f"point {bad[0]} must be a pair of numbers [x, y], got {bad[1]!r}")
    shape_type = d.get("shape_type")
    if shape_type is None:
        shape_type = "polygon"
    need(isinstance(shape_type, str), f"shape_type must be a string, got {shape_type!r}")
    need(shape_type in SHAPE_TYPES, _unsupported_type_rule(shape_type))
    group_id = d.get("group_id")
    need(
        group_id is None or (isinstance(group_id, int) and not isinstance(group_id, bool)),
        f"group_id must be an integer or null, got {group_id!r}",
    )
    need(
        group_id is None or abs(group_id) <= MAX_GROUP_ID,
        "group_id is too large (at most 2**53 in magnitude)",
    )
    description = d.get("description")
    description = "" if description is None else description  # null: older labelme files
    need(isinstance(description, str), f"description must be a string, got {description!r}")
    flags = d.get("flags")
    flags = {} if flags is None else flags
    need(
        isinstance(flags, Mapping)
        and all(isinstance(k, str) and isinstance(v, bool) for k, v in flags.items()),
        f"flags must map names to true/false, got {flags!r}",
    )
    mask = d.get("mask")
    need(mask is None or isinstance(mask, str), "mask must be a base64 PNG string or null")
    stroke_width = d.get("stroke_width")
    need(
        stroke_width is None or _is_number(stroke_width),
        f"stroke_width must be a number, got {stroke_width!r}",
    )
    need(
        # Floats (inf included) are judged by validate_shape; a huge int would overflow.
        stroke_width is None or isinstance(stroke_width, float) or abs(stroke_width) < 1e300,
        "stroke_width is too large to be a number of pixels",
    )
    extra = {k: v for k, v in d.items() if k not in _FIELD_KEYS and k != "mask"}
    if mask is not None:
        extra["mask"] = mask
    return Shape(
        label=d["label"],
        shape_type=shape_type,
        points=_as_float_points(d, points, index).tolist(),
        group_id=group_id,
        description=description,
        flags=flags,
        stroke_width=None if stroke_width is None else float(stroke_width),
        extra=freeze(extra),
    )
