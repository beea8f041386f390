"""LabelMe files: every labelme generation reads, nothing is lost on a round trip, labelme
6.3.1 reads what we write, and malformed files fail naming the file, shape and rule."""

from __future__ import annotations

import base64
import io
import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import PIL.Image
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from labelme._label_file import read_label_file
from loguru import logger

from annotations.labelme_io import (
    LabelFile,
    LabelFileError,
    dumps_labelme,
    loads_labelme,
    parse_labelme,
    read_labelme,
    write_labelme,
)
from annotations.shapes import Shape

logger.disable("labelme")  # labelme logs every image it loads

W, H = 40, 30
TRIANGLE = [[2.5, 3.25], [30.0, 4.0], [12.0, 25.75]]


def png_bytes(width: int = W, height: int = H) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def labelme_3x() -> dict:
    # labelme 3.x: no version, no image size, no shape_type (polygon), colour keys.
    return {
        "flags": {},
        "shapes": [{"label": "lung", "line_color": None, "fill_color": None, "points": TRIANGLE}],
        "lineColor": [0, 255, 0, 128],
        "fillColor": [255, 0, 0, 128],
        "imagePath": "old.jpg",
        "imageData": base64.b64encode(png_bytes()).decode(),
    }


def labelme_4x() -> dict:
    return {
        "version": "4.5.13",
        "flags": {"reviewed": True},
        "shapes": [
            {
                "label": "lung",
                "points": TRIANGLE,
                "group_id": 2,
                "shape_type": "polygon",
                "flags": {},
                "line_color": None,
            },
            {
                "label": "tube",
                "points": [[1, 1], [20, 20], [35, 5]],
                "group_id": None,
                "shape_type": "linestrip",
                "flags": {},
            },
        ],
        "lineColor": [0, 255, 0, 128],
        "imagePath": "..\\images\\a.png",
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
    }


def labelme_5x() -> dict:
    return {
        "version": "5.5.0",
        "flags": {},
        "shapes": [
            {
                "label": "pneumonia",
                "points": [[30, 20], [5, 2]],
                "group_id": None,
                "description": "right lower zone",
                "shape_type": "rectangle",
                "flags": {"confident": False},
                "mask": None,
            },
            {
                "label": "marker",
                "points": [[10, 10]],
                "group_id": None,
                "description": "",
                "shape_type": "point",
                "flags": {},
                "mask": None,
            },
            {
                "label": "nodule",
                "points": [[20, 15], [24, 15]],
                "shape_type": "circle",
            },
        ],
        "imagePath": "a.png",
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
        "reviewer_note": {"nested": [1, 2, {"k": "v"}]},
    }


def labelme_7x() -> dict:
    d = labelme_5x()
    d["version"] = "7.0.1"
    d["shapes"][0]["shape_type"] = None  # null shape_type: a polygon, as labelme 3.x meant
    d["shapes"][0]["points"] = TRIANGLE
    d["shapes"][0]["description"] = None
    d["shapes"][0]["flags"] = None
    return d


GENERATIONS = {"3.x": labelme_3x, "4.x": labelme_4x, "5.x": labelme_5x, "7.x": labelme_7x}


