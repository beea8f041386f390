import { test } from "node:test";
import assert from "node:assert/strict";
import {
  applyLut, decode16, dragWindow, windowLut,
} from "../../app/components/annotator/frontend/windowing.js";

test("16-bit values decode from the red (high) and green (low) bytes", () => {
  const rgba = new Uint8Array([0x12, 0x34, 0, 255, 0xff, 0xff, 0, 255, 0, 1, 0, 255]);
  assert.deepEqual([...decode16(rgba)], [0x1234, 0xffff, 1]);
});

test("the window maps centre-0.5 -/+ (width-1)/2 onto 0..255, as DICOM's linear function", () => {
  // Modality = 1000 + stored / 2; window centre 1500, width 201 (1399.5 .. 1599.5).
  const lut = windowLut({ center: 1500, width: 201 }, 1000, 2);
  assert.equal(lut[(1399 - 1000) * 2], 0);
  assert.equal(lut[(1600 - 1000) * 2], 255);
  assert.equal(lut[(1499.5 - 1000) * 2], 127);
  const inv = windowLut({ center: 1500, width: 201 }, 1000, 2, true);
  assert.equal(inv[(1399 - 1000) * 2], 255);
  assert.equal(inv[(1600 - 1000) * 2], 0);
});

test("LUT to opaque grey pixels", () => {
  const lut = new Uint8Array(65536);
  lut[7] = 200;
  const out = applyLut(new Uint16Array([7, 0]), lut, new Uint32Array(2));
  assert.equal(out[0] >>> 0, 0xffc8c8c8);
  assert.equal(out[1] >>> 0, 0xff000000);
});

test("right-drag: horizontal changes the width, vertical the level", () => {
  const w = dragWindow({ center: 100, width: 50 }, 10, 0, 2);
  assert.deepEqual(w, { center: 100, width: 70 });
  assert.deepEqual(dragWindow({ center: 100, width: 50 }, 0, -5, 2), { center: 90, width: 50 });
  assert.equal(dragWindow({ center: 100, width: 5 }, -100, 0, 1).width, 1);
});
