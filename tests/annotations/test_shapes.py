"""Shape validation rules, and the stored JSON form keeping everything a file brought."""

from __future__ import annotations

import math

import pytest

from annotations.shapes import Shape, ShapeError, shape_from_dict, shape_to_dict, validate_shape

SIZE = (100, 80)


@pytest.mark.parametrize(
    ("shape", "rule"),
    [
        (Shape("lung", "polygon", ((1, 1), (5, 5))), r"needs at least 3 points, got 2"),
        (Shape("lung", "polygon", ((1, 1), (1, 1), (5, 5))), r"at least 3 distinct points"),
        (Shape("lung", "polygon", ((1, 1), (math.nan, 2), (5, 5))), r"point 1 is not finite"),
        (Shape("lung", "polygon", ((1, 1), (math.inf, 2), (5, 5))), r"point 1 is not finite"),
        (Shape("lung", "polygon", ((1, 1), ("2", 2), (5, 5))), r"point 1 must be a pair"),
        (Shape("box", "rectangle", ((1, 1), (5, 5), (6, 6))), r"needs exactly 2 point"),
        (Shape("box", "rectangle", ((1, 1), (1, 9))), r"zero area"),
        (Shape("c", "circle", ((4, 4), (4, 4))), r"zero radius"),
        (Shape("p", "point", ()), r"needs exactly 1 point"),
        (Shape("t", "linestrip", ((3, 3),)), r"needs at least 2 points"),
        (Shape("t", "linestrip", ((3, 3), (4, 4)), stroke_width=0), r"stroke width must be"),
        (Shape("", "polygon", ((1, 1), (5, 1), (5, 5))), r"label must be a non-empty string"),
        (Shape("x", "blob", ((1, 1),)), r"unsupported shape type 'blob'"),
        (Shape("x", "point", ((1, 1),), group_id=True), r"group_id must be an integer"),
        # Entirely off the top-left corner: clipping collapses it onto pixel (0, 0).
        (Shape("lung", "polygon", ((-9, 5), (-5, -3), (-7, -8))), r"distinct points inside"),
    ],
)
def test_each_invalid_shape_names_itself_and_the_rule(shape, rule):
    with pytest.raises(ShapeError, match=rule) as err:
        validate_shape(shape, SIZE, index=4)
    assert str(err.value).startswith(f"shape #4 {shape.label!r} ({shape.shape_type}): ")


def test_coordinates_outside_the_image_are_clipped_to_its_pixels():
    shape = validate_shape(Shape("lung", "polygon", ((-3.5, 10), (120, -1), (50.5, 95))), SIZE)
    assert shape.points == ((0.0, 10.0), (99.0, 0.0), (50.5, 79.0))


def test_rectangle_corners_in_any_order_become_top_left_bottom_right():
    for corners in (((60, 5), (10, 50)), ((10, 5), (60, 50)), ((60, 50), (10, 5))):
        assert validate_shape(Shape("b", "rectangle", corners), SIZE).points == (
            (10.0, 5.0),
            (60.0, 50.0),
        )


def test_self_intersecting_polygon_is_allowed():
    bowtie = Shape("x", "polygon", ((0, 0), (20, 20), (20, 0), (0, 20)))
    assert validate_shape(bowtie, SIZE).points == tuple(
        (float(x), float(y)) for x, y in bowtie.points
    )


def test_stored_form_keeps_unknown_keys_and_a_labelme_mask():
    raw = {
        "label": "lung",
        "points": [[1, 2], [3, 4], [5, 1]],
        "group_id": 3,
        "description": "left",
        "shape_type": "polygon",
        "flags": {"occluded": True},
        "mask": "iVBORw0KGgo=",
        "line_color": [0, 255, 0, 128],
        "fill_color": None,
    }
    shape = shape_from_dict(raw)
    assert shape.extra == {
        "mask": "iVBORw0KGgo=",
        "line_color": (0, 255, 0, 128),
        "fill_color": None,
    }
    out = shape_to_dict(shape)
    assert out == {**raw, "points": [[1.0, 2.0], [3.0, 4.0], [5.0, 1.0]]}
    assert shape_from_dict(out) == shape
    assert hash(shape) == hash(shape_from_dict(out))  # frozen all the way down


def test_old_labelme_shapes_take_defaults():
    shape = shape_from_dict(
        {"label": "lung", "points": [[1, 2], [3, 4], [5, 1]], "shape_type": None}
    )
    assert (shape.shape_type, shape.group_id, shape.description, dict(shape.flags)) == (
        "polygon",
        None,
        "",
        {},
    )
    assert shape_to_dict(shape)["mask"] is None


def test_huge_integers_are_refused_by_rule_not_overflow():
    """JSON integers have no size limit: a 400-digit coordinate raised OverflowError."""
    huge = 10**400
    with pytest.raises(ShapeError, match=r"point 1 has a coordinate too large to be a pixel"):
        shape_from_dict({"label": "lung", "points": [[1, 1], [huge, 2], [3, 9]]}, index=0)
    with pytest.raises(ShapeError, match=r"point 2 has a coordinate too large"):
        validate_shape(Shape("lung", "polygon", ((1, 1), (5, 2), (3, -huge))), (10, 10))
    with pytest.raises(ShapeError, match=r"group_id is too large"):
        shape_from_dict({"label": "p", "points": [[1, 1]], "shape_type": "point", "group_id": huge})
    with pytest.raises(ShapeError, match=r"stroke_width is too large"):
        shape_from_dict(
            {
                "label": "l",
                "points": [[1, 1], [2, 2]],
                "shape_type": "linestrip",
                "stroke_width": huge,
            }
        )