@pytest.mark.parametrize("generation", GENERATIONS)
def test_files_of_every_labelme_generation_import(generation):
    data = GENERATIONS[generation]()
    lf = parse_labelme(data, source=f"{generation}.json", image_size=(W, H))
    assert (lf.image_width, lf.image_height) == (W, H)
    assert len(lf.shapes) == len(data["shapes"])
    for shape, raw in zip(lf.shapes, data["shapes"], strict=True):
        assert shape.label == raw["label"]
        assert shape.shape_type == (raw.get("shape_type") or "polygon")
        if shape.shape_type != "rectangle":
            assert [list(p) for p in shape.points] == [[float(v) for v in p] for p in raw["points"]]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_round_trip_keeps_every_field_and_unknown_key(generation, tmp_path):
    data = GENERATIONS[generation]()
    lf = parse_labelme(data, image_size=(W, H))
    path = tmp_path / "a.json"
    write_labelme(path, lf, include_image_data=lf.image_data is not None)
    again = read_labelme(path, image_size=(W, H))
    # A file without a version (labelme 3.x) is written as the format version we write.
    assert again == LabelFile(**{**lf.__dict__, "version": lf.version or "5.5.0"})
    written = json.loads(path.read_text())
    for key in set(data) - {"version"}:
        assert key in written, key
    for raw, out in zip(data["shapes"], written["shapes"], strict=True):
        # Unknown per-shape keys (old colour keys) come back; missing fields get defaults.
        assert set(raw) - {"shape_type"} <= set(out)
        assert out["shape_type"] in ("polygon", "linestrip", "rectangle", "point", "circle")


@pytest.mark.parametrize("generation", GENERATIONS)
def test_labelme_reads_what_we_write(generation, tmp_path):
    lf = parse_labelme(GENERATIONS[generation](), image_size=(W, H))
    (tmp_path / "a.png").write_bytes(png_bytes())
    lf = LabelFile(**{**lf.__dict__, "image_path": "a.png"})
    write_labelme(tmp_path / "a.json", lf)
    loaded = read_label_file(str(tmp_path / "a.json"))
    assert [s["label"] for s in loaded.shapes] == [s.label for s in lf.shapes]
    assert [s["points"] for s in loaded.shapes] == [[list(p) for p in s.points] for s in lf.shapes]
    assert [s["shape_type"] for s in loaded.shapes] == [s.shape_type for s in lf.shapes]


def test_image_data_is_off_by_default_and_embedded_on_request(tmp_path):
    lf = parse_labelme(labelme_5x(), image_size=(W, H))
    write_labelme(tmp_path / "off.json", lf)
    assert json.loads((tmp_path / "off.json").read_text())["imageData"] is None
    write_labelme(tmp_path / "on.json", lf, include_image_data=True, image_bytes=png_bytes())
    embedded = json.loads((tmp_path / "on.json").read_text())["imageData"]
    assert base64.b64decode(embedded) == png_bytes()
    # labelme decodes the embedded image itself (no image file beside the JSON).
    assert read_label_file(str(tmp_path / "on.json")).image_data == png_bytes()


def test_embedding_an_image_of_another_size_is_refused(tmp_path):
    lf = parse_labelme(labelme_5x(), image_size=(W, H))
    with pytest.raises(LabelFileError, match="image size mismatch"):
        write_labelme(tmp_path / "a.json", lf, include_image_data=True, image_bytes=png_bytes(9, 9))
    assert not (tmp_path / "a.json").exists()


def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    lf = parse_labelme(labelme_5x(), image_size=(W, H))
    write_labelme(path, lf)
    before = path.read_bytes()

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    changed = LabelFile(**{**lf.__dict__, "flags": {"changed": True}})
    with pytest.raises(OSError, match="disk full"):
        write_labelme(path, changed)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_size_comes_from_image_data_when_the_file_has_none():
    lf = parse_labelme(labelme_3x())
    assert lf.image_size == (W, H)


def test_no_size_anywhere_says_what_to_do():
    data = labelme_3x()
    data["imageData"] = None
    with pytest.raises(LabelFileError, match="no image size.*beside its image"):
        parse_labelme(data, source="old.json")
    assert parse_labelme(data, image_size=(W, H)).image_size == (W, H)


