// Hit testing in image coordinates: which shape, vertex or edge lies under a point.
// Shapes are { shape_type, points: [[x, y], ...], stroke_width? } as stored; a rectangle
// is two opposite corners.

export function dist(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

// Distance from p to segment ab, and the parameter t of the nearest point on it.
export function segmentDistance(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  let t = len2 === 0 ? 0 : ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2;
  t = Math.min(Math.max(t, 0), 1);
  const q = [a[0] + t * dx, a[1] + t * dy];
  return { d: dist(p, q), t, point: q };
}

export function pointInPolygon(p, pts) {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

export function boxCorners(points) {
  const [[x0, y0], [x1, y1]] = points;
  return [
    [x0, y0],
    [x1, y0],
    [x1, y1],
    [x0, y1],
  ];
}

// The points a shape's outline runs through, and whether it is closed.
export function outline(shape) {
  switch (shape.shape_type) {
    case "rectangle":
      return { pts: boxCorners(shape.points), closed: true };
    case "polygon":
      return { pts: shape.points, closed: true };
    case "linestrip":
    case "line":
      return { pts: shape.points, closed: false };
    default:
      return { pts: shape.points, closed: false };
  }
}

export function nearestVertex(pts, p, tol) {
  let best = -1;
  let bestD = tol;
  pts.forEach((q, i) => {
    const d = dist(p, q);
    if (d <= bestD) {
      best = i;
      bestD = d;
    }
  });
  return best;
}

export function nearestEdge(pts, p, tol, closed) {
  let best = null;
  const n = closed ? pts.length : pts.length - 1;
  for (let i = 0; i < n; i++) {
    const s = segmentDistance(p, pts[i], pts[(i + 1) % pts.length]);
    if (s.d <= tol && (best === null || s.d < best.d)) best = { edge: i, ...s };
  }
  return best;
}

// What part of one shape is under p: { part: "vertex", vertex } | { part: "edge", edge,
// point } | { part: "inside" } | null. `tol` is in image pixels.
export function hitShape(shape, p, tol) {
  if (shape.shape_type === "point") {
    return dist(p, shape.points[0]) <= tol ? { part: "vertex", vertex: 0 } : null;
  }
  const { pts, closed } = outline(shape);
  const v = nearestVertex(pts, p, tol);
  if (v >= 0) return { part: "vertex", vertex: v };
  const half = shape.shape_type === "linestrip" ? (shape.stroke_width || 0) / 2 : 0;
  const e = nearestEdge(pts, p, tol, closed);
  if (e) return { part: "edge", edge: e.edge, point: e.point };
  if (closed && pointInPolygon(p, pts)) return { part: "inside" };
  if (!closed && half > 0 && nearestEdge(pts, p, half + tol, false)) return { part: "inside" };
  return null;
}

// The topmost shape under p, preferring the vertices and edges of `prefer` (selected shapes).
export function hitTest(shapes, p, tol, prefer = []) {
  for (const index of prefer) {
    const shape = shapes[index];
    const hit = shape && hitShape(shape, p, tol);
    if (hit && hit.part !== "inside") return { index, ...hit };
  }
  for (let index = shapes.length - 1; index >= 0; index--) {
    const hit = hitShape(shapes[index], p, tol);
    if (hit) return { index, ...hit };
  }
  return null;
}
