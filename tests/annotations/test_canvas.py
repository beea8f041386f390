"""Canvas <-> shape conversion: Fabric.js objects in canvas pixels vs shapes in image pixels.

Fabric objects here are written as Fabric 7 (streamlit-drawable-canvas 0.13) serialises them:
its polygon tool leaves origin 'center' and left/top at the points' bounding-box centre, its
box tool origin 'left'/'top' with the stroke's outer edge at left/top, its point tool a circle
of origin 'left'/'center'. Transforms (move, scale, rotate, flip) are what its edit mode writes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from annotations.canvas import (
    LabelColours,
    Viewport,
    fabric_to_shapes,
    fit_viewport,
    render_viewport,
    rgba,
    shapes_to_fabric,
)
from annotations.shapes import Shape, shape_to_dict, validate_shapes

COLOURS = LabelColours.build([("pneumonia", "#ff3b30"), ("lung", "#34c759")])
DICOM = (1841, 1955)


def vp_1x() -> Viewport:
    return fit_viewport(DICOM, (820, 820))


def vp_2x() -> Viewport:
    return fit_viewport(DICOM, (820, 820), zoom=2.0, centre=(0.7, 0.4))


def polygon_tool_object(points, colour="#ff3b30", alpha=0.22, stroke=2.0, **extra) -> dict:
    """A closed polygon as the polygon tool writes it (origin centre at the bbox centre)."""
    pts = np.asarray(points, float)
    lo, hi = pts.min(0), pts.max(0)
    return {
        "type": "Polygon",
        "originX": "center",
        "originY": "center",
        "left": float((lo[0] + hi[0]) / 2),
        "top": float((lo[1] + hi[1]) / 2),
        "width": float(hi[0] - lo[0]),
        "height": float(hi[1] - lo[1]),
        "points": [{"x": float(x), "y": float(y)} for x, y in pts],
        "stroke": colour,
        "fill": rgba(colour, alpha),
        "strokeWidth": stroke,
        "scaleX": 1,
        "scaleY": 1,
        "angle": 0,
        **extra,
    }


def read(objects, vp, loaded=()):
    return fabric_to_shapes({"objects": objects}, vp, COLOURS, loaded)


def image_points(vp: Viewport, canvas_points) -> np.ndarray:
    return np.array([vp.to_image(x, y) for x, y in canvas_points])


# --- viewport ---------------------------------------------------------------------------------


def test_fit_viewport_keeps_aspect_and_canvas_size_at_every_zoom():
    one, two, four = (fit_viewport(DICOM, (820, 820), z) for z in (1, 2, 4))
    assert (one.canvas_width, one.canvas_height) == (772, 820)
    assert one.crop == (0, 0, 1841, 1955)
    for vp in (two, four):
        assert (vp.canvas_width, vp.canvas_height) == (772, 820)
    assert (two.region_width, two.region_height) == (920, 978)
    assert two.crop[:2] == (460, 488)  # centred
    assert four.scale_x == pytest.approx(4 * one.scale_x, rel=2e-3)


def test_pan_is_clamped_to_the_image():
    vp = fit_viewport(DICOM, (820, 820), 2, centre=(1.0, 0.0))
    assert vp.crop == (1841 - 920, 0, 1841, 978)
    with pytest.raises(ValueError, match="zoom"):
        fit_viewport(DICOM, (820, 820), 0.5)


def test_viewport_maps_both_ways_with_offset():
    vp = vp_2x()
    for x, y in [(0, 0), (vp.left, vp.top), (1200.5, 700.25)]:
        assert vp.to_image(*vp.to_canvas(x, y)) == pytest.approx((x, y))
    assert vp.to_canvas(vp.left, vp.top) == (0, 0)


def test_render_viewport_crops_the_shown_region():
    image = np.tile(np.arange(1841, dtype=np.float32), (1955, 1))  # value = x
    vp = fit_viewport(DICOM, (400, 400), 4, centre=(0.75, 0.5))
    out = render_viewport(image, vp)
    assert out.shape == (vp.canvas_height, vp.canvas_width)
    # Canvas column c shows image column left + (c + 0.5) / scale - 0.5.
    for c in (0, 50, vp.canvas_width - 1):
        expected = vp.left + (c + 0.5) / vp.scale_x - 0.5
        assert out[10, c] == pytest.approx(expected, abs=1.0)


# --- canvas -> shapes --------------------------------------------------------------------------


@pytest.mark.parametrize("vp", [vp_1x(), vp_2x()], ids=["1x", "2x-offset"])
def test_polygon_tool_object_reads_back_in_image_pixels(vp):
    canvas_pts = [(100.0, 120.0), (300.0, 90.0), (320.0, 400.0), (110.0, 380.0)]
    out = read([polygon_tool_object(canvas_pts)], vp)
    (shape,) = out.shapes
    assert shape.shape_type == "polygon" and shape.label == "pneumonia"
    np.testing.assert_allclose(shape.points, image_points(vp, canvas_pts), atol=1e-3)


def test_moved_polygon_moves_by_the_drag_in_image_pixels():
    vp = vp_2x()
    pts = [(100.0, 120.0), (300.0, 90.0), (320.0, 400.0)]
    obj = polygon_tool_object(pts)
    obj["left"] += 40
    obj["top"] -= 10
    (shape,) = read([obj], vp).shapes
    moved = [(x + 40, y - 10) for x, y in pts]
    np.testing.assert_allclose(shape.points, image_points(vp, moved), atol=1e-3)


def test_rotated_polygon_turns_about_its_centre():
    vp = vp_1x()
    pts = np.array([(100.0, 100.0), (200.0, 100.0), (200.0, 150.0)])
    obj = polygon_tool_object(pts, angle=90)  # origin centre: Fabric rotates about it
    (shape,) = read([obj], vp).shapes
    c = (pts.min(0) + pts.max(0)) / 2
    rotated = [(c[0] - (y - c[1]), c[1] + (x - c[0])) for x, y in pts]  # +90 deg, y down
    np.testing.assert_allclose(shape.points, image_points(vp, rotated), atol=1e-3)


def test_rotation_with_left_top_origin_pivots_on_the_corner_fabric_keeps_fixed():
    """Edit-mode rotation of an object with origin left/top: Fabric keeps the centre where it
    was and rewrites left/top; reading it back must give the same rotated points."""
    vp = vp_1x()
    pts = np.array([(100.0, 100.0), (200.0, 100.0), (200.0, 150.0)])
    sw = 2.0
    base = polygon_tool_object(pts, stroke=sw)
    w, h = base["width"] + sw, base["height"] + sw
    centre = np.array([base["left"], base["top"]])
    a = math.radians(30)
    # left/top = centre + R(a) @ (-w/2, -h/2): where Fabric puts the origin corner.
    corner = centre + np.array(
        [
            math.cos(a) * (-w / 2) - math.sin(a) * (-h / 2),
            math.sin(a) * (-w / 2) + math.cos(a) * (-h / 2),
        ]
    )
    obj = {
        **base,
        "originX": "left",
        "originY": "top",
        "left": corner[0],
        "top": corner[1],
        "angle": 30,
    }
    (shape,) = read([obj], vp).shapes
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    expected = (pts - centre) @ rot.T + centre
    np.testing.assert_allclose(shape.points, image_points(vp, expected), atol=1e-3)


def test_scaled_and_flipped_polygon():
    vp = vp_1x()
    pts = np.array([(100.0, 100.0), (200.0, 100.0), (150.0, 160.0)])
    obj = polygon_tool_object(pts, scaleX=2.0, scaleY=0.5, flipX=True)
    (shape,) = read([obj], vp).shapes
    c = (pts.min(0) + pts.max(0)) / 2
    expected = np.column_stack([c[0] - 2.0 * (pts[:, 0] - c[0]), c[1] + 0.5 * (pts[:, 1] - c[1])])
    np.testing.assert_allclose(shape.points, image_points(vp, expected), atol=1e-3)


def test_point_edited_polygon_with_points_relative_to_its_centre():
    """After vertex editing the component rebuilds a polygon with points around (0, 0)."""
    vp = vp_1x()
    local = [(-50.0, -30.0), (50.0, -30.0), (0.0, 30.0)]
    obj = polygon_tool_object(local)
    obj.update(left=250.0, top=300.0)  # origin centre: the bbox centre sits at (250, 300)
    (shape,) = read([obj], vp).shapes
    expected = [(250 + x, 300 + y) for x, y in local]
    np.testing.assert_allclose(shape.points, image_points(vp, expected), atol=1e-3)


def test_box_tool_rect_and_its_scaled_version():
    vp = vp_2x()
    sw = 2.0
    rect = {
        "type": "Rect", "originX": "left", "originY": "top", "left": 50.0, "top": 60.0,
        "width": 120.0, "height": 80.0, "strokeWidth": sw, "strokeUniform": True,
        "stroke": "#34c759", "fill": rgba("#34c759", 0.12), "scaleX": 1, "scaleY": 1, "angle": 0,
    }  # fmt: skip
    (shape,) = read([rect], vp).shapes
    assert shape.shape_type == "rectangle" and shape.label == "lung"
    # The outline's centre line: the stroke's outer edge is at left/top.
    expected = [(50 + sw / 2, 60 + sw / 2), (50 + sw / 2 + 120, 60 + sw / 2 + 80)]
    np.testing.assert_allclose(shape.points, image_points(vp, expected), atol=1e-3)
    scaled = {**rect, "scaleX": 2.0}  # dragged wider from the right-hand handle
    (shape,) = read([scaled], vp).shapes
    expected = [(50 + sw / 2, 60 + sw / 2), (50 + sw / 2 + 240, 60 + sw / 2 + 80)]
    np.testing.assert_allclose(shape.points, image_points(vp, expected), atol=1e-3)


def test_rotated_box_becomes_a_polygon():
    vp = vp_1x()
    rect = {
        "type": "Rect", "originX": "center", "originY": "center", "left": 200.0, "top": 200.0,
        "width": 100.0, "height": 50.0, "strokeWidth": 2, "stroke": "#ff3b30",
        "fill": rgba("#ff3b30", 0.12), "angle": 45,
    }  # fmt: skip
    (shape,) = read([rect], vp).shapes
    assert shape.shape_type == "polygon" and len(shape.points) == 4


def test_point_tool_circle_reads_as_its_centre():
    vp = vp_1x()
    r, sw, x, y = 4.0, 1.0, 300.0, 200.0
    circle = {
        "type": "Circle", "originX": "left", "originY": "center", "left": x - (r + sw / 2),
        "top": y, "radius": r, "strokeWidth": sw, "stroke": "#ff3b30",
        "fill": rgba("#ff3b30", 1.0),
    }  # fmt: skip
    (shape,) = read([circle], vp).shapes
    assert shape.shape_type == "point"
    np.testing.assert_allclose(shape.points, image_points(vp, [(x, y)]), atol=1e-3)


def test_polyline_keeps_its_width_in_image_pixels():
    vp = vp_1x()
    width_px = 12.0
    obj = polygon_tool_object(
        [(10.0, 10.0), (100.0, 40.0), (150.0, 20.0)], alpha=0.0, stroke=width_px * vp.scale
    )
    (shape,) = read([obj], vp).shapes
    assert shape.shape_type == "linestrip"
    assert shape.stroke_width == pytest.approx(width_px, abs=1e-3)


def test_open_polygon_in_progress_is_counted_not_stored():
    path = {"type": "Path", "path": [["M", 10, 10], ["L", 50, 10]], "stroke": "#ff3b30"}
    out = read([path, polygon_tool_object([(0, 0), (10, 0), (10, 10)])], vp_1x())
    assert out.open_polygons == 1 and len(out.shapes) == 1


def test_unknown_objects_are_reported():
    out = read([{"type": "Textbox", "text": "hi"}], vp_1x())
    assert out.shapes == [] and "Textbox" in out.problems[0]


# --- round trip -------------------------------------------------------------------------------

ALL_KINDS = [
    Shape("pneumonia", "polygon", ((500.0, 600.0), (900.0, 550.0), (950.0, 1000.0))),
    Shape("lung", "rectangle", ((1000.0, 700.0), (1400.0, 1100.0))),
    Shape("lung", "linestrip", ((100.0, 100.0), (300.0, 150.0), (400.0, 90.0)), stroke_width=15.0),
    Shape("pneumonia", "point", ((1200.0, 1500.0),)),
    Shape("pneumonia", "circle", ((800.0, 800.0), (850.0, 800.0))),
    Shape("lung", "line", ((10.0, 1900.0), (600.0, 1700.0))),
    Shape("lung", "oriented_rectangle", ((100, 100), (200, 120), (190, 170), (90, 150))),
]


@pytest.mark.parametrize("vp", [vp_1x(), vp_2x()], ids=["1x", "2x-offset"])
def test_every_shape_type_round_trips_through_the_canvas(vp):
    drawing = shapes_to_fabric(ALL_KINDS, vp, COLOURS)
    out = read(drawing["objects"], vp, ALL_KINDS)
    assert not out.problems and out.open_polygons == 0
    assert [s.shape_type for s in out.shapes] == [s.shape_type for s in ALL_KINDS]
    assert [s.label for s in out.shapes] == [s.label for s in ALL_KINDS]
    for got, want in zip(out.shapes, ALL_KINDS, strict=True):
        np.testing.assert_allclose(got.points, want.points, atol=2e-3)
        if want.stroke_width is None:
            assert got.stroke_width is None
        else:
            assert got.stroke_width == pytest.approx(want.stroke_width, abs=1e-3)


def test_loaded_shapes_keep_group_description_and_flags():
    vp = vp_2x()
    shape = Shape(
        "lung", "polygon", ((1000, 500), (1200, 500), (1100, 700)), group_id=3,
        description="left lower lobe", flags={"occluded": True}, extra={"other": 1},
    )  # fmt: skip
    drawing = shapes_to_fabric([shape], vp, COLOURS)
    drawing["objects"][0]["left"] += 10  # the reader moved it
    (got,) = read(drawing["objects"], vp, [shape]).shapes
    assert (got.group_id, got.description, dict(got.flags)) == (
        3,
        "left lower lobe",
        {"occluded": True},
    )
    assert got.points[0][0] == pytest.approx(1000 + 10 / vp.scale_x, abs=1e-3)
    assert shape_to_dict(got)["other"] == 1


def test_objects_read_back_are_valid_shapes():
    vp = vp_1x()
    out = read(shapes_to_fabric(ALL_KINDS, vp, COLOURS)["objects"], vp)
    assert len(validate_shapes(out.shapes, DICOM)) == len(ALL_KINDS)


# --- colours ----------------------------------------------------------------------------------


def test_labels_of_the_same_colour_still_get_distinct_canvas_colours():
    colours = LabelColours.build([("a", "#ffcc00"), ("b", "#ffcc00"), ("c", "#ffcc00")])
    assert len(set(colours.colours.values())) == 3
    for name in "abc":
        assert colours.label(colours.colour(name)) == name
    grown = colours.with_labels([("d", "#ffcc00"), ("a", "#000000")])
    assert grown.colour("a") == colours.colour("a") and grown.label(grown.colour("d")) == "d"
