import { test } from "node:test";
import assert from "node:assert/strict";
import { Editor } from "../../app/components/annotator/frontend/editor.js";

const tol = 5;

function polygonEditor() {
  const ed = new Editor({ label: "lung", tool: "polygon" });
  for (const p of [[10, 10], [100, 10], [100, 100]]) ed.pointerDown(p, { tol });
  return ed;
}

test("a polygon closes by Enter, by a click on its first vertex, or by double-click", () => {
  let ed = polygonEditor();
  assert.ok(ed.drawing && ed.shapes.length === 0);
  ed.finish();
  assert.equal(ed.shapes.length, 1);
  assert.deepEqual(ed.shapes[0], {
    label: "lung", shape_type: "polygon", points: [[10, 10], [100, 10], [100, 100]],
  });

  ed = polygonEditor();
  ed.pointerDown([12, 9], { tol });
  assert.equal(ed.drawing, null);
  assert.equal(ed.shapes[0].points.length, 3);

  ed = polygonEditor();
  ed.pointerDown([10, 100], { tol }); // first click of the double-click adds the vertex
  ed.pointerDown([10, 100], { tol }); // the second lands on the same spot
  ed.doubleClick([10, 100], { tol });
  assert.equal(ed.shapes[0].points.length, 4);
});

test("clicking another vertex while drawing adds a vertex, never deletes one", () => {
  const ed = polygonEditor();
  ed.pointerDown([100, 10], { tol });
  assert.equal(ed.drawing.points.length, 4);
});

test("Esc cancels the shape being drawn; Backspace removes its last vertex", () => {
  const ed = polygonEditor();
  ed.backspace();
  assert.deepEqual(ed.drawing.points, [[10, 10], [100, 10]]);
  assert.ok(!ed.finish(), "two points are not a polygon");
  ed.cancel();
  assert.equal(ed.drawing, null);
  assert.equal(ed.shapes.length, 0);
  assert.ok(!ed.canUndo(), "nothing to undo: no ghost of the cancelled polygon");
});

test("a polyline is open, keeps its stroke width and finishes by Enter or double-click", () => {
  const ed = new Editor({ label: "line", tool: "linestrip", strokeWidth: 12 });
  ed.pointerDown([0, 0], { tol });
  ed.pointerDown([50, 0], { tol });
  ed.pointerDown([0.5, 0.5], { tol }); // near the first point: a vertex, not a close
  assert.equal(ed.drawing.points.length, 3);
  assert.equal(ed.preview().open, true);
  ed.finish();
  assert.equal(ed.shapes[0].shape_type, "linestrip");
  assert.equal(ed.shapes[0].stroke_width, 12);
  assert.equal(ed.shapes[0].points.length, 3);
  ed.pointerDown([0, 100], { tol });
  ed.pointerDown([60, 100], { tol });
  ed.pointerDown([60, 100], { tol });
  ed.doubleClick([60, 100], { tol });
  assert.deepEqual(ed.shapes[1].points, [[0, 100], [60, 100]]);
});

test("box by drag (normalised corners); a click alone draws nothing; a point by click", () => {
  const ed = new Editor({ label: "b", tool: "rectangle" });
  ed.pointerDown([50, 60], { tol });
  ed.pointerMove([20, 90]);
  assert.deepEqual(ed.preview().points, [[50, 60], [20, 90]]);
  ed.pointerUp([20, 90]);
  assert.deepEqual(ed.shapes[0].points, [[20, 60], [50, 90]]);
  ed.pointerDown([5, 5], { tol });
  ed.pointerUp([5, 5]);
  assert.equal(ed.shapes.length, 1);
  ed.setTool("point");
  ed.pointerDown([7, 8], { tol });
  assert.deepEqual(ed.shapes[1], { label: "b", shape_type: "point", points: [[7, 8]] });
});

function withSquare() {
  const ed = new Editor({
    shapes: [{ label: "a", shape_type: "polygon", points: [[0, 0], [100, 0], [100, 100], [0, 100]],
      group_id: 3 }],
    tool: "select",
  });
  return ed;
}

test("select and move a shape; extra keys survive; undo and redo", () => {
  const ed = withSquare();
  ed.pointerDown([50, 50], { tol });
  assert.deepEqual(ed.selected, [0]);
  ed.pointerMove([60, 70]);
  ed.pointerUp([60, 70]);
  assert.deepEqual(ed.shapes[0].points, [[10, 20], [110, 20], [110, 120], [10, 120]]);
  assert.equal(ed.shapes[0].group_id, 3);
  ed.undo();
  assert.deepEqual(ed.shapes[0].points, [[0, 0], [100, 0], [100, 100], [0, 100]]);
  ed.redo();
  assert.deepEqual(ed.shapes[0].points[0], [10, 20]);
});

