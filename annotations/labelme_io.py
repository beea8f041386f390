"""LabelMe JSON files: strict parsing, lossless round trips, atomic writes.

Reads what labelme 3.x-7.x writes: files without ``version``, ``imageHeight``/``imageWidth``,
``imageData`` or per-shape ``description``/``flags``/``mask``/``group_id``; a null or missing
``shape_type`` (labelme 3.x) is a polygon; old colour keys (``lineColor``, ``line_color``, ...)
and any other unknown key are kept and written back. Writes what labelme 6.3.1's
``read_label_file`` requires: ``imagePath``, ``imageData`` (null unless asked for) and
``shape_type`` always present.

Every error is a `LabelFileError` whose message starts with the file it is about, then names
the key or shape and the rule broken, so a user can open the file and fix it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image

from annotations._frozen import FrozenMap, thaw
from annotations.files import atomic_write_bytes
from annotations.shapes import Shape, ShapeError, shape_from_dict, shape_to_dict, validate_shapes

# The version we write when a file came without one (labelme 3.x did not record it).
DEFAULT_VERSION = "5.5.0"
# Top-level keys with a field of their own; everything else is `extra`.
_RESERVED = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth")


class LabelFileError(ValueError):
    """A LabelMe file that cannot be read or written; the message says where and why."""


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


def _image_data_size(b64: str, source: str) -> tuple[int, int]:
    """(width, height) of embedded imageData; only the image header is decoded."""
    try:
        raw = base64.b64decode(b64, validate=True)
        with PIL.Image.open(io.BytesIO(raw)) as im:
            return im.size
    except (binascii.Error, ValueError, OSError) as e:
        raise LabelFileError(
            f"{source}: imageData is not a base64-encoded image ({e}); "
            "set it to null to use the image file instead"
        ) from e


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
        "imageHeight": (lambda v: v is None or (_is_int(v) and v > 0), "a positive integer"),
        "imageWidth": (lambda v: v is None or (_is_int(v) and v > 0), "a positive integer"),
    }
    for key, (ok, what) in rules.items():
        if key in data and not ok(data[key]):
            raise LabelFileError(f"{source}: {key} must be {what}, got {data[key]!r}")


def _resolve_size(data: dict, source: str, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """The image's (width, height): declared, embedded and actual sizes must all agree."""
    declared = (data.get("imageWidth"), data.get("imageHeight"))
    sizes: list[tuple[str, tuple[int | None, int | None]]] = [("declared", declared)]
    if data.get("imageData") is not None:
        sizes.append(("imageData", _image_data_size(data["imageData"], source)))
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


def parse_labelme(
    data: Any, source: str = "LabelMe file", image_size: tuple[int, int] | None = None
) -> LabelFile:
    """Validate a decoded LabelMe JSON object and return it with validated shapes.

    `image_size` (width, height) is the real image's size when known; it must match the
    file's. Shapes are checked against the image and clipped to it (see annotations.shapes).
    """
    _check_top_level(data, source)
    width, height = _resolve_size(data, source, image_size)
    try:
        shapes = validate_shapes(
            [shape_from_dict(d, index=i) for i, d in enumerate(data["shapes"])], (width, height)
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
        extra={k: v for k, v in data.items() if k not in _RESERVED},
    )


def loads_labelme(
    text: str | bytes, source: str = "LabelMe file", image_size: tuple[int, int] | None = None
) -> LabelFile:
    """Parse LabelMe JSON text; invalid or truncated JSON is a LabelFileError."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")
        data = json.loads(text)
    except UnicodeDecodeError as e:
        raise LabelFileError(f"{source}: not UTF-8 text ({e}); is this a LabelMe file?") from e
    except json.JSONDecodeError as e:
        raise LabelFileError(
            f"{source}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); "
            "the file may be truncated or not a LabelMe file"
        ) from e
    return parse_labelme(data, source=source, image_size=image_size)


def read_labelme(path: str | Path, image_size: tuple[int, int] | None = None) -> LabelFile:
    """Read and validate the LabelMe file at `path`."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise LabelFileError(f"{path}: cannot read ({e.strerror or e})") from e
    return loads_labelme(raw, source=str(path), image_size=image_size)


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
    "dumps_labelme",
    "labelme_to_dict",
    "loads_labelme",
    "parse_labelme",
    "read_labelme",
    "write_labelme",
]
