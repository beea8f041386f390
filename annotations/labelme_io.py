"""LabelMe JSON files: strict parsing, lossless round trips, atomic writes.

Reads what labelme 3.x-7.x writes: files without ``version``, ``imageHeight``/``imageWidth``,
``imageData`` or per-shape ``description``/``flags``/``mask``/``group_id``; a null or missing
``shape_type`` (labelme 3.x) is a polygon; old colour keys (``lineColor``, ``line_color``, ...)
and any other unknown key are kept and written back. Writes what labelme 6.3.1's
``read_label_file`` requires: ``imagePath``, ``imageData`` (null unless asked for) and
``shape_type`` always present.

Every error is a `LabelFileError` whose message starts with the file it is about, then names
the key or shape and the rule broken, so a user can open the file and fix it.

Reading is bounded (`LabelMeLimits`): file size, nesting depth, vertices per shape, label
length, the size of unknown keys and of embedded images are checked before the costly step,
and a JSON object with a duplicate key is refused (json would keep the last one silently: a
second ``"shapes": []`` would un-label the image). labelme's own ``mask`` shapes (a base64
PNG over the box given by their two points, from its AI tools) are read as polygons, one per
connected region (OpenCV contours through the region's boundary pixels, which the rasteriser
fills back to the same pixels; holes are filled and isolated single pixels dropped), so they
export as polygons labelme opens like any other.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from annotations._frozen import FrozenMap, thaw
from annotations.files import atomic_write_bytes
from annotations.shapes import (
    Shape,
    ShapeError,
    shape_from_dict,
    shape_to_dict,
    validate_shape,
    validate_shapes,
)

# The version we write when a file came without one (labelme 3.x did not record it).
DEFAULT_VERSION = "5.5.0"
# Top-level keys with a field of their own; everything else is `extra`.
_RESERVED = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth")


class LabelFileError(ValueError):
    """A LabelMe file that cannot be read or written; the message says where and why."""


@dataclass(frozen=True)
class LabelMeLimits:
    """What one LabelMe file may cost to read; every limit broken is refused by name."""

    max_bytes: int = 64 * 1024**2  # the JSON file, imageData included
    max_depth: int = 32  # LabelMe itself needs 5: file, shapes, shape, points, point
    max_vertices: int = 100_000  # per shape; a traced lung has ~1,000
    max_shapes: int = 10_000  # per file, mask regions included (one polygon per region)
    max_label_chars: int = 64  # the label-class rule (core.labels.readers.add_label)
    max_extra_bytes: int = 64 * 1024  # unknown keys, as JSON: top level, and per shape
    max_description_chars: int = 64 * 1024
    max_image_pixels: int = 60_000_000  # imageData and mask PNGs, read from their headers
    max_image_side: int = 16_384


DEFAULT_LIMITS = LabelMeLimits()
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4
_SHORT.maxlevel = 2
# A JSON string (escapes included), unrolled so the C regex engine runs without backtracking.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _amount(n: int) -> str:
    return f"{n / 1024**2:.3g} MB" if n >= 1024**2 else f"{n:,} bytes"


def _show(value: Any) -> str:
    """A short repr for messages: file content can be megabytes."""
    return _SHORT.repr(value)


# The name the issue uses; both spell the same class.
LabelMeError = LabelFileError


@dataclass(frozen=True)
class LabelFile:
    """One LabelMe file. `image_data` is the base64 text as stored (None when absent)."""

    version: str | None
    flags: Mapping[str, bool]
    shapes: tuple[Shape, ...]
    image_path: str
    image_data: str | None
    image_height: int
    image_width: int
    extra: Mapping[str, Any] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", FrozenMap(self.flags))
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "extra", FrozenMap(self.extra))

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height), the order the rasteriser takes."""
        return self.image_width, self.image_height


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _image_data_size(
    b64: str, source: str, limits: LabelMeLimits = DEFAULT_LIMITS
) -> tuple[int, int]:
    """(width, height) of embedded imageData; only the image header is decoded."""
    try:
        raw = base64.b64decode(b64, validate=True)
        with PIL.Image.open(io.BytesIO(raw)) as im:
            size = im.size
    except PIL.Image.DecompressionBombError as e:
        raise LabelFileError(
            f"{source}: imageData is an image over the limit of {limits.max_image_side} px a "
            f"side and {limits.max_image_pixels // 1_000_000} megapixels (a decompression "
            "bomb?); set it to null to use the image file instead"
        ) from e
    except PIL.UnidentifiedImageError as e:
        raise LabelFileError(
            f"{source}: imageData is not a base64-encoded image (its content is not an image "
            "format that can be read); set it to null to use the image file instead"
        ) from e
    except (binascii.Error, ValueError, OSError) as e:
        raise LabelFileError(
            f"{source}: imageData is not a base64-encoded image ({type(e).__name__}); "
            "set it to null to use the image file instead"
        ) from e
    _check_pixels(size, f"{source}: imageData", limits)
    return size