def _set(path: str, value):
    def mutate(d: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[int(p)] if p.isdigit() else d[p]
        if value is KeyError:
            del d[int(last) if last.isdigit() else last]
        else:
            d[int(last) if last.isdigit() else last] = value

    return mutate


MALFORMED = {
    "top level is a list": (lambda d: d.clear(), r"JSON object"),
    "shapes missing": (_set("shapes", KeyError), r"missing required key 'shapes'"),
    "imagePath missing": (_set("imagePath", KeyError), r"missing required key 'imagePath'"),
    "shapes not a list": (_set("shapes", {"a": 1}), r"shapes must be a list"),
    "imagePath a number": (_set("imagePath", 7), r"imagePath must be a string"),
    "height a string": (_set("imageHeight", "30"), r"imageHeight must be a positive integer"),
    "width zero": (_set("imageWidth", 0), r"imageWidth must be a positive integer"),
    "only one dimension": (_set("imageWidth", None), r"must be given together"),
    "file flags not booleans": (_set("flags", {"x": 1}), r"flags must be"),
    "shape not an object": (_set("shapes.0", "lung"), r"shape #0.*JSON object"),
    "label missing": (_set("shapes.1.label", KeyError), r"shape #1.*missing required key 'label'"),
    "label a number": (_set("shapes.0.label", 3), r"shape #0.*label must be a string"),
    "empty label": (_set("shapes.0.label", ""), r"shape #0.*label must be a non-empty string"),
    "points missing": (
        _set("shapes.0.points", KeyError),
        r"shape #0.*missing required key 'points'",
    ),
    "point a string": (
        _set("shapes.1.points", [[1, 1], ["2", 2]]),
        r"shape #1 'marker' \(point\): point 1 must be a pair of numbers",
    ),
    "point with three numbers": (_set("shapes.0.points", [[1, 2, 3], [5, 6]]), r"point 0"),
    "boolean coordinate": (_set("shapes.0.points", [[True, 2], [5, 6]]), r"point 0"),
    "rectangle with three points": (
        _set("shapes.0.points", [[1, 1], [5, 5], [9, 9]]),
        r"shape #0 'pneumonia' \(rectangle\): needs exactly 2 point\(s\), got 3",
    ),
    "point with two points": (
        _set("shapes.1.points", [[1, 1], [5, 5]]),
        r"shape #1 'marker' \(point\): needs exactly 1",
    ),
    "polygon with two points": (
        lambda d: d["shapes"].append({"label": "lung", "points": [[1, 1], [2, 2]]}),
        r"shape #3 'lung' \(polygon\): needs at least 3 points",
    ),
    "polygon with repeated points": (
        lambda d: d["shapes"].append({"label": "lung", "points": [[1, 1], [1, 1], [2, 2]]}),
        r"shape #3.*at least 3 distinct points",
    ),
    "zero-area rectangle": (_set("shapes.0.points", [[1, 1], [1, 9]]), r"zero area"),
    "unknown shape type": (
        _set("shapes.2.shape_type", "blob"),
        r"shape #2.*unsupported shape type",
    ),
    "group_id a string": (_set("shapes.0.group_id", "a"), r"group_id must be an integer"),
    "description a number": (_set("shapes.0.description", 5), r"description must be a string"),
    "shape flags a list": (_set("shapes.0.flags", ["x"]), r"flags must map names"),
    "mask not a string": (_set("shapes.0.mask", [1]), r"mask must be a base64 PNG"),
    "image size mismatch": (_set("imageWidth", 41), r"image size mismatch: declared 41x30"),
    "imageData not an image": (_set("imageData", "aGVsbG8="), r"imageData is not a base64"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_files_fail_naming_the_file_and_rule(case):
    mutate, message = MALFORMED[case]
    data = labelme_5x()
    mutate(data)
    if case == "top level is a list":
        data = []
    with pytest.raises(LabelFileError, match=message) as err:
        parse_labelme(data, source="bad.json", image_size=(W, H))
    assert str(err.value).startswith("bad.json: ")


def test_non_finite_coordinates_are_refused():
    # Python's json accepts NaN/Infinity; a mask cannot be drawn from them.
    text = json.dumps(labelme_5x()).replace("[10, 10]", "[NaN, 10]")
    with pytest.raises(LabelFileError, match=r"shape #1 'marker'.*not finite"):
        loads_labelme(text, source="nan.json", image_size=(W, H))


def test_invalid_and_truncated_json_say_where(tmp_path):
    path = tmp_path / "cut.json"
    text = json.dumps(labelme_5x(), indent=2)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(LabelFileError, match=r"cut.json: not valid JSON at line \d+.*truncated"):
        read_labelme(path, image_size=(W, H))
    with pytest.raises(LabelFileError, match="not valid JSON"):
        loads_labelme("{'single': 'quotes'}")
    with pytest.raises(LabelFileError, match="not UTF-8"):
        loads_labelme(b"\xff\xfe\x00garbage")
    with pytest.raises(LabelFileError, match="cannot read"):
        read_labelme(tmp_path / "missing.json")


def test_real_file_round_trips_and_labelme_reads_it(cxr_lungs_dir, tmp_path):
    src = sorted(cxr_lungs_dir.glob("*.json"))[0]
    image = PIL.Image.open(src.with_suffix(".jpg"))
    lf = read_labelme(src, image_size=image.size)
    assert [s.label for s in lf.shapes] == ["lung", "lung"]
    raw = json.loads(src.read_text())
    assert [list(p) for p in lf.shapes[0].points] == raw["shapes"][0]["points"]
    image.save(tmp_path / "x.png")
    out = tmp_path / "x.json"
    write_labelme(out, LabelFile(**{**lf.__dict__, "image_path": "x.png"}))
    assert read_labelme(out) == LabelFile(**{**lf.__dict__, "image_path": "x.png"})
    assert read_label_file(str(out)).shapes[1]["points"] == raw["shapes"][1]["points"]


# Hypothesis: any valid file survives write -> read unchanged.
xs = st.floats(0, W - 1, allow_nan=False).map(lambda v: round(v, 3))
ys = st.floats(0, H - 1, allow_nan=False).map(lambda v: round(v, 3))
polygon = st.lists(st.tuples(xs, ys), min_size=3, max_size=20, unique=True)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
unknown = st.dictionaries(
    st.text(min_size=1, max_size=6).filter(lambda k: not k.startswith("image")),
    st.one_of(json_scalars, st.lists(json_scalars, max_size=3)),
    max_size=3,
)


@st.composite
def label_files(draw):
    shapes = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["polygon", "linestrip", "rectangle"]))
        points = draw(polygon)
        if kind == "rectangle":  # stored top-left first, as validation normalises it
            (x0, y0), (x1, y1) = points[:2]
            assume(x0 != x1 and y0 != y1)
            points = [(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))]
        extra = {k: v for k, v in draw(unknown).items() if k not in ("label", "points")}
        shapes.append(
            Shape(
                label=draw(st.text(min_size=1, max_size=8)),
                shape_type=kind,
                points=tuple(points),
                group_id=draw(st.one_of(st.none(), st.integers(0, 9))),
                description=draw(st.text(max_size=10)),
                flags=draw(st.dictionaries(st.text(max_size=4), st.booleans(), max_size=2)),
                stroke_width=draw(st.one_of(st.none(), st.floats(1, 20))),
                extra={
                    k: v
                    for k, v in extra.items()
                    if k not in {"group_id", "description", "shape_type", "flags"}
                    and k not in {"stroke_width", "mask"}
                },
            )
        )
    extra = {
        k: v
        for k, v in draw(unknown).items()
        if k not in ("version", "flags", "shapes", "imagePath", "imageData")
    }
    return LabelFile(
        version=draw(st.sampled_from(["5.5.0", "4.5.6", None])),
        flags=draw(st.dictionaries(st.text(max_size=4), st.booleans(), max_size=2)),
        shapes=tuple(shapes),
        image_path=draw(st.text(max_size=12)),
        image_data=None,
        image_height=H,
        image_width=W,
        extra=extra,
    )


