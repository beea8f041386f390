import { test } from "node:test";
import assert from "node:assert/strict";
import {
  hitShape, hitTest, pointInPolygon, segmentDistance,
} from "../../app/components/annotator/frontend/hittest.js";

const square = { shape_type: "polygon", points: [[0, 0], [100, 0], [100, 100], [0, 100]] };
const box = { shape_type: "rectangle", points: [[200, 200], [300, 260]] };
const line = { shape_type: "linestrip", points: [[0, 300], [100, 300]], stroke_width: 20 };
const point = { shape_type: "point", points: [[500, 500]] };

test("segment distance and point in polygon", () => {
  assert.equal(segmentDistance([5, 5], [0, 0], [10, 0]).d, 5);
  assert.equal(segmentDistance([-3, 4], [0, 0], [10, 0]).d, 5);
  assert.ok(pointInPolygon([50, 50], square.points));
  assert.ok(!pointInPolygon([150, 50], square.points));
});

test("vertex, edge and inside of a polygon", () => {
  assert.deepEqual(hitShape(square, [2, 1], 4), { part: "vertex", vertex: 0 });
  const edge = hitShape(square, [50, 2], 4);
  assert.equal(edge.part, "edge");
  assert.equal(edge.edge, 0);
  assert.deepEqual(edge.point, [50, 0]);
  assert.equal(hitShape(square, [50, 98], 4).edge, 2);
  assert.equal(hitShape(square, [99, 50], 4).edge, 1);
  assert.deepEqual(hitShape(square, [50, 50], 4), { part: "inside" });
  assert.equal(hitShape(square, [150, 50], 4), null);
});

test("box corners, box inside, polyline within its stroke, point", () => {
  assert.deepEqual(hitShape(box, [299, 259], 3), { part: "vertex", vertex: 2 });
  assert.deepEqual(hitShape(box, [301, 201], 3), { part: "vertex", vertex: 1 });
  assert.deepEqual(hitShape(box, [250, 230], 3), { part: "inside" });
  assert.deepEqual(hitShape(line, [50, 309], 3), { part: "inside" });
  assert.equal(hitShape(line, [50, 316], 3), null);
  assert.equal(hitShape(line, [50, 301], 3).part, "edge");
  // An open polyline has no closing edge.
  assert.equal(hitShape({ ...line, points: [[0, 0], [100, 0], [100, 100]], stroke_width: 0 },
    [50, 50], 3), null);
  assert.deepEqual(hitShape(point, [503, 498], 4), { part: "vertex", vertex: 0 });
});

test("hitTest picks the topmost shape and prefers the selected shape's handles", () => {
  const under = { shape_type: "polygon", points: [[0, 0], [200, 0], [200, 200], [0, 200]] };
  assert.equal(hitTest([under, square], [50, 50], 3).index, 1);
  assert.equal(hitTest([square, under], [50, 50], 3).index, 1);
  // Point (100, 100) is a vertex of `square` (index 0) and inside `under` (index 1).
  assert.equal(hitTest([square, under], [100, 100], 3, [0]).part, "vertex");
  assert.equal(hitTest([square, under], [1000, 1000], 3), null);
});