def _check_pixels(size: tuple[int, int], what: str, limits: LabelMeLimits) -> None:
    w, h = size
    if max(w, h) > limits.max_image_side or w * h > limits.max_image_pixels:
        raise LabelFileError(
            f"{what} is an image of {w} x {h} pixels, over the limit of "
            f"{limits.max_image_side} px a side and {limits.max_image_pixels // 1_000_000} "
            "megapixels (a decompression bomb?)"
        )


def _check_top_level(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        raise LabelFileError(
            f"{source}: a LabelMe file is a JSON object, got {type(data).__name__}"
        )
    for key in ("shapes", "imagePath"):
        if key not in data:
            raise LabelFileError(f"{source}: missing required key {key!r}")
    rules = {
        "version": (lambda v: v is None or isinstance(v, str), "a string"),
        "flags": (
            lambda v: (
                v is None or (isinstance(v, dict) and all(isinstance(x, bool) for x in v.values()))
            ),
            "an object mapping names to true/false",
        ),
        "shapes": (lambda v: isinstance(v, list), "a list"),
        "imagePath": (lambda v: isinstance(v, str), "a string"),
        "imageData": (lambda v: v is None or isinstance(v, str), "a base64 string or null"),
        "imageHeight": (
            lambda v: v is None or (_is_int(v) and 0 < v < 2**31),
            "a positive integer",
        ),
        "imageWidth": (lambda v: v is None or (_is_int(v) and 0 < v < 2**31), "a positive integer"),
    }
    for key, (ok, what) in rules.items():
        if key in data and not ok(data[key]):
            raise LabelFileError(f"{source}: {key} must be {what}, got {_show(data[key])}")


def _resolve_size(
    data: dict,
    source: str,
    image_size: tuple[int, int] | None,
    limits: LabelMeLimits = DEFAULT_LIMITS,
) -> tuple[int, int]:
    """The image's (width, height): declared, embedded and actual sizes must all agree."""
    declared = (data.get("imageWidth"), data.get("imageHeight"))
    sizes: list[tuple[str, tuple[int | None, int | None]]] = [("declared", declared)]
    if data.get("imageData") is not None:
        sizes.append(("imageData", _image_data_size(data["imageData"], source, limits)))
    if image_size is not None:
        sizes.append(("image", tuple(image_size)))
    known = [(name, s) for name, s in sizes if None not in s]
    if not known:
        raise LabelFileError(
            f"{source}: no image size (imageWidth/imageHeight absent and no imageData); "
            "import it beside its image so the size is known"
        )
    if None in declared and declared != (None, None):
        raise LabelFileError(f"{source}: imageWidth and imageHeight must be given together")
    for name, size in known[1:]:
        if size != known[0][1]:
            (first, (w0, h0)), (w1, h1) = known[0], size
            raise LabelFileError(
                f"{source}: image size mismatch: {first} {w0}x{h0} but {name} {w1}x{h1} "
                "(width x height); the annotations belong to a different image"
            )
    width, height = known[0][1]
    return int(width), int(height)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str))


def _shape_ref(d: Any, index: int) -> str:
    """'shape #2 'lung'' with the label cut short: a label can be megabytes."""
    label = d.get("label") if isinstance(d, Mapping) else None
    return f"shape #{index}" + (f" {_show(label)}" if isinstance(label, str) else "")


def _check_flags_size(flags: Any, where: str, limits: LabelMeLimits) -> None:
    """Flags are stored with every revision: as many as fit in the extra-keys budget."""
    if isinstance(flags, Mapping) and flags and _json_size(flags) > limits.max_extra_bytes:
        raise LabelFileError(
            f"{where}: its {len(flags)} flags are over the limit of {limits.max_extra_bytes} "
            "bytes; keep the flags that mean something"
        )