@settings(max_examples=150, deadline=None)
@given(label_files())
def test_any_valid_file_round_trips_unchanged(lf):
    again = loads_labelme(dumps_labelme(lf), image_size=(W, H))
    expected_version = lf.version or "5.5.0"
    assert again == LabelFile(**{**lf.__dict__, "version": expected_version})


# --- bounded, strict reading (hostile files) -------------------------------------------------


def _file(**changes) -> dict:
    base = {
        "version": "5.5.0",
        "flags": {},
        "shapes": [{"label": "lung", "points": TRIANGLE, "shape_type": "polygon"}],
        "imagePath": "x.png",
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
    }
    return {**base, **changes}


def _text(**changes) -> str:
    return json.dumps(_file(**changes))


def test_duplicate_keys_are_refused_at_every_level():
    # json keeps the last duplicate: a second "shapes": [] would silently un-label the image.
    with pytest.raises(LabelFileError, match=r"t.json: duplicate key 'shapes'"):
        loads_labelme(_text()[:-1] + ', "shapes": []}', source="t.json")
    shape = '{"label": "lung", "label": "heart", "points": [[1, 1], [9, 1], [5, 8]]}'
    with pytest.raises(LabelFileError, match=r"duplicate key 'label'"):
        loads_labelme(_text(shapes=[])[:-1] + f', "more": [{shape}]}}', image_size=(W, H))