test("drag a vertex, insert a vertex on an edge, delete a vertex", () => {
  const ed = withSquare();
  ed.pointerDown([50, 50], { tol }); // select
  ed.pointerUp([50, 50]);
  ed.pointerDown([1, 1], { tol }); // vertex 0
  ed.pointerMove([-20, -30]);
  ed.pointerUp([-20, -30]);
  assert.deepEqual(ed.shapes[0].points[0], [-20, -30]);

  ed.pointerDown([100, 50], { tol }); // on the edge 1 -> 2 of the selected square
  ed.pointerMove([140, 50]);
  ed.pointerUp([140, 50]);
  assert.deepEqual(ed.shapes[0].points, [[-20, -30], [100, 0], [140, 50], [100, 100], [0, 100]]);

  ed.pointerDown([140, 50], { tol }); // pick the new vertex
  ed.pointerUp([140, 50]);
  ed.deleteSelection();
  assert.deepEqual(ed.shapes[0].points, [[-20, -30], [100, 0], [100, 100], [0, 100]]);
  ed.pointerDown([100, 0], { tol, alt: true }); // Alt+click deletes a vertex at once
  assert.equal(ed.shapes[0].points.length, 3);
  ed.pointerDown([100, 100], { tol, alt: true }); // a triangle keeps its three
  assert.equal(ed.shapes[0].points.length, 3);
  assert.equal(ed.shapes.length, 1, "Alt+click never deletes the shape itself");
  ed.undo(); // the Alt+click delete
  ed.undo(); // the Delete of the inserted vertex
  assert.deepEqual(ed.shapes[0].points[2], [140, 50]);
  ed.undo(); // the insert
  ed.undo(); // the vertex drag
  assert.deepEqual(ed.shapes[0].points, [[0, 0], [100, 0], [100, 100], [0, 100]]);
  ed.redo();
  assert.deepEqual(ed.shapes[0].points[0], [-20, -30]);
});

test("resize a box by a corner", () => {
  const ed = new Editor({
    shapes: [{ label: "b", shape_type: "rectangle", points: [[10, 10], [50, 50]] }],
    tool: "select",
  });
  ed.pointerDown([30, 30], { tol });
  ed.pointerUp([30, 30]);
  ed.pointerDown([50, 10], { tol }); // top-right corner
  ed.pointerMove([5, 70]);
  ed.pointerUp([5, 70]);
  assert.deepEqual(ed.shapes[0].points, [[5, 50], [10, 70]]);
});

test("shift-click selects several; Delete removes them all in one undo step", () => {
  const ed = new Editor({
    shapes: [
      { label: "a", shape_type: "point", points: [[10, 10]] },
      { label: "b", shape_type: "point", points: [[50, 50]] },
      { label: "c", shape_type: "point", points: [[90, 90]] },
    ],
    tool: "select",
  });
  ed.pointerDown([10, 10], { tol });
  ed.pointerUp([10, 10]);
  ed.pointerDown([90, 90], { tol, shift: true });
  assert.deepEqual(ed.selected, [0, 2]);
  ed.deleteSelection();
  assert.deepEqual(ed.shapes.map((s) => s.label), ["b"]);
  ed.undo();
  assert.deepEqual(ed.shapes.map((s) => s.label), ["a", "b", "c"]);
});

test("undo while drawing removes the last vertex; every change bumps the version", () => {
  const ed = polygonEditor();
  const v = ed.version;
  ed.undo();
  assert.equal(ed.drawing.points.length, 2);
  assert.equal(ed.version, v);
  ed.pointerDown([100, 100], { tol });
  ed.finish();
  assert.equal(ed.version, v + 1);
  ed.setTool("rectangle");
  assert.equal(ed.drawing, null);
});

test("relabelling the selection is one undoable change", () => {
  const ed = withSquare();
  assert.ok(!ed.relabelSelected("b"), "nothing selected: nothing changes");
  ed.pointerDown([50, 50], { tol });
  ed.pointerUp([50, 50]);
  assert.ok(ed.relabelSelected("b"));
  assert.equal(ed.shapes[0].label, "b");
  ed.undo();
  assert.equal(ed.shapes[0].label, "a");
});