def _check_shape_limits(d: Any, index: int, source: str, limits: LabelMeLimits) -> None:
    """The cost limits of one shape dict, checked before it is converted or validated."""
    if not isinstance(d, Mapping):
        return  # shape_from_dict names the rule
    where = f"{source}: {_shape_ref(d, index)}"
    label = d.get("label")
    if isinstance(label, str) and len(label) > limits.max_label_chars:
        raise LabelFileError(
            f"{where}: label is {len(label)} characters, over the "
            f"{limits.max_label_chars}-character limit for a label name"
        )
    points = d.get("points")
    if isinstance(points, list | tuple) and len(points) > limits.max_vertices:
        raise LabelFileError(
            f"{where}: {len(points)} vertices, over the limit of {limits.max_vertices} per "
            "shape; simplify the outline in labelme"
        )
    description = d.get("description")
    if isinstance(description, str) and len(description) > limits.max_description_chars:
        raise LabelFileError(
            f"{where}: description is {len(description)} characters, over the limit of "
            f"{limits.max_description_chars}"
        )
    _check_flags_size(d.get("flags"), where, limits)
    skip = _SHAPE_KEYS | ({"mask"} if d.get("shape_type") == "mask" else set())
    extra = {k: v for k, v in d.items() if k not in skip}
    if extra and _json_size(extra) > limits.max_extra_bytes:
        raise LabelFileError(
            f"{where}: its extra keys {_show(sorted(extra))} are over the limit of "
            f"{limits.max_extra_bytes} bytes"
        )


# labelme's per-shape keys (labelme._label_file._load_shape_json_obj) but "mask", which only a
# mask shape uses as such (on other shapes a mask string is kept, and counted, as an extra).
_SHAPE_KEYS = frozenset({"label", "points", "group_id", "description", "shape_type", "flags"})


