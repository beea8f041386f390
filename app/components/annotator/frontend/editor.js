// The shape-editing state machine: tools, drawing, selecting and editing shapes, undo/redo.
// Pure: no DOM. Every input is in image pixels; `tol` is the hit tolerance in image pixels.
// Shapes are stored dicts ({ label, shape_type, points, stroke_width?, ...kept keys }).

import { dist, hitTest, outline } from "./hittest.js";

export const TOOLS = ["polygon", "rectangle", "linestrip", "point", "select"];
const HISTORY_LIMIT = 200;

function copyShapes(shapes) {
  return shapes.map((s) => ({ ...s, points: s.points.map((p) => [p[0], p[1]]) }));
}

export class Editor {
  constructor({ shapes = [], label = "", strokeWidth = 10, tool = "polygon" } = {}) {
    this.shapes = copyShapes(shapes);
    this.label = label;
    this.strokeWidth = strokeWidth;
    this.tool = tool;
    this.drawing = null; // { shape_type, points, cursor }
    this.selected = []; // indices into shapes
    this.activeVertex = null; // { index, vertex } picked in the select tool
    this.drag = null;
    this.undoStack = [];
    this.redoStack = [];
    this.version = 0; // bumps on every change of `shapes`
  }

  // --- history ---------------------------------------------------------------------------
  _commit(before) {
    this.undoStack.push(before);
    if (this.undoStack.length > HISTORY_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.version++;
  }

  _change(mutate) {
    const before = copyShapes(this.shapes);
    mutate();
    this._commit(before);
  }

  canUndo() {
    return this.undoStack.length > 0 || Boolean(this.drawing);
  }

  canRedo() {
    return this.redoStack.length > 0;
  }

  undo() {
    if (this.drawing) return this.backspace();
    if (!this.undoStack.length) return false;
    this.redoStack.push(copyShapes(this.shapes));
    this.shapes = this.undoStack.pop();
    this._clearSelection();
    this.version++;
    return true;
  }

  redo() {
    if (this.drawing || !this.redoStack.length) return false;
    this.undoStack.push(copyShapes(this.shapes));
    this.shapes = this.redoStack.pop();
    this._clearSelection();
    this.version++;
    return true;
  }

  // Replace every shape (a restored draft, another tab's revision): one undoable change.
  replaceShapes(shapes) {
    this._change(() => {
      this.shapes = copyShapes(shapes);
    });
    this.drawing = null;
    this._clearSelection();
  }

  _clearSelection() {
    this.selected = [];
    this.activeVertex = null;
    this.drag = null;
  }

  // --- tools -----------------------------------------------------------------------------
  setTool(tool) {
    if (!TOOLS.includes(tool)) throw new Error(`unknown tool ${tool}`);
    this.drawing = null;
    this.drag = null;
    if (tool !== "select") this._clearSelection();
    this.tool = tool;
  }

  _newShape(shape_type, points) {
    const shape = { label: this.label, shape_type, points: points.map((p) => [p[0], p[1]]) };
    if (shape_type === "linestrip") shape.stroke_width = this.strokeWidth;
    return shape;
  }

  _addShape(shape) {
    this._change(() => this.shapes.push(shape));
  }

  // Finish the shape being drawn (Enter, double-click, click on the first vertex).
  finish() {
    const d = this.drawing;
    if (!d) return false;
    const pts = d.points;
    const need = d.shape_type === "polygon" ? 3 : 2;
    if (pts.length < need) return false;
    this.drawing = null;
    this._addShape(this._newShape(d.shape_type, pts));
    return true;
  }

  cancel() {
    if (this.drawing) {
      this.drawing = null;
      return true;
    }
    if (this.selected.length || this.activeVertex) {
      this._clearSelection();
      return true;
    }
    return false;
  }

  backspace() {
    const d = this.drawing;
    if (!d) return this.deleteSelection();
    d.points.pop();
    if (!d.points.length) this.drawing = null;
    return true;
  }

  // Delete the picked vertex of a polygon or polyline, if it keeps enough to stay one.
  deleteVertex() {
    const av = this.activeVertex;
    const shape = av && this.shapes[av.index];
    if (!shape || !(shape.shape_type === "polygon" || shape.shape_type === "linestrip")) {
      return false;
    }
    if (shape.points.length <= (shape.shape_type === "polygon" ? 3 : 2)) return false;
    this._change(() => shape.points.splice(av.vertex, 1));
    this.activeVertex = null;
    return true;
  }

  // Delete the picked vertex, else every selected shape.
  deleteSelection() {
    if (this.deleteVertex()) return true;
    if (!this.selected.length) return false;
    const gone = new Set(this.selected);
    this._change(() => {
      this.shapes = this.shapes.filter((_, i) => !gone.has(i));
    });
    this._clearSelection();
    return true;
  }

  // Give the selected shapes another label: one undoable change.
  relabelSelected(label) {
    if (!this.selected.length) return false;
    this._change(() => {
      for (const i of this.selected) this.shapes[i] = { ...this.shapes[i], label };
    });
    return true;
  }

  selectAll() {
    this.selected = this.shapes.map((_, i) => i);
  }

  // --- pointer ---------------------------------------------------------------------------
  // opts: { tol, shift, alt }
  pointerDown(p, opts = {}) {
    const tol = opts.tol ?? 5;
    if (this.tool === "select") return this._selectDown(p, tol, opts);
    if (this.tool === "point") {
      this._addShape(this._newShape("point", [p]));
      return true;
    }
    if (this.tool === "rectangle") {
      this.drawing = { shape_type: "rectangle", points: [p, p], cursor: p };
      return true;
    }
    const d = this.drawing;
    if (!d) {
      this.drawing = { shape_type: this.tool, points: [p], cursor: p };
      return true;
    }
    if (d.shape_type === "polygon" && d.points.length >= 3 && dist(p, d.points[0]) <= tol) {
      return this.finish();
    }
    const last = d.points[d.points.length - 1];
    if (dist(p, last) > 1e-9) d.points.push(p);
    d.cursor = p;
    return true;
  }

  pointerMove(p) {
    const d = this.drawing;
    if (d) {
      d.cursor = p;
      if (d.shape_type === "rectangle") d.points[1] = p;
      return true;
    }
    const g = this.drag;
    if (!g) return false;
    const dx = p[0] - g.start[0];
    const dy = p[1] - g.start[1];
    if (!g.moved && Math.hypot(dx, dy) < g.tol / 4) return false;
    g.moved = true;
    if (g.kind === "move") {
      for (const i of this.selected) {
        this.shapes[i].points = g.original[i].map(([x, y]) => [x + dx, y + dy]);
      }
    } else {
      const shape = this.shapes[g.index];
      if (shape.shape_type === "rectangle") {
        // Corner c of [x0y0, x1y0, x1y1, x0y1]: x from point (c in 1,2), y from (c in 2,3).
        const [[x0, y0], [x1, y1]] = g.original[g.index];
        const c = g.vertex;
        const xs = [x0, x1];
        const ys = [y0, y1];
        xs[c === 1 || c === 2 ? 1 : 0] = p[0];
        ys[c === 2 || c === 3 ? 1 : 0] = p[1];
        shape.points = [
          [xs[0], ys[0]],
          [xs[1], ys[1]],
        ];
      } else {
        shape.points = g.original[g.index].map((q, i) => (i === g.vertex ? [p[0], p[1]] : q));
      }
    }
    return true;
  }

  pointerUp(p) {
    const d = this.drawing;
    if (d && d.shape_type === "rectangle") {
      this.drawing = null;
      const [a] = d.points;
      if (Math.abs(p[0] - a[0]) < 1 || Math.abs(p[1] - a[1]) < 1) return false; // a click
      const box = [
        [Math.min(a[0], p[0]), Math.min(a[1], p[1])],
        [Math.max(a[0], p[0]), Math.max(a[1], p[1])],
      ];
      this._addShape(this._newShape("rectangle", box));
      return true;
    }
    const g = this.drag;
    this.drag = null;
    if (!g) return false;
    if (g.inserted || g.moved) {
      const current = copyShapes(this.shapes);
      const before = g.original.map((pts, i) => ({ ...current[i], points: pts }));
      if (g.kind !== "move") {
        before[g.index] = { ...current[g.index], points: g.originalOfShape };
      }
      if (g.kind === "vertex" && this.shapes[g.index].shape_type === "rectangle") {
        const [[x0, y0], [x1, y1]] = this.shapes[g.index].points;
        this.shapes[g.index].points = [
          [Math.min(x0, x1), Math.min(y0, y1)],
          [Math.max(x0, x1), Math.max(y0, y1)],
        ];
      }
      this._commit(before);
      return true;
    }
    return false;
  }

  // The browser's dblclick follows two clicks that each added a vertex at the same spot.
  doubleClick(p, opts = {}) {
    const tol = opts.tol ?? 5;
    const d = this.drawing;
    if (d && (d.shape_type === "polygon" || d.shape_type === "linestrip")) {
      const pts = d.points;
      while (pts.length > 1 && dist(pts[pts.length - 1], pts[pts.length - 2]) <= tol) pts.pop();
      return this.finish();
    }
    return false;
  }

  _selectDown(p, tol, opts) {
    const hit = hitTest(this.shapes, p, tol, this.selected);
    if (!hit) {
      if (!opts.shift) this._clearSelection();
      return true;
    }
    const shape = this.shapes[hit.index];
    const isSelected = this.selected.includes(hit.index);
    if (opts.shift) {
      this.selected = isSelected
        ? this.selected.filter((i) => i !== hit.index)
        : [...this.selected, hit.index];
      this.activeVertex = null;
      return true;
    }
    const original = this.shapes.map((s) => s.points.map((q) => [q[0], q[1]]));
    const editable = shape.shape_type === "polygon" || shape.shape_type === "linestrip";
    if (hit.part === "vertex" && shape.shape_type !== "point") {
      if (opts.alt && editable) {
        this.selected = [hit.index];
        this.activeVertex = { index: hit.index, vertex: hit.vertex };
        this.deleteVertex();
        return true;
      }
      this.selected = [hit.index];
      this.activeVertex = { index: hit.index, vertex: hit.vertex };
      this.drag = { kind: "vertex", index: hit.index, vertex: hit.vertex, start: p, tol, original,
        originalOfShape: original[hit.index], moved: false };
      return true;
    }
    if (hit.part === "edge" && isSelected && editable) {
      // Insert a vertex on the edge and drag it.
      const at = hit.edge + 1;
      const before = original[hit.index];
      shape.points = [...before.slice(0, at), [hit.point[0], hit.point[1]], ...before.slice(at)];
      this.selected = [hit.index];
      this.activeVertex = { index: hit.index, vertex: at };
      this.drag = { kind: "vertex", index: hit.index, vertex: at, start: p, tol,
        original: this.shapes.map((s) => s.points.map((q) => [q[0], q[1]])),
        originalOfShape: before, moved: false, inserted: true };
      return true;
    }
    if (!isSelected) this.selected = [hit.index];
    this.activeVertex = null;
    this.drag = { kind: "move", start: p, tol, original, moved: false };
    return true;
  }

  // --- reading ---------------------------------------------------------------------------
  // What the reader is seeing of the shape being drawn (the rubber-band segment included).
  preview() {
    const d = this.drawing;
    if (!d) return null;
    if (d.shape_type === "rectangle") return { shape_type: "rectangle", points: d.points };
    return { shape_type: d.shape_type, points: [...d.points, d.cursor], open: true };
  }

  // The vertices drawn as handles of the selected shapes.
  handles() {
    return this.selected.flatMap((i) => {
      const shape = this.shapes[i];
      if (!shape) return [];
      return outline(shape).pts.map((q, vertex) => ({ index: i, vertex, point: q }));
    });
  }
}