def test_nesting_depth_is_refused_before_json_recurses():
    with pytest.raises(LabelFileError, match=r"nested 100001 levels deep, over the limit of 32"):
        loads_labelme('{"shapes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(LabelFileError, match=r"nested 201 levels deep"):
        loads_labelme(_text()[:-1] + ', "provenance": ' + "[" * 200 + "]" * 200 + "}")
    # Brackets inside strings are text, not nesting.
    lf = loads_labelme(_text(note="[[[[" * 100 + '\\"{{{{' * 100))
    assert lf.extra["note"].startswith("[[[[")


@pytest.mark.parametrize(
    ("changes", "limits", "rule"),
    [
        (
            {"shapes": [{"label": "x" * 65, "points": TRIANGLE}]},
            {},
            r"shape #0 'x+\.\.\.x+': label is 65 characters, over the 64-character limit",
        ),
        (
            {"shapes": [{"label": "lung", "points": TRIANGLE * 4}]},
            {"max_vertices": 10},
            r"shape #0 'lung': 12 vertices, over the limit of 10 per shape",
        ),
        (
            {"shapes": [{"label": "lung", "points": TRIANGLE, "note": "n" * 70_000}]},
            {},
            r"shape #0 'lung': its extra keys \['note'\] are over the limit of 65536 bytes",
        ),
        (
            {"shapes": [{"label": "lung", "points": TRIANGLE, "description": "d" * 70_000}]},
            {},
            r"description is 70000 characters, over the limit of 65536",
        ),
        ({"note": "n" * 70_000}, {}, r"extra keys \['note'\] are over the limit of 65536 bytes"),
        ({"note": "n" * 2000}, {"max_bytes": 1024}, r"over the limit of 1,024 bytes for a LabelMe"),
        (
            {"flags": {f"flag{k}": True for k in range(8000)}},
            {},
            r"its 8000 flags are over the limit of 65536 bytes",
        ),
        (
            {"shapes": [{"label": "lung", "points": TRIANGLE, "flags": {"f" * 70_000: False}}]},
            {},
            r"shape #0 'lung': its 1 flags are over the limit of 65536 bytes",
        ),
    ],
    ids=[
        "label",
        "vertices",
        "shape-extra",
        "description",
        "file-extra",
        "file-size",
        "file-flags",
        "shape-flags",
    ],
)
def test_each_cost_limit_is_refused_by_name(changes, limits, rule):
    from annotations.labelme_io import LabelMeLimits

    with pytest.raises(LabelFileError, match=rule) as e:
        loads_labelme(_text(**changes), source="t.json", limits=LabelMeLimits(**limits))
    assert str(e.value).startswith("t.json: ") and len(str(e.value)) < 300


def test_huge_numbers_are_refused_not_overflowing():
    huge = "1" + "0" * 399
    text = _text().replace("30.0", huge, 1)
    with pytest.raises(LabelFileError, match=r"point 1 has a coordinate too large to be a pixel"):
        loads_labelme(text, image_size=(W, H))
    with pytest.raises(LabelFileError, match=r"a number has too many digits"):
        loads_labelme(_text()[:-1] + ', "n": ' + "9" * 5000 + "}")


@pytest.mark.parametrize("pillow_limit", [None, 89_478_485], ids=["labelme-off", "pillow-on"])
def test_image_data_decompression_bomb_is_refused_from_its_header(
    monkeypatch, pillow_limit, png_claiming
):
    # labelme switches Pillow's own bomb check off when imported: ours must hold either way.
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", pillow_limit)
    bomb = base64.b64encode(png_claiming(30_000, 30_000)).decode()
    with pytest.raises(LabelFileError, match=r"t.json: imageData is an image .*over the limit"):
        loads_labelme(_text(imageData=bomb, imageHeight=None, imageWidth=None), source="t.json")


def _mask_shape(mask: np.ndarray, x1: int, y1: int) -> dict:
    buf = io.BytesIO()
    PIL.Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    h, w = mask.shape
    return {
        "label": "opacity",
        "points": [[x1, y1], [x1 + w - 1, y1 + h - 1]],
        "group_id": 3,
        "description": "ai",
        "shape_type": "mask",
        "flags": {"ai": True},
        "mask": base64.b64encode(buf.getvalue()).decode(),
    }


def test_labelme_mask_shapes_become_polygons_with_labelmes_pixels():
    from labelme.utils import shapes_to_label

    from annotations.rasterise import label_mask

    mask = np.zeros((20, 26), bool)
    mask[2:12, 3:15] = True  # a block with a notch
    mask[5:8, 10:15] = False
    mask[15, 2:20] = True  # a one-pixel line
    mask[18, 24] = True  # an isolated pixel: dropped
    raw = _file(shapes=[_mask_shape(mask, 8, 6), {"label": "lung", "points": TRIANGLE}])
    lf = parse_labelme(raw, image_size=(W, H))
    kinds = [(s.label, s.shape_type, s.group_id, s.description) for s in lf.shapes]
    assert kinds == [
        ("opacity", "polygon", 3, "ai"),
        ("opacity", "linestrip", 3, "ai"),
        ("lung", "polygon", None, ""),
    ]
    # labelme's own pixels of the mask shape (alone: the lung drawn after it would cover it).
    cls, _ = shapes_to_label((H, W), [{**raw["shapes"][0], "mask": mask}], {"_": 0, "opacity": 1})
    ours = label_mask(lf.shapes, (W, H), "opacity")
    expected = cls == 1
    expected[6 + 18, 8 + 24] = False  # the dropped pixel
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"points": [[30, 20], [60, 40]]}, r"the mask box lies outside the 40x30 image"),
        ({"points": [[1, 1], [5, 5]]}, r"the mask is 10x8 pixels but its box is 5x5"),
        ({"mask": "not base64!"}, r"mask is not a base64-encoded PNG that can be read"),
        ({"points": [[1, 1]]}, r"points must be the mask box's two corners"),
    ],
)
def test_malformed_mask_shapes_are_refused_by_rule(change, rule):
    shape = {**_mask_shape(np.ones((8, 10), bool), 1, 1), **change}
    with pytest.raises(LabelFileError, match=rule):
        parse_labelme(_file(shapes=[shape]), source="t.json", image_size=(W, H))