def _mask_shapes(
    d: Mapping, index: int, size: tuple[int, int], source: str, limits: LabelMeLimits
) -> list[dict]:
    """labelme's mask shape as polygon dicts, one per connected region of the mask.

    The box is labelme's: ``(x1, y1), (x2, y2) = np.asarray(points).astype(int)`` and the
    mask fills ``[y1:y2+1, x1:x2+1]`` (labelme.utils.shapes_to_label).
    """
    import cv2  # imported here: only files with mask shapes need OpenCV

    where = f"{source}: {_shape_ref(d, index)} (mask)"
    points, b64 = d.get("points"), d.get("mask")
    corners_ok = (
        isinstance(points, list)
        and len(points) == 2
        and all(
            # abs() < 2**31 also refuses NaN and infinities, without converting huge ints.
            isinstance(p, list) and len(p) == 2 and all(_is_number(v) and abs(v) < 2**31 for v in p)
            for p in points
        )
    )
    if not corners_ok:
        raise LabelFileError(
            f"{where}: points must be the mask box's two corners [[x1, y1], [x2, y2]]"
        )
    if not isinstance(b64, str):
        raise LabelFileError(f"{where}: mask must be a base64-encoded PNG")
    (x1, y1), (x2, y2) = np.asarray(points, dtype=np.float64).astype(int).tolist()
    width, height = size
    if not (0 <= x1 <= x2 < width and 0 <= y1 <= y2 < height):
        raise LabelFileError(f"{where}: the mask box lies outside the {width}x{height} image")
    try:
        with PIL.Image.open(io.BytesIO(base64.b64decode(b64, validate=True))) as im:
            _check_pixels(im.size, where, limits)
            if im.size != (x2 - x1 + 1, y2 - y1 + 1):
                raise LabelFileError(
                    f"{where}: the mask is {im.size[0]}x{im.size[1]} pixels but its box is "
                    f"{x2 - x1 + 1}x{y2 - y1 + 1}"
                )
            mask = np.asarray(im)
    except LabelFileError:
        raise
    except PIL.Image.DecompressionBombError as e:
        raise LabelFileError(f"{where}: the mask image is over the size limit") from e
    except (binascii.Error, ValueError, OSError, SyntaxError) as e:
        raise LabelFileError(
            f"{where}: mask is not a base64-encoded PNG that can be read ({type(e).__name__})"
        ) from e
    if mask.ndim != 2:
        raise LabelFileError(f"{where}: the mask must be a one-channel (black and white) PNG")
    contours, _ = cv2.findContours(
        mask.astype(bool).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if len(contours) > limits.max_shapes:
        raise LabelFileError(
            f"{where}: the mask has {len(contours)} separate regions, over the limit of "
            f"{limits.max_shapes} shapes; simplify the mask"
        )
    keep = {k: v for k, v in d.items() if k not in ("points", "shape_type", "mask")}
    out = []
    for contour in sorted(contours, key=lambda c: (int(c[:, 0, 1].min()), int(c[:, 0, 0].min()))):
        vertices = (contour.reshape(-1, 2) + (x1, y1)).astype(float).tolist()
        distinct = len({tuple(v) for v in vertices})
        if distinct >= 3:
            out.append({**keep, "points": vertices, "shape_type": "polygon"})
        elif distinct == 2:  # a straight line one pixel wide: its two ends, one pixel thick
            ends = [vertices[0], next(v for v in vertices if v != vertices[0])]
            out.append({**keep, "points": ends, "shape_type": "linestrip", "stroke_width": 1.0})
    return out


def _check_shape_count(n: int, source: str, limits: LabelMeLimits) -> None:
    if n > limits.max_shapes:
        raise LabelFileError(
            f"{source}: over {limits.max_shapes} shapes (mask regions count one each); "
            "split the file or simplify its masks"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_labelme(
    data: Any,
    source: str = "LabelMe file",
    image_size: tuple[int, int] | None = None,
    limits: LabelMeLimits = DEFAULT_LIMITS,
) -> LabelFile:
    """Validate a decoded LabelMe JSON object and return it with validated shapes.

    `image_size` (width, height) is the real image's size when known; it must match the
    file's. Shapes are checked against the image and clipped to it (see annotations.shapes);
    labelme ``mask`` shapes become polygons (module docstring). `limits` bound the cost.
    """
    _check_top_level(data, source)
    _check_flags_size(data.get("flags"), source, limits)
    extra = {k: v for k, v in data.items() if k not in _RESERVED}
    if extra and _json_size(extra) > limits.max_extra_bytes:
        raise LabelFileError(
            f"{source}: extra keys {_show(sorted(extra))} are over the limit of "
            f"{limits.max_extra_bytes} bytes"
        )
    width, height = _resolve_size(data, source, image_size, limits)
    dicts: list[tuple[int, Any]] = []
    for i, d in enumerate(data["shapes"]):
        _check_shape_limits(d, i, source, limits)
        if isinstance(d, Mapping) and d.get("shape_type") == "mask":
            for polygon in _mask_shapes(d, i, (width, height), source, limits):
                _check_shape_limits(polygon, i, source, limits)
                dicts.append((i, polygon))
                _check_shape_count(len(dicts), source, limits)
        else:
            dicts.append((i, d))
            _check_shape_count(len(dicts), source, limits)
    try:
        shapes = tuple(
            validate_shape(shape_from_dict(d, index=i), (width, height), index=i) for i, d in dicts
        )
    except ShapeError as e:
        raise LabelFileError(f"{source}: {e}") from e
    return LabelFile(
        version=data.get("version"),
        flags=data.get("flags") or {},
        shapes=shapes,
        image_path=data["imagePath"],
        image_data=data.get("imageData"),
        image_height=height,
        image_width=width,
        extra=extra,
    )


def _nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest, from the text, before json builds anything."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    opens = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((opens == ord("[")) | (opens == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def loads_labelme(
    text: str | bytes,
    source: str = "LabelMe file",
    image_size: tuple[int, int] | None = None,
    limits: LabelMeLimits = DEFAULT_LIMITS,
) -> LabelFile:
    """Parse LabelMe JSON text; invalid, truncated, oversized, too deeply nested JSON or
    JSON with a duplicate key is a LabelFileError."""
    # Text is measured and scanned as UTF-8 (surrogates passed through: json decides on them).
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > limits.max_bytes:
        raise LabelFileError(
            f"{source}: {_amount(len(raw))}, over the limit of {_amount(limits.max_bytes)} "
            "for a LabelMe file"
        )
    depth = _nesting_depth(raw)
    if depth > limits.max_depth:
        raise LabelFileError(
            f"{source}: JSON nested {depth} levels deep, over the limit of {limits.max_depth}; "
            "is this a LabelMe file?"
        )

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise LabelFileError(
                    f"{source}: duplicate key {_show(key)} in one JSON object; "
                    "JSON readers would silently keep only the last one"
                )
            obj[key] = value
        return obj

    try:
        decoded = text if isinstance(text, str) else raw.decode("utf-8-sig")
        data = json.loads(decoded, object_pairs_hook=unique_keys)
    except UnicodeDecodeError as e:
        raise LabelFileError(
            f"{source}: not UTF-8 text (byte {e.start}); is this a LabelMe file?"
        ) from e
    except json.JSONDecodeError as e:
        raise LabelFileError(
            f"{source}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); "
            "the file may be truncated or not a LabelMe file"
        ) from e
    except RecursionError as e:  # the depth check above should have caught it
        raise LabelFileError(f"{source}: JSON nested too deeply to read") from e
    except LabelFileError:
        raise
    except ValueError as e:  # an integer of over 4,300 digits (Python's int conversion limit)
        raise LabelFileError(
            f"{source}: a number has too many digits to be read (over 4,300)"
        ) from e
    try:  # JSON escapes can spell lone surrogates, which no UTF-8 file (no export) can hold
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise LabelFileError(
            f"{source}: holds an invalid character (a lone UTF-16 surrogate escape); "
            "save the file again with a UTF-8 editor or labelme"
        ) from e
    return parse_labelme(data, source=source, image_size=image_size, limits=limits)


def read_labelme(
    path: str | Path,
    image_size: tuple[int, int] | None = None,
    limits: LabelMeLimits = DEFAULT_LIMITS,
) -> LabelFile:
    """Read and validate the LabelMe file at `path`."""
    try:
        with Path(path).open("rb") as f:
            raw = f.read(limits.max_bytes + 1)  # one byte over is enough to refuse
    except OSError as e:
        raise LabelFileError(f"{path}: cannot read ({e.strerror or e})") from e
    return loads_labelme(raw, source=str(path), image_size=image_size, limits=limits)


def labelme_to_dict(
    label_file: LabelFile,
    include_image_data: bool = False,
    image_bytes: bytes | None = None,
) -> dict[str, Any]:
    """The JSON object to write, in labelme's key order, unknown keys last.

    With `include_image_data`, imageData is `image_bytes` (the image file's bytes) or, when
    none are given, the file's own embedded data; it must match the declared size.
    """
    source = label_file.image_path or "LabelMe file"
    size = (label_file.image_width, label_file.image_height)
    image_data = None
    if include_image_data:
        if image_bytes is not None:
            image_data = base64.b64encode(image_bytes).decode("ascii")
        elif label_file.image_data is not None:
            image_data = label_file.image_data
        else:
            raise LabelFileError(f"{source}: imageData requested but no image bytes given")
        embedded = _image_data_size(image_data, source)
        if embedded != size:
            raise LabelFileError(
                f"{source}: image size mismatch: declared {size[0]}x{size[1]} but image data "
                f"{embedded[0]}x{embedded[1]}"
            )
    clash = sorted(set(label_file.extra) & set(_RESERVED))
    if clash:
        raise LabelFileError(f"{source}: extra keys clash with LabelMe fields: {clash}")
    try:
        shapes = [shape_to_dict(s) for s in validate_shapes(label_file.shapes, size)]
    except ShapeError as e:
        raise LabelFileError(f"{source}: {e}") from e
    return {
        "version": label_file.version or DEFAULT_VERSION,
        "flags": thaw(label_file.flags),
        "shapes": shapes,
        "imagePath": label_file.image_path,
        "imageData": image_data,
        "imageHeight": label_file.image_height,
        "imageWidth": label_file.image_width,
        **thaw(label_file.extra),
    }


def dumps_labelme(
    label_file: LabelFile, include_image_data: bool = False, image_bytes: bytes | None = None
) -> str:
    """LabelMe JSON text: one line per top-level key and per shape, UTF-8 kept.

    labelme itself indents every number onto its own line; json's indenting encoder is pure
    Python and ~10x slower than the compact C one on 1,000-vertex polygons, so each shape is
    encoded compactly and only the outer layout is indented. Any JSON reader sees the same.
    """
    payload = labelme_to_dict(label_file, include_image_data, image_bytes)

    def enc(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = []
    for key, value in payload.items():
        if key == "shapes" and value:
            body = ",\n".join(f"    {enc(shape)}" for shape in value)
            lines.append(f'  "shapes": [\n{body}\n  ]')
        else:
            lines.append(f"  {enc(key)}: {enc(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_labelme(
    path: str | Path,
    label_file: LabelFile,
    include_image_data: bool = False,
    image_bytes: bytes | None = None,
) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    text = dumps_labelme(label_file, include_image_data, image_bytes)
    atomic_write_bytes(path, text.encode("utf-8"))


__all__ = [
    "DEFAULT_VERSION",
    "LabelFile",
    "LabelFileError",
    "LabelMeError",
    "LabelMeLimits",
    "dumps_labelme",
    "labelme_to_dict",
    "loads_labelme",
    "parse_labelme",
    "read_labelme",
    "write_labelme",
]
