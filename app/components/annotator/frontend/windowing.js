// Window/level in the browser. The image arrives as a PNG whose red and green channels hold
// the high and low byte of a 16-bit stored value; modality value = offset + stored / scale.
// Windows are { center, width } in modality units (DICOM PS3.3 C.11.2.1.2 linear function).

export const LEVELS = 65536;
export const PRESET_KEYS = { 1: "auto", 2: "lung", 3: "soft tissue", 4: "bone" };

// Stored 16-bit values from RGBA bytes (as getImageData returns them).
export function decode16(rgba) {
  const n = rgba.length >> 2;
  const out = new Uint16Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 4) out[i] = (rgba[j] << 8) | rgba[j + 1];
  return out;
}

export function toModality(stored, offset, scale) {
  return offset + stored / scale;
}

// Grey level 0..255 of every stored value under `window` (inverted: 255 - grey).
export function windowLut(window, offset, scale, invert = false, out = new Uint8Array(LEVELS)) {
  const width = Math.max(window.width, 1);
  const low = window.center - 0.5 - (width - 1) / 2;
  const k = 255 / Math.max(width - 1, 1);
  for (let s = 0; s < out.length; s++) {
    let g = (offset + s / scale - low) * k;
    g = g < 0 ? 0 : g > 255 ? 255 : g;
    out[s] = invert ? 255 - Math.floor(g) : Math.floor(g);
  }
  return out;
}

// Opaque grey RGBA pixels (as a Uint32Array over ImageData, little-endian) from the LUT.
export function applyLut(values, lut, out32) {
  for (let i = 0; i < values.length; i++) {
    const g = lut[values[i]];
    out32[i] = 0xff000000 | (g << 16) | (g << 8) | g;
  }
  return out32;
}

// Right-drag: horizontal changes the width, vertical the level (down = higher level, a
// darker picture), `perPixel` modality units per screen pixel.
export function dragWindow(start, dx, dy, perPixel) {
  return {
    center: start.center + dy * perPixel,
    width: Math.max(1, start.width + dx * perPixel),
  };
}

// Modality units per screen pixel of drag: the full range in about 600 pixels.
export function dragSensitivity(lo, hi) {
  return Math.max((hi - lo) / 600, 1 / 256);
}
