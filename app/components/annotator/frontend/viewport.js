// Viewport maths: where the image lies on the screen, and zooming/panning it.
// A view is { scale, ox, oy }: screen = image * scale + offset, in CSS pixels of the
// stage. Image coordinates are continuous original-image pixels (pixel i spans [i, i+1)).

export const MIN_SCALE = 1 / 16;
export const MAX_SCALE = 64;

export function clamp(value, lo, hi) {
  return Math.min(Math.max(value, lo), hi);
}

export function fitView(imageW, imageH, stageW, stageH) {
  const scale = Math.min(stageW / imageW, stageH / imageH);
  return { scale, ox: (stageW - imageW * scale) / 2, oy: (stageH - imageH * scale) / 2 };
}

export function toScreen(view, x, y) {
  return [x * view.scale + view.ox, y * view.scale + view.oy];
}

export function toImage(view, sx, sy) {
  return [(sx - view.ox) / view.scale, (sy - view.oy) / view.scale];
}

// The largest scale allowed: at least 16x the fitted view and at least MAX_SCALE.
export function scaleLimits(fitScale) {
  return [Math.min(MIN_SCALE, fitScale), Math.max(MAX_SCALE, fitScale * 16)];
}

// Zoom by `factor` keeping the image point under the screen point (sx, sy) where it is.
export function zoomAbout(view, factor, sx, sy, limits = [MIN_SCALE, MAX_SCALE]) {
  const scale = clamp(view.scale * factor, limits[0], limits[1]);
  const k = scale / view.scale;
  return { scale, ox: sx - (sx - view.ox) * k, oy: sy - (sy - view.oy) * k };
}

// Zoom to an absolute scale about the screen point (sx, sy).
export function zoomTo(view, scale, sx, sy, limits = [MIN_SCALE, MAX_SCALE]) {
  return zoomAbout(view, scale / view.scale, sx, sy, limits);
}

export function panBy(view, dx, dy) {
  return { scale: view.scale, ox: view.ox + dx, oy: view.oy + dy };
}

// How much a mouse-wheel delta zooms: one notch (100 px) = 1.25x.
export function wheelFactor(deltaY) {
  return Math.pow(1.25, -deltaY / 100);
}

// The zoom relative to the fitted view ("2x" = twice the fitted size).
export function relativeZoom(view, fitScale) {
  return view.scale / fitScale;
}
