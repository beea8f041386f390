"""The rasteriser equals labelme's own `shape_to_mask`, pixel for pixel."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from labelme.utils import shape_to_mask

from annotations.rasterise import DEFAULT_LINE_WIDTH, label_mask, rasterise, shape_mask
from annotations.shapes import Shape, ShapeError, validate_shape

POINT_COUNTS = {
    "polygon": (3, 12),
    "rectangle": (2, 2),
    "linestrip": (2, 6),
    "line": (2, 2),
    "circle": (2, 2),
    "point": (1, 1),
    "oriented_rectangle": (4, 4),
}


@st.composite
def shapes_on_images(draw, types=tuple(POINT_COUNTS)):
    """A shape of any type on a small image; coordinates may be fractional, on .5 ties,
    whole, or outside the image (so clipping is exercised too)."""
    width = draw(st.integers(1, 48))
    height = draw(st.integers(1, 48))
    kind = draw(st.sampled_from(types))
    lo, hi = POINT_COUNTS[kind]

    def coord(limit: int) -> st.SearchStrategy[float]:
        return st.one_of(
            st.floats(-5, limit + 5, allow_nan=False),
            st.integers(-2, limit + 2).map(float),
            st.integers(0, 2 * limit).map(lambda v: v / 2),
        )

    points = draw(st.lists(st.tuples(coord(width), coord(height)), min_size=lo, max_size=hi))
    stroke = draw(st.one_of(st.none(), st.integers(1, 20), st.floats(0.6, 20)))
    return Shape("x", kind, tuple(points), stroke_width=stroke), (width, height)


def labelme_mask(shape: Shape, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    stroke = DEFAULT_LINE_WIDTH if shape.stroke_width is None else max(1, round(shape.stroke_width))
    points = [list(p) for p in shape.points]
    return shape_to_mask((height, width), points, shape.shape_type, line_width=stroke)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(shapes_on_images())
def test_every_shape_type_matches_labelme_shape_to_mask(case):
    shape, size = case
    try:
        valid = validate_shape(shape, size)
    except ShapeError:
        assume(False)
    ours = shape_mask(valid, size)
    assert ours.shape == (size[1], size[0]) and ours.dtype == bool
    np.testing.assert_array_equal(ours, labelme_mask(valid, size))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(200, 700),
    st.integers(200, 700),
    st.integers(20, 150),
    st.integers(0, 2**32 - 1),
)
def test_large_ragged_polygons_match_labelme(width, height, n, seed):
    # Like real lung outlines: many vertices, fractional coordinates, ragged edges.
    rng = np.random.default_rng(seed)
    cx, cy = width / 2, height / 2
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.2, 0.7, n)
    points = tuple(
        (cx + r * width * np.cos(a), cy + r * height * np.sin(a))
        for a, r in zip(angles, radius, strict=True)
    )
    shape = validate_shape(Shape("lung", "polygon", points), (width, height))
    np.testing.assert_array_equal(
        shape_mask(shape, (width, height)), labelme_mask(shape, (width, height))
    )


def test_polygon_edges_are_included_and_fractions_truncated():
    # A square from (1.9, 1.9) to (4.9, 4.9): truncated to 1..4, and the edge rows/columns
    # themselves are inside, as labelme draws them.
    square = Shape("x", "polygon", ((1.9, 1.9), (4.9, 1.9), (4.9, 4.9), (1.9, 4.9)))
    mask = shape_mask(square, (8, 8))
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:5, 1:5] = True
    np.testing.assert_array_equal(mask, expected)


def test_rectangle_corners_in_any_order_fill_the_same_box():
    a = shape_mask(Shape("x", "rectangle", ((6, 1), (2, 5))), (10, 8))
    b = shape_mask(Shape("x", "rectangle", ((2, 5), (6, 1))), (10, 8))
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 5 * 5 and a[1:6, 2:7].all()


def test_linestrip_without_width_is_drawn_10_px_wide_like_labelme():
    line = Shape("x", "linestrip", ((5, 30), (55, 30)))
    mask = shape_mask(line, (60, 60))
    column = mask[:, 30]
    assert column.sum() == DEFAULT_LINE_WIDTH == 10
    wider = shape_mask(Shape("x", "linestrip", ((5, 30), (55, 30)), stroke_width=4), (60, 60))
    assert wider[:, 30].sum() == 4


def test_shapes_outside_the_image_are_clipped_not_wrapped():
    # Mostly outside to the right and below: only the part on the image is drawn.
    shape = Shape("x", "rectangle", ((5, 5), (500, 500)))
    mask = shape_mask(shape, (10, 10))
    assert mask.shape == (10, 10)
    assert mask[5:, 5:].all() and not mask[:5].any() and not mask[:, :5].any()


def test_self_intersecting_polygon_is_filled_deterministically_like_labelme():
    bowtie = Shape("x", "polygon", ((0, 0), (20, 20), (20, 0), (0, 20)))
    first = shape_mask(bowtie, (21, 21))
    np.testing.assert_array_equal(first, shape_mask(bowtie, (21, 21)))
    np.testing.assert_array_equal(first, labelme_mask(validate_shape(bowtie, (21, 21)), (21, 21)))
    # Two triangles meeting at the centre: left and right lobes in, top and bottom out.
    assert first[10, 2] and first[10, 18] and not first[2, 10] and not first[18, 10]


def test_masks_are_unions_per_label():
    shapes = [
        Shape("lung", "rectangle", ((0, 0), (3, 3))),
        Shape("lung", "rectangle", ((6, 6), (9, 9))),
        Shape("pneumonia", "point", ((5, 5),)),
    ]
    masks = rasterise(shapes, (10, 10))
    assert set(masks) == {"lung", "pneumonia"}
    assert masks["lung"].sum() == 32
    np.testing.assert_array_equal(masks["lung"], label_mask(shapes, (10, 10), "lung"))
    assert not label_mask(shapes, (10, 10), "effusion").any()


def test_an_invalid_shape_names_its_index_and_rule():
    shapes = [Shape("lung", "polygon", ((0, 0), (5, 0), (5, 5))), Shape("lung", "polygon", ())]
    with pytest.raises(ShapeError, match=r"shape #1 'lung' \(polygon\): needs at least 3"):
        rasterise(shapes, (10, 10))
