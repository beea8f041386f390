"""COCO instance annotations: shapes to a COCO dict and back.

Polygons become polygon segmentations, rectangles a 4-corner polygon plus their exact bbox.
Shapes COCO has no geometry for (linestrip, line, circle, point) are written as the mask our
rasteriser draws for them, in uncompressed RLE, so COCO tools see the same pixels as our PNG
masks. Each annotation's ``attributes`` records the original shape (type, points, stroke
width, group, description), so our own import restores shapes exactly; COCO files from other
tools import from their polygon segmentations and boxes.

``area`` is the number of pixels our rasteriser gives the shape (what the masks contain).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotations.rasterise import valid_shape_mask
from annotations.shapes import Shape, ShapeError, validate_shape

# (image id, file name, width, height, shapes): one image's entry for `to_coco`.
CocoEntry = tuple[int, str, int, int, Iterable[Shape]]


class CocoError(ValueError):
    """A COCO file that cannot be imported; the message names the annotation and the rule."""


@dataclass(frozen=True)
class CocoImage:
    """One image of a COCO file and the shapes its annotations describe."""

    id: int
    file_name: str
    width: int
    height: int
    shapes: tuple[Shape, ...]


def _flat(points: Iterable[tuple[float, float]]) -> list[float]:
    return [float(v) for p in points for v in p]


def _points_bbox(points: tuple[tuple[float, float], ...]) -> list[float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _mask_bbox(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE: run lengths in column-major order, starting with a 0-run."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def rle_to_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """Inverse of `mask_to_rle` (uncompressed RLE only)."""
    height, width = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    if flat.size != height * width:
        raise ValueError(f"RLE counts sum to {flat.size}, expected {height * width}")
    return flat.reshape((height, width), order="F")


def _attributes(shape: Shape) -> dict[str, Any]:
    attrs: dict[str, Any] = {"shape_type": shape.shape_type}
    if shape.shape_type not in ("polygon", "rectangle"):
        attrs["points"] = [list(p) for p in shape.points]
    if shape.stroke_width is not None:
        attrs["stroke_width"] = shape.stroke_width
    if shape.group_id is not None:
        attrs["group_id"] = shape.group_id
    if shape.description:
        attrs["description"] = shape.description
    return attrs


def _annotation(shape: Shape, size: tuple[int, int]) -> dict[str, Any]:
    mask = valid_shape_mask(shape, size)
    ann: dict[str, Any] = {"iscrowd": 0, "area": int(mask.sum())}
    if shape.shape_type == "rectangle":
        (x0, y0), (x1, y1) = shape.points
        ann["segmentation"] = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]
    elif shape.shape_type in ("polygon", "oriented_rectangle"):
        ann["segmentation"] = [_flat(shape.points)]
        ann["bbox"] = _points_bbox(shape.points)
    else:
        ann["segmentation"] = mask_to_rle(mask)
        ann["bbox"] = _mask_bbox(mask)
    ann["attributes"] = _attributes(shape)
    return ann


def to_coco(entries: Iterable[CocoEntry], categories: Iterable[str] | None = None) -> dict:
    """A COCO dict with one annotation per shape; categories are the labels, ids from 1.

    Shapes are validated against their image (and clipped to it) first, so an exported COCO
    file describes exactly what the exported masks contain.
    """
    entries = [(i, name, w, h, tuple(shapes)) for i, name, w, h, shapes in entries]
    labels = list(categories) if categories is not None else []
    for *_, shapes in entries:
        labels.extend(s.label for s in shapes)
    names = sorted(set(labels))
    cat_id = {name: k for k, name in enumerate(names, start=1)}
    images, annotations = [], []
    for image_id, file_name, width, height, shapes in entries:
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for index, shape in enumerate(shapes):
            shape = validate_shape(shape, (width, height), index=index)
            ann = _annotation(shape, (width, height))
            ann.update(id=len(annotations) + 1, image_id=image_id, category_id=cat_id[shape.label])
            annotations.append(ann)
    return {
        "info": {"description": "PneumoLab export", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": n, "supercategory": ""} for n, k in cat_id.items()],
    }


def _need(ok: bool, where: str, rule: str) -> None:
    if not ok:
        raise CocoError(f"{where}: {rule}")


def _number_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )


def _shapes_of(ann: Mapping[str, Any], label: str, where: str) -> list[Shape]:
    """The shapes one annotation describes (our attributes first, then COCO geometry)."""
    attrs = ann.get("attributes")
    attrs = attrs if isinstance(attrs, Mapping) else {}
    description = attrs.get("description") or ""
    _need(isinstance(description, str), where, "attributes.description must be a string")
    common = {
        "label": label,
        "group_id": attrs.get("group_id"),
        "description": description,
        "stroke_width": attrs.get("stroke_width"),
    }
    kind = attrs.get("shape_type")
    if kind not in (None, "polygon", "rectangle"):
        # Geometry COCO cannot hold: the attributes carry it (validated by the caller).
        _need(isinstance(attrs.get("points"), list), where, f"a {kind!r} needs attributes.points")
        return [Shape(shape_type=str(kind), points=tuple(attrs["points"]), **common)]
    seg, bbox = ann.get("segmentation"), ann.get("bbox")
    if kind == "rectangle" or (not seg and bbox is not None):
        _need(
            _number_list(bbox) and len(bbox) == 4, where, f"bbox must be [x, y, w, h], got {bbox!r}"
        )
        x, y, w, h = bbox
        corners = ((x, y), (x + w, y + h))
        if kind == "rectangle" and isinstance(seg, list) and len(seg) == 1:
            poly = seg[0]
            if _number_list(poly) and len(poly) == 8:
                # Our own export writes the exact corners here; x + w can be off by a float ulp.
                corners = ((poly[0], poly[1]), (poly[4], poly[5]))
        return [Shape(shape_type="rectangle", points=corners, **common)]
    _need(
        isinstance(seg, list),
        where,
        "segmentation must be a list of polygons (RLE masks are not importable as shapes)",
    )
    shapes = []
    for k, poly in enumerate(seg):
        _need(
            _number_list(poly) and len(poly) % 2 == 0 and len(poly) >= 6,
            where,
            f"polygon {k} must be a flat list [x0, y0, x1, y1, ...] of at least 3 points",
        )
        points = tuple(zip(poly[0::2], poly[1::2], strict=True))
        shapes.append(Shape(shape_type="polygon", points=points, **common))
    return shapes


def _index(data: Any, source: str) -> tuple[dict[int, dict], dict[int, str]]:
    _need(isinstance(data, dict), source, "a COCO file is a JSON object")
    for key in ("images", "annotations", "categories"):
        _need(isinstance(data.get(key), list), source, f"{key!r} must be a list")
    images: dict[int, dict] = {}
    for k, im in enumerate(data["images"]):
        where = f"{source}: image #{k}"
        _need(isinstance(im, dict), where, "must be an object")
        for key in ("id", "width", "height"):
            _need(isinstance(im.get(key), int), where, f"{key!r} must be an integer")
        _need(isinstance(im.get("file_name"), str), where, "'file_name' must be a string")
        images[im["id"]] = im
    categories: dict[int, str] = {}
    for k, cat in enumerate(data["categories"]):
        ok = isinstance(cat, dict) and isinstance(cat.get("id"), int)
        _need(
            ok and isinstance(cat.get("name"), str), f"{source}: category #{k}", "needs id and name"
        )
        categories[cat["id"]] = cat["name"]
    return images, categories


def from_coco(data: Any, source: str = "COCO file") -> list[CocoImage]:
    """Images of a COCO dict with their shapes, validated against each image's size."""
    images, categories = _index(data, source)
    shapes: dict[int, list[Shape]] = {i: [] for i in images}
    for k, ann in enumerate(data["annotations"]):
        where = f"{source}: annotation #{k}"
        _need(isinstance(ann, dict), where, "must be an object")
        where = f"{source}: annotation id {ann.get('id', '?')}"
        _need(ann.get("image_id") in images, where, f"unknown image_id {ann.get('image_id')!r}")
        _need(
            ann.get("category_id") in categories,
            where,
            f"unknown category_id {ann.get('category_id')!r}",
        )
        image = images[ann["image_id"]]
        for shape in _shapes_of(ann, categories[ann["category_id"]], where):
            try:
                shape = validate_shape(shape, (image["width"], image["height"]))
            except ShapeError as e:
                raise CocoError(f"{where}: {e}") from e
            shapes[ann["image_id"]].append(shape)
    return [
        CocoImage(i, im["file_name"], im["width"], im["height"], tuple(shapes[i]))
        for i, im in images.items()
    ]


__all__ = ["CocoError", "CocoImage", "from_coco", "mask_to_rle", "rle_to_mask", "to_coco"]
