import { test } from "node:test";
import assert from "node:assert/strict";
import {
  fitView, toImage, toScreen, zoomAbout, panBy, scaleLimits, wheelFactor, zoomTo,
} from "../../app/components/annotator/frontend/viewport.js";

test("fit centres the whole image in the stage", () => {
  const v = fitView(2000, 1000, 1000, 1000);
  assert.equal(v.scale, 0.5);
  assert.deepEqual(toScreen(v, 0, 0), [0, 250]);
  assert.deepEqual(toScreen(v, 2000, 1000), [1000, 750]);
});

test("screen and image coordinates round-trip within 0.5 px at zoom 1..16", () => {
  const fit = fitView(1841, 1955, 900, 900);
  for (const zoom of [1, 2, 4, 8, 16]) {
    const v = zoomAbout(fit, zoom, 413, 377, scaleLimits(fit.scale));
    for (const [x, y] of [[0, 0], [920.5, 977.5], [1840.9, 1954.9], [123.25, 1500.75]]) {
      const [sx, sy] = toScreen(v, x, y);
      const [ix, iy] = toImage(v, sx, sy);
      assert.ok(Math.abs(ix - x) < 1e-6 && Math.abs(iy - y) < 1e-6, `zoom ${zoom}: ${ix},${iy}`);
    }
  }
});

test("zoom about a point keeps the image point under it fixed", () => {
  const v0 = fitView(1000, 1000, 500, 500);
  const before = toImage(v0, 123, 321);
  const v1 = zoomAbout(v0, 3.7, 123, 321);
  const after = toImage(v1, 123, 321);
  assert.ok(Math.abs(before[0] - after[0]) < 1e-9 && Math.abs(before[1] - after[1]) < 1e-9);
  assert.ok(Math.abs(v1.scale - v0.scale * 3.7) < 1e-12);
});

test("zoom is clamped to the limits, at least 16x the fit", () => {
  const fit = fitView(2000, 2000, 800, 800);
  const limits = scaleLimits(fit.scale);
  assert.ok(limits[1] >= fit.scale * 16 && limits[0] <= 1 / 16);
  assert.equal(zoomAbout(fit, 1e6, 0, 0, limits).scale, limits[1]);
  assert.equal(zoomAbout(fit, 1e-6, 0, 0, limits).scale, limits[0]);
  assert.equal(zoomTo(fit, 1, 400, 400, limits).scale, 1);
});

test("pan moves the offset; a wheel notch up zooms in", () => {
  assert.deepEqual(panBy({ scale: 2, ox: 1, oy: 2 }, 10, -5), { scale: 2, ox: 11, oy: -3 });
  assert.ok(wheelFactor(-100) > 1 && wheelFactor(100) < 1);
  assert.ok(Math.abs(wheelFactor(-100) * wheelFactor(100) - 1) < 1e-12);
});
