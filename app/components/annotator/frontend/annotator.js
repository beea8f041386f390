// The annotator's browser side: the stage (Canvas 2D), the tool column, keyboard, autosave.
// Python sends `data` (the image, its neighbours in worklist order, labels, windows) on
// every run; this module keeps the reader's work per image for the life of the page, so a
// rerun, a remount or a move to another image never loses or resets it.

import { Editor } from "./editor.js";
import { hitTest, outline } from "./hittest.js";
import {
  fitView, panBy, scaleLimits, toImage, toScreen, wheelFactor, zoomAbout, zoomTo,
} from "./viewport.js";
import {
  LEVELS, PRESET_KEYS, applyLut, decode16, dragSensitivity, dragWindow, windowLut,
} from "./windowing.js";

const AUTOSAVE_MS = 700;
const RESEND_MS = 6000;
const OTHERS_COLOUR = "#00e5ff";
const TOOL_KEYS = { p: "polygon", b: "rectangle", l: "linestrip", o: "point", v: "select" };
const TOOL_NAMES = {
  polygon: "Polygon", rectangle: "Box", linestrip: "Polyline", point: "Point", select: "Select",
};
const FILL_ALPHA = { polygon: 0.22, rectangle: 0.12 };
const SHORTCUTS = [
  ["P / B / L / O", "polygon / box / polyline / point tool"],
  ["V", "select: click a shape, drag it, drag a vertex; Shift+click adds to the selection"],
  ["click an edge of a selected shape", "insert a vertex there (and drag it)"],
  ["Alt+click a vertex", "delete that vertex"],
  ["Enter / double-click", "close the polygon, finish the polyline"],
  ["click the first vertex", "close the polygon"],
  ["Esc", "cancel the shape being drawn (or clear the selection)"],
  ["Backspace", "remove the last vertex of the shape being drawn"],
  ["Delete", "delete the picked vertex, else the selected shapes"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
  ["wheel", "zoom about the cursor"],
  ["middle-drag, Space+drag", "pan"],
  ["right-drag", "window: horizontal = width, vertical = level"],
  ["1 / 2 / 3 / 4", "window presets: auto, lung, soft tissue, bone"],
  ["I", "invert"],
  ["0", "fit the image"],
  ["S", "save"],
  ["N / Shift+N", "next / previous image"],
  ["F", "cycle the finding"],
  ["?", "show or hide this list"],
];

const CSS = `
.pl-root { display: flex; gap: 10px; font: 14px/1.35 system-ui, sans-serif; color: #e8e8e8;
  height: var(--pl-height, 760px); }
.pl-tools { width: 228px; flex: none; display: flex; flex-direction: column; gap: 6px;
  overflow-y: auto; background: #1c1f26; border-radius: 8px; padding: 8px; }
.pl-tools h4 { margin: 4px 0 0; font-size: 11px; text-transform: uppercase; color: #9aa3b2;
  letter-spacing: .05em; }
.pl-row { display: flex; gap: 4px; flex-wrap: wrap; align-items: center; }
.pl-tools button { background: #2b303b; color: #e8e8e8; border: 1px solid #3b4252;
  border-radius: 5px; padding: 3px 7px; cursor: pointer; font: inherit; font-size: 13px; }
.pl-tools button:hover { border-color: #7aa2f7; }
.pl-tools button[aria-pressed="true"] { background: #3d59a1; border-color: #7aa2f7; }
.pl-tools button.pl-primary { background: #c0392b; border-color: #e74c3c; font-weight: 600; }
.pl-tools button:disabled { opacity: .45; cursor: default; }
.pl-tools select, .pl-tools input[type=number] { background: #2b303b; color: #e8e8e8;
  border: 1px solid #3b4252; border-radius: 5px; padding: 2px 4px; font: inherit;
  max-width: 100%; }
.pl-tools label { font-size: 13px; }
.pl-status { font-size: 13px; padding: 4px 6px; border-radius: 5px; background: #2b303b; }
.pl-status[data-state="unsaved"] { background: #5c4813; }
.pl-status[data-state="saved"] { background: #1f4d2e; }
.pl-status[data-state="error"] { background: #6b1f1f; }
.pl-msg { font-size: 13px; white-space: pre-wrap; }
.pl-msg[data-kind="error"] { color: #ff8a80; }
.pl-msg[data-kind="warning"] { color: #ffd180; }
.pl-stage { position: relative; flex: 1; min-width: 0; background: #000; border-radius: 8px;
  overflow: hidden; }
.pl-stage canvas { position: absolute; inset: 0; width: 100%; height: 100%;
  touch-action: none; }
.pl-notice { position: absolute; top: 6px; left: 50%; transform: translateX(-50%);
  background: #26407a; color: #fff; padding: 4px 10px; border-radius: 5px; font-size: 13px;
  z-index: 3; }
.pl-tip { position: absolute; pointer-events: none; background: #111; color: #fff;
  border: 1px solid #666; padding: 2px 6px; border-radius: 4px; font-size: 12px; z-index: 4; }
.pl-readout { position: absolute; bottom: 4px; left: 8px; font-size: 12px; color: #ccc;
  text-shadow: 0 0 3px #000; pointer-events: none; }
.pl-panel { position: absolute; top: 40px; right: 12px; background: #1c1f26ee;
  border: 1px solid #3b4252; border-radius: 8px; padding: 10px 14px; z-index: 5;
  max-height: 80%; overflow: auto; }
.pl-panel table { border-collapse: collapse; font-size: 13px; }
.pl-panel td { padding: 1px 8px 1px 0; vertical-align: top; }
.pl-panel td:first-child { font-weight: 600; white-space: nowrap; }
.pl-dialog { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; background: #0008; z-index: 6; }
.pl-dialog > div { background: #1c1f26; border: 1px solid #c9a227; border-radius: 8px;
  padding: 14px; max-width: 420px; }
.pl-dialog button { margin: 8px 6px 0 0; background: #2b303b; color: #e8e8e8;
  border: 1px solid #3b4252; border-radius: 5px; padding: 4px 10px; cursor: pointer;
  font: inherit; }
[hidden] { display: none !important; }
`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function rgba(hex, alpha) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  const n = m ? parseInt(m[1], 16) : 0xffcc00;
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function shapeKey(s) {
  return JSON.stringify([s.label, s.shape_type, s.points]);
}

function isTyping(event) {
  const t = event.composedPath ? event.composedPath()[0] : event.target;
  if (!t || !t.tagName) return false;
  const tag = t.tagName.toLowerCase();
  if (tag === "textarea" || t.isContentEditable) return true;
  if (tag === "select") return true;
  if (tag === "input") {
    const type = (t.type || "text").toLowerCase();
    return !["checkbox", "radio", "button", "range", "color"].includes(type);
  }
  return false;
}

// --- images: fetched, decoded to 16-bit values, cached (the next image is prefetched) --------

const images = new Map(); // url -> Promise<{ width, height, values }>

function loadImage(url) {
  if (!images.has(url)) {
    const p = (async () => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`the image did not load (HTTP ${response.status})`);
      const bitmap = await createImageBitmap(await response.blob(), {
        colorSpaceConversion: "none", premultiplyAlpha: "none",
      });
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(bitmap, 0, 0);
      const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      return { width: bitmap.width, height: bitmap.height, values: decode16(rgba) };
    })();
    p.catch(() => images.delete(url));
    images.set(url, p);
    while (images.size > 6) images.delete(images.keys().next().value);
  }
  return images.get(url);
}

// --- the reader's work per image, for the life of this page ---------------------------------

const works = new Map(); // `${scope}|${account}|${imageId}` -> Work
const tabId = Math.random().toString(36).slice(2, 10);
let eventSeq = 0;

function storageKey(scope, account, imageId, what) {
  return `pneumolab:${what}:${scope}:${account}:${imageId}`;
}

function readStorage(key) {
  try {
    const text = window.localStorage.getItem(key);
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function writeStorage(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the server-side draft still holds the work.
  }
}

class Work {
  constructor(desc, scope, account, label) {
    this.id = desc.id;
    this.desc = desc;
    this.localKey = storageKey(scope, account, desc.id, "draft");
    this.viewKey = storageKey(scope, account, desc.id, "view");
    const start = desc.start;
    let shapes = start.shapes;
    let finding = start.finding;
    this.notice = "";
    this.savedRevision = start.base_revision;
    this.savedFinding = start.saved_finding;
    this.savedKey = JSON.stringify([start.saved_shapes.map(shapeKey), start.saved_finding]);
    const local = readStorage(this.localKey);
    const serverTime = start.draft_time || 0;
    if (local && !local.acked && local.time > serverTime) {
      shapes = local.draft.shapes;
      finding = local.draft.finding;
      this.notice = "Restored your unsaved work from this browser (it had not reached the server).";
    } else if (start.source === "draft") {
      this.notice = `Restored your draft from ${start.draft_when}: not saved as a revision yet.`;
    }
    this.editor = new Editor({ shapes, label });
    this.finding = finding;
    this.changeSeq = this.notice ? 1 : 0; // a restored draft from this browser goes up again
    this.ackSeq = local && !local.acked && this.notice.includes("browser") ? 0 : this.changeSeq;
    this.lastVersion = this.editor.version;
    const view = readStorage(this.viewKey) || {};
    this.window = view.window || null;
    this.invert = Boolean(view.invert);
    this.view = view.view || null;
  }

  key() {
    return JSON.stringify([this.editor.shapes.map(shapeKey), this.finding]);
  }

  unsaved() {
    return Boolean(this.editor.drawing) || this.key() !== this.savedKey;
  }

  pending() {
    return this.changeSeq > this.ackSeq;
  }

  draft() {
    return {
      shapes: this.editor.shapes,
      finding: this.finding,
      base_revision: this.savedRevision,
      time: Date.now(),
      tab: tabId,
    };
  }
}

// --- the component --------------------------------------------------------------------------

class Annotator {
  constructor(parent) {
    this.parent = parent;
    this.data = null;
    this.work = null;
    this.pixels = null; // { width, height, values } of the current image
    this.rendered = null; // canvas holding the windowed image
    this.lut = new Uint8Array(LEVELS);
    this.windowDirty = true;
    this.frame = 0;
    this.pointer = null;
    this.space = false;
    this.inflight = null; // { seq, kind, at }
    this.queue = []; // events waiting to be sent, oldest first
    this.showOthers = true;
    this.hover = null;
    this.build();
  }

  // --- DOM -------------------------------------------------------------------------------
  build() {
    const style = el("style", { text: CSS });
    const tools = el("div", { class: "pl-tools", "data-testid": "annotator-tools" });
    this.toolButtons = {};
    const toolRow = el("div", { class: "pl-row" });
    for (const [key, tool] of Object.entries(TOOL_KEYS)) {
      const b = el("button", {
        type: "button", "data-tool": tool, title: `${TOOL_NAMES[tool]} (${key.toUpperCase()})`,
        text: TOOL_NAMES[tool], onclick: () => this.setTool(tool),
      });
      this.toolButtons[tool] = b;
      toolRow.append(b);
    }
    this.labelSelect = el("select", { "aria-label": "Label", onchange: () => this.setLabel() });
    this.strokeInput = el("input", {
      type: "number", min: "1", max: "500", step: "1", value: "10",
      "aria-label": "Polyline width (image pixels)", style: "width: 64px",
      onchange: () => this.setStroke(),
    });
    this.findingSelect = el("select", {
      "aria-label": "Image-level finding",
      onchange: () => this.setFinding(this.findingSelect.value),
    });
    this.windowText = el("span", { class: "pl-msg", "data-testid": "annotator-window" });
    const presets = el("div", { class: "pl-row" });
    for (const [key, name] of Object.entries(PRESET_KEYS)) {
      presets.append(el("button", {
        type: "button", title: `${name} window (${key})`, text: `${key} ${name}`,
        onclick: () => this.preset(name),
      }));
    }
    this.invertButton = el("button", {
      type: "button", title: "Invert (I)", text: "Invert", "aria-pressed": "false",
      onclick: () => this.toggleInvert(),
    });
    presets.append(this.invertButton);
    this.zoomText = el("span", { class: "pl-msg" });
    const viewRow = el("div", { class: "pl-row" },
      el("button", { type: "button", text: "Fit", title: "Fit (0)", onclick: () => this.fit() }),
      el("button", { type: "button", text: "1:1", title: "One image pixel per screen pixel",
        onclick: () => this.oneToOne() }),
      this.zoomText);
    this.othersBox = el("input", { type: "checkbox", checked: "" });
    this.othersBox.addEventListener("change", () => {
      this.showOthers = this.othersBox.checked;
      this.draw();
    });
    this.othersLabel = el("label", {}, this.othersBox, " other readers' shapes");
    this.undoButton = el("button", { type: "button", text: "↶ Undo", title: "Undo (Ctrl+Z)",
      onclick: () => this.act(() => this.work.editor.undo()) });
    this.redoButton = el("button", { type: "button", text: "↷ Redo",
      title: "Redo (Ctrl+Shift+Z)", onclick: () => this.act(() => this.work.editor.redo()) });
    this.deleteButton = el("button", { type: "button", text: "Delete",
      title: "Delete the selection (Delete)",
      onclick: () => this.act(() => this.work.editor.deleteSelection()) });
    this.prevButton = el("button", { type: "button", text: "← Previous",
      title: "Previous image (Shift+N)", onclick: () => this.navigate("prev") });
    this.skipButton = el("button", { type: "button", text: "Skip →",
      title: "Next image (N)", onclick: () => this.navigate("next") });
    this.saveButton = el("button", { type: "button", class: "pl-primary", text: "Save",
      title: "Save (S)", onclick: () => this.save(null) });
    this.saveNextButton = el("button", { type: "button", class: "pl-primary",
      text: "Save & next", onclick: () => this.save("next") });
    this.status = el("div", { class: "pl-status", "data-testid": "annotator-status",
      role: "status" });
    this.message = el("div", { class: "pl-msg", "data-testid": "annotator-message" });
    this.info = el("div", { class: "pl-msg" });
    tools.append(
      el("h4", { text: "Tool" }), toolRow,
      el("h4", { text: "Label" }), this.labelSelect,
      el("label", {}, "Polyline width ", this.strokeInput, " px"),
      el("h4", { text: "Finding" }), this.findingSelect,
      el("h4", { text: "Window" }), this.windowText, presets,
      el("h4", { text: "View" }), viewRow, this.othersLabel,
      el("h4", { text: "Edit" }),
      el("div", { class: "pl-row" }, this.undoButton, this.redoButton, this.deleteButton),
      el("h4", { text: "Image" }),
      el("div", { class: "pl-row" }, this.prevButton, this.skipButton),
      el("div", { class: "pl-row" }, this.saveButton, this.saveNextButton),
      this.status, this.message, this.info,
      el("button", { type: "button", text: "? Shortcuts", onclick: () => this.toggleHelp() }),
    );
    this.canvas = el("canvas", { "data-testid": "annotator-canvas", tabindex: "0" });
    this.ctx = this.canvas.getContext("2d");
    this.notice = el("div", { class: "pl-notice", hidden: "" });
    this.tip = el("div", { class: "pl-tip", hidden: "" });
    this.readout = el("div", { class: "pl-readout" });
    const rows = SHORTCUTS.map(([k, v]) =>
      el("tr", {}, el("td", { text: k }), el("td", { text: v })));
    this.help = el("div", { class: "pl-panel", hidden: "", "data-testid": "annotator-help" },
      el("strong", { text: "Keyboard and mouse" }), el("table", {}, ...rows));
    this.dialog = el("div", { class: "pl-dialog", hidden: "" });
    this.stage = el("div", { class: "pl-stage" },
      this.canvas, this.notice, this.tip, this.readout, this.help, this.dialog);
    this.root = el("div", { class: "pl-root", "data-testid": "annotator" }, tools, this.stage);
    this.parent.append(style, this.root);
    this.listen();
  }

  listen() {
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => this.onDown(e));
    c.addEventListener("pointermove", (e) => this.onMove(e));
    c.addEventListener("pointerup", (e) => this.onUp(e));
    c.addEventListener("pointercancel", (e) => this.onUp(e));
    c.addEventListener("pointerleave", () => this.setTip(null));
    c.addEventListener("dblclick", (e) => this.onDouble(e));
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("auxclick", (e) => e.preventDefault());
    c.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    this.handlers = {
      keydown: (e) => this.onKey(e),
      keyup: (e) => {
        if (e.key === " ") this.space = false;
      },
      beforeunload: (e) => {
        if (this.alive() && this.anyPending()) {
          this.flush();
          e.preventDefault();
          e.returnValue = "";
        }
      },
      visibilitychange: () => {
        if (document.visibilityState === "hidden") this.flush();
      },
      pagehide: () => this.flush(),
      resize: () => this.resize(),
    };
    // Keys are caught on the way down (capture), before the app's own shortcuts see them.
    for (const [name, fn] of Object.entries(this.handlers)) {
      (name === "visibilitychange" ? document : window).addEventListener(name, fn,
        name === "keydown");
    }
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.stage);
    this.timer = setInterval(() => this.tick(), 500);
  }

  alive() {
    if (this.root.isConnected) return true;
    for (const [name, fn] of Object.entries(this.handlers)) {
      (name === "visibilitychange" ? document : window).removeEventListener(name, fn,
        name === "keydown");
    }
    clearInterval(this.timer);
    this.resizer.disconnect();
    return false;
  }

  layout() {
    // The stage fills the window below where the component starts (never below the fold).
    const top = this.root.getBoundingClientRect().top + window.scrollY;
    const height = Math.max(480, window.innerHeight - Math.max(top, 0) - 12);
    this.root.style.setProperty("--pl-height", `${height}px`);
  }

  resize() {
    if (!this.alive()) return;
    this.layout();
    const r = this.stage.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * dpr));
    const h = Math.max(1, Math.round(r.height * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      const first = !this.stageSize || !this.stageSize.w;
      this.canvas.width = w;
      this.canvas.height = h;
      this.stageSize = { w: r.width, h: r.height, dpr };
      if (this.work && (first || !this.work.view)) this.fit(false);
    }
    this.draw();
  }

  // --- data from Python ------------------------------------------------------------------
  update(data, send) {
    this.send = send;
    this.data = data;
    this.layout();
    this.fillStatic();
    for (const n of [data.next, data.prev]) if (n) loadImage(n.url).catch(() => {});
    this.handled(data.handled);
    this.resetIfAsked(data.reset);
    this.pump();
    // While a move this browser asked for is on its way, the image shown is already the
    // target: a run answering an earlier event must not switch back.
    const moving = this.moving();
    if (!this.work || (!moving && this.work.id !== data.image.id)) this.open(data.image);
    else if (this.work.id === data.image.id) this.work.desc = data.image;
    this.refresh();
    if (!moving && this.afterMove) {
      // N pressed again before the server knew the image moved to: move on now.
      const direction = this.afterMove;
      this.afterMove = null;
      this.navigate(direction);
    }
    // The neighbours' pixels are still being prepared on the server: ask again soon.
    clearTimeout(this.pollTimer);
    if (data.preparing) {
      this.pollTimer = setTimeout(() => {
        if (!this.inflight && !this.queue.length && this.work) {
          this.emit("poll", { image_id: this.work.id });
        }
      }, 800);
    }
  }

  resetIfAsked(reset) {
    if (!reset) return;
    if (this.lastReset !== undefined && reset.n !== this.lastReset && reset.image != null) {
      // The server replaced the reader's shapes (another revision made current): start the
      // image again from what is stored.
      works.delete(`${this.data.scope}|${this.data.account}|${reset.image}`);
      writeStorage(storageKey(this.data.scope, this.data.account, reset.image, "draft"), null);
      if (this.work && this.work.id === reset.image) this.work = null;
    }
    this.lastReset = reset.n;
  }

  fillStatic() {
    const d = this.data;
    const labelNow = this.labelSelect.value || d.label;
    this.labelSelect.replaceChildren(...d.labels.map((lb) => el("option", {
      value: lb.name, text: `■ ${lb.name}`, style: `color: ${lb.color}`,
    })));
    if (d.labels.some((lb) => lb.name === labelNow)) this.labelSelect.value = labelNow;
    this.colours = Object.fromEntries(d.labels.map((lb) => [lb.name, lb.color]));
    const findingNow = this.findingSelect.value;
    this.findingSelect.replaceChildren(...d.findings.map(([k, v]) => el("option", {
      value: k, text: v,
    })));
    this.findingSelect.value = findingNow;
  }

  workFor(desc) {
    const d = this.data;
    const key = `${d.scope}|${d.account}|${desc.id}`;
    let work = works.get(key);
    if (!work) {
      work = new Work(desc, d.scope, d.account, this.labelSelect.value || d.label);
      works.set(key, work);
      if (work.pending()) this.scheduleDraft(work);
    }
    return work;
  }

  async open(desc) {
    const openedAt = performance.now();
    this.closeDialog();
    const work = this.workFor(desc);
    this.work = work;
    work.editor.label = this.labelSelect.value || this.data.label;
    this.pixels = null;
    this.windowDirty = true;
    this.showNotice(work.notice);
    work.notice = "";
    this.refresh();
    this.draw();
    let img;
    try {
      img = await loadImage(desc.url);
    } catch (err) {
      if (this.work === work) this.say("error", `${err.message}. Reload the page to try again.`);
      return;
    }
    if (this.work !== work) return;
    this.pixels = img;
    if (!work.window) work.window = { ...desc.windows.auto };
    this.windowDirty = true;
    if (!work.view) this.fit(false);
    this.draw();
    this.refresh();
    this.parent.host?.setAttribute?.("data-image", String(desc.id));
    this.root.setAttribute("data-image", String(desc.id));
    requestAnimationFrame(() => {
      // For the bench: how long from opening the image to its first paint, in this page.
      this.root.dataset.openMs = String(Math.round(performance.now() - openedAt));
      this.root.setAttribute("data-painted", String(desc.id));
    });
  }

  // --- talking to Python: one event at a time --------------------------------------------
  emit(kind, payload) {
    eventSeq += 1;
    const event = { kind, seq: eventSeq, tab: tabId, ...payload };
    // A newer draft of an image replaces its older draft still waiting to be sent.
    this.queue = this.queue.filter((q) => !(kind === "draft" && q.kind === "draft" &&
      q.image_id === event.image_id));
    this.queue.push(event);
    this.pump();
    return event.seq;
  }

  pump() {
    const now = Date.now();
    if (this.inflight && now - this.inflight.at < RESEND_MS) return;
    if (this.inflight) {
      this.queue.unshift(this.inflight.event); // not answered: send again
      this.inflight = null;
    }
    if (!this.queue.length || !this.send) return;
    const event = this.queue.shift();
    this.inflight = { seq: event.seq, at: now, event };
    this.send("event", event);
  }

  handled(h) {
    if (h && h.seq === -1 && h.message && h.message !== this.lastNote) {
      this.lastNote = h.message; // a message of the page itself (a choice made above)
      this.say(h.kind || "info", h.message);
    }
    if (!h || !this.inflight || h.seq < this.inflight.seq) return;
    const event = this.inflight.event;
    this.inflight = null;
    if (event.draft) this.acked(event.image_id, event.change, h.draft_ok !== false);
    const work = this.findWork(event.image_id);
    if (event.kind === "save" && work) {
      if (h.ok) {
        work.savedRevision = h.revision ?? work.savedRevision;
        work.savedKey = event.savedKey;
        work.savedFinding = event.finding;
        work.ackSeq = Math.max(work.ackSeq, event.change);
        if (!work.pending()) writeStorage(work.localKey, null);
        this.say(h.kind || "info", h.message || "Saved.");
      } else {
        this.say("error", h.message || "Not saved.");
      }
    } else if (h.message) {
      this.say(h.kind || "info", h.message);
    }
  }

  findWork(imageId) {
    const d = this.data;
    return works.get(`${d.scope}|${d.account}|${imageId}`) || null;
  }

  acked(imageId, change, ok) {
    const work = this.findWork(imageId);
    if (!work || !ok) return;
    work.ackSeq = Math.max(work.ackSeq, change || 0);
    if (!work.pending()) {
      const local = readStorage(work.localKey);
      if (local) writeStorage(work.localKey, { ...local, acked: true });
    }
  }

  anyPending() {
    for (const w of works.values()) if (w.pending()) return true;
    const waiting = [this.inflight && this.inflight.event, ...this.queue];
    return waiting.some((e) => e && e.kind !== "poll");
  }

  scheduleDraft(work) {
    clearTimeout(work.autosave);
    work.autosave = setTimeout(() => this.sendDraft(work), AUTOSAVE_MS);
  }

  sendDraft(work) {
    clearTimeout(work.autosave);
    if (!work.pending()) return;
    this.emit("draft", {
      image_id: work.id, change: work.changeSeq, draft: work.draft(), clean: !work.unsaved(),
    });
  }

  flush() {
    for (const w of works.values()) if (w.pending()) this.sendDraft(w);
  }

  tick() {
    if (!this.alive()) return;
    this.pump();
    this.refresh();
  }

  // --- changes ---------------------------------------------------------------------------
  act(fn) {
    if (!this.work) return;
    fn();
    this.changed();
  }

  changed() {
    const work = this.work;
    if (!work) return;
    if (work.editor.version !== work.lastVersion || work.findingChanged) {
      work.lastVersion = work.editor.version;
      work.findingChanged = false;
      work.changeSeq += 1;
      writeStorage(work.localKey, { time: Date.now(), acked: false, draft: work.draft() });
      this.scheduleDraft(work);
    }
    this.draw();
    this.refresh();
  }

  rememberView() {
    const w = this.work;
    if (!w) return;
    writeStorage(w.viewKey, { window: w.window, invert: w.invert, view: w.view });
  }

  setTool(tool) {
    if (!this.work) return;
    this.work.editor.setTool(tool);
    this.tool = tool;
    this.draw();
    this.refresh();
  }

  setLabel() {
    if (!this.work) return;
    const ed = this.work.editor;
    ed.label = this.labelSelect.value;
    if (ed.tool === "select" && ed.relabelSelected(ed.label)) this.changed();
  }

  setStroke() {
    const v = Number(this.strokeInput.value);
    if (this.work && v > 0) this.work.editor.strokeWidth = v;
  }

  setFinding(value) {
    const w = this.work;
    if (!w) return;
    w.finding = value || null;
    w.findingChanged = true;
    this.changed();
  }

  cycleFinding() {
    const keys = this.data.findings.map(([k]) => k);
    const i = keys.indexOf(this.work.finding || "");
    this.setFinding(keys[(i + 1) % keys.length]);
  }

  // --- save and move ---------------------------------------------------------------------
  save(then) {
    const w = this.work;
    if (!w) return;
    const ed = w.editor;
    if (ed.drawing) {
      if (!ed.finish()) {
        this.say("error", "Not saved: the shape being drawn is not finished. Press Enter to " +
          "finish it (a polygon needs 3 points, a polyline 2) or Esc to cancel it.");
        return;
      }
      this.changed();
    }
    clearTimeout(w.autosave);
    this.say("info", "Saving…");
    this.status.textContent = "Saving…";
    this.emit("save", {
      image_id: w.id, change: w.changeSeq, then,
      shapes: ed.shapes, finding: w.finding, base_revision: w.savedRevision,
      saved_finding: w.savedFinding, changed: w.unsaved(), draft: w.draft(),
      savedKey: w.key(),
    });
  }

  moving() {
    return [this.inflight && this.inflight.event, ...this.queue]
      .some((e) => e && (e.kind === "go" || (e.kind === "save" && e.then)));
  }

  navigate(direction) {
    const w = this.work;
    if (!w) return;
    if (this.moving()) {
      this.afterMove = direction;
      return;
    }
    const target = direction === "next" ? this.data.next : this.data.prev;
    if (!target && !this.data.nav[direction]) {
      this.say("info", direction === "next" ? "That was the end of the worklist." :
        "This is the first image of the worklist.");
      return;
    }
    if (w.unsaved()) {
      this.confirmLeave(direction);
      return;
    }
    this.go(direction);
  }

  go(direction) {
    const w = this.work;
    const target = direction === "next" ? this.data.next : this.data.prev;
    if (w.pending()) this.sendDraft(w);
    this.emit("go", { image_id: w.id, to: direction, target: target ? target.id : null });
    if (target) this.open(target); // prefetched: shown at once, the server follows
  }

  confirmLeave(direction) {
    const box = el("div", { role: "dialog", "aria-label": "Unsaved changes" },
      el("div", { text: "This image has changes that are not saved as a revision. They are " +
        "kept as your draft either way." }),
      el("button", { type: "button", text: "Save and go", onclick: () => {
        this.closeDialog();
        this.save(direction);
      } }),
      el("button", { type: "button", text: "Go, keep the draft", onclick: () => {
        this.closeDialog();
        this.go(direction);
      } }),
      el("button", { type: "button", text: "Stay", onclick: () => this.closeDialog() }));
    this.dialog.replaceChildren(box);
    this.dialog.hidden = false;
  }

  closeDialog() {
    this.dialog.hidden = true;
    this.dialog.replaceChildren();
  }

  // --- view ------------------------------------------------------------------------------
  fitScale() {
    const d = this.work.desc;
    return fitView(d.width, d.height, this.stageSize.w, this.stageSize.h).scale;
  }

  fit(remember = true) {
    const w = this.work;
    if (!w || !this.stageSize) return;
    w.view = fitView(w.desc.width, w.desc.height, this.stageSize.w, this.stageSize.h);
    if (remember) this.rememberView();
    this.draw();
  }

  oneToOne() {
    const w = this.work;
    if (!w || !w.view) return;
    w.view = zoomTo(w.view, 1, this.stageSize.w / 2, this.stageSize.h / 2,
      scaleLimits(this.fitScale()));
    this.rememberView();
    this.draw();
  }

  preset(name) {
    const w = this.work;
    const found = w && w.desc.windows[name];
    if (!found) return;
    w.window = { ...found };
    this.windowDirty = true;
    this.rememberView();
    this.draw();
  }

  toggleInvert() {
    const w = this.work;
    if (!w) return;
    w.invert = !w.invert;
    this.windowDirty = true;
    this.rememberView();
    this.draw();
  }

  toggleHelp() {
    this.help.hidden = !this.help.hidden;
  }

  // --- pointer ---------------------------------------------------------------------------
  local(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  imagePoint(e) {
    const [sx, sy] = this.local(e);
    return toImage(this.work.view, sx, sy);
  }

  tol() {
    return 7 / this.work.view.scale;
  }

  onDown(e) {
    if (!this.work || !this.work.view) return;
    this.canvas.focus({ preventScroll: true });
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      // A pointer the browser no longer tracks: the drag still works inside the canvas.
    }
    const [sx, sy] = this.local(e);
    if (e.button === 1 || (e.button === 0 && this.space)) {
      e.preventDefault();
      this.pointer = { kind: "pan", last: [sx, sy] };
      return;
    }
    if (e.button === 2) {
      const w = this.work;
      this.pointer = { kind: "window", start: [sx, sy], window: { ...w.window } };
      return;
    }
    if (e.button !== 0) return;
    this.pointer = { kind: "edit" };
    this.work.editor.pointerDown(this.imagePoint(e), {
      tol: this.tol(), shift: e.shiftKey, alt: e.altKey,
    });
    this.changed();
  }

  onMove(e) {
    if (!this.work || !this.work.view) return;
    const [sx, sy] = this.local(e);
    const p = this.pointer;
    this.lastMouse = [sx, sy];
    if (p && p.kind === "pan") {
      this.work.view = panBy(this.work.view, sx - p.last[0], sy - p.last[1]);
      p.last = [sx, sy];
      this.draw();
      return;
    }
    if (p && p.kind === "window") {
      const d = this.work.desc;
      this.work.window = dragWindow(p.window, sx - p.start[0], sy - p.start[1],
        dragSensitivity(d.lo, d.hi));
      this.windowDirty = true;
      this.draw();
      return;
    }
    const ed = this.work.editor;
    if (ed.pointerMove(this.imagePoint(e)) || ed.drawing) this.draw();
    if (!ed.drag && !ed.drawing) this.hoverAt(e, sx, sy);
    this.readout.textContent = this.readoutText(this.imagePoint(e));
  }

  onUp(e) {
    const p = this.pointer;
    this.pointer = null;
    if (!this.work || !p) return;
    if (p.kind === "pan" || p.kind === "window") {
      this.rememberView();
      this.refresh();
      return;
    }
    this.work.editor.pointerUp(this.imagePoint(e));
    this.changed();
  }

  onDouble(e) {
    if (!this.work || !this.work.view || e.button !== 0) return;
    this.work.editor.doubleClick(this.imagePoint(e), { tol: this.tol() });
    this.changed();
  }

  onWheel(e) {
    if (!this.work || !this.work.view) return;
    e.preventDefault();
    const [sx, sy] = this.local(e);
    this.work.view = zoomAbout(this.work.view, wheelFactor(e.deltaY), sx, sy,
      scaleLimits(this.fitScale()));
    clearTimeout(this.viewTimer);
    this.viewTimer = setTimeout(() => this.rememberView(), 300);
    this.draw();
    this.refresh();
  }

  readoutText([x, y]) {
    const px = this.pixels;
    if (!px || x < 0 || y < 0 || x >= px.width || y >= px.height) return "";
    const d = this.work.desc;
    const v = d.offset + px.values[Math.floor(y) * px.width + Math.floor(x)] / d.scale;
    return `x ${x.toFixed(1)}  y ${y.toFixed(1)}  value ${Math.round(v * 10) / 10}`;
  }

  // The shapes from a model, and their tooltip ("from model v3, accepted by ...").
  marks() {
    const desc = this.work.desc;
    if (!desc.markKeys) {
      desc.markKeys = {};
      for (const m of desc.model || []) {
        for (const s of m.shapes) desc.markKeys[shapeKey(s)] = m.text;
      }
    }
    return desc.markKeys;
  }

  hoverAt(e, sx, sy) {
    const p = this.imagePoint(e);
    const marks = this.marks();
    const hit = hitTest(this.work.editor.shapes, p, this.tol());
    let text = null;
    if (hit) text = marks[shapeKey(this.work.editor.shapes[hit.index])] || null;
    if (!text && this.showOthers) {
      const others = this.work.desc.others || [];
      for (const o of others) {
        const h = hitTest(o.shapes, p, this.tol());
        if (h) {
          text = `${o.reader} (read-only)${o.note ? `: ${o.note}` : ""}`;
          break;
        }
      }
    }
    this.setTip(text ? [sx, sy, text] : null);
  }

  setTip(tip) {
    if (!tip) {
      this.tip.hidden = true;
      return;
    }
    const [x, y, text] = tip;
    this.tip.textContent = text;
    this.tip.style.left = `${x + 14}px`;
    this.tip.style.top = `${y + 14}px`;
    this.tip.hidden = false;
  }

  // --- keyboard --------------------------------------------------------------------------
  onKey(e) {
    if (!this.alive() || !this.work || isTyping(e)) return;
    if (!this.root.offsetParent) return; // not shown
    const ed = this.work.editor;
    const key = e.key;
    const ctrl = e.ctrlKey || e.metaKey;
    let done = true;
    if (ctrl && (key === "z" || key === "Z")) {
      this.act(() => (e.shiftKey ? ed.redo() : ed.undo()));
    } else if (ctrl && (key === "y" || key === "Y")) {
      this.act(() => ed.redo());
    } else if (ctrl && (key === "s" || key === "S")) {
      this.save(null);
    } else if (ctrl || e.altKey) {
      done = false;
    } else if (key === " ") {
      this.space = true;
    } else if (key === "Escape") {
      if (!this.dialog.hidden) this.closeDialog();
      else if (!this.help.hidden) this.help.hidden = true;
      else this.act(() => ed.cancel());
    } else if (!this.dialog.hidden) {
      done = false;
    } else if (key === "Enter") {
      this.act(() => ed.finish());
    } else if (key === "Backspace") {
      this.act(() => ed.backspace());
    } else if (key === "Delete") {
      this.act(() => ed.deleteSelection());
    } else if (TOOL_KEYS[key.toLowerCase()] && !e.shiftKey) {
      this.setTool(TOOL_KEYS[key.toLowerCase()]);
    } else if (key === "s" || key === "S") {
      this.save(null);
    } else if (key === "n") {
      this.navigate("next");
    } else if (key === "N") {
      this.navigate("prev");
    } else if (key === "f" || key === "F") {
      this.cycleFinding();
    } else if (key === "i" || key === "I") {
      this.toggleInvert();
    } else if (key === "0") {
      this.fit();
    } else if (PRESET_KEYS[key]) {
      this.preset(PRESET_KEYS[key]);
    } else if (key === "?") {
      this.toggleHelp();
    } else {
      done = false;
    }
    if (done) {
      e.preventDefault();
      e.stopPropagation();
    }
  }

  // --- showing ---------------------------------------------------------------------------
  say(kind, text) {
    this.message.dataset.kind = kind;
    this.message.textContent = text;
  }

  showNotice(text) {
    clearTimeout(this.noticeTimer);
    this.notice.textContent = text || "";
    this.notice.hidden = !text;
    if (text) this.noticeTimer = setTimeout(() => { this.notice.hidden = true; }, 8000);
  }

  refresh() {
    const w = this.work;
    if (!w) return;
    const ed = w.editor;
    for (const [tool, b] of Object.entries(this.toolButtons)) {
      b.setAttribute("aria-pressed", String(ed.tool === tool));
    }
    this.undoButton.disabled = !ed.canUndo();
    this.redoButton.disabled = !ed.canRedo();
    this.deleteButton.disabled = !ed.selected.length;
    this.prevButton.disabled = !this.data.nav.prev;
    if (this.findingSelect.value !== (w.finding || "")) this.findingSelect.value = w.finding || "";
    if (w.window) {
      this.windowText.textContent =
        `W ${Math.round(w.window.width)} · L ${Math.round(w.window.center)}` +
        (w.invert ? " · inverted" : "");
    }
    this.invertButton.setAttribute("aria-pressed", String(w.invert));
    if (w.view && this.stageSize) {
      this.zoomText.textContent = `${(w.view.scale / this.fitScale()).toFixed(2)}x`;
    }
    const others = w.desc.others || [];
    this.othersLabel.hidden = !others.length;
    this.othersLabel.lastChild.textContent =
      ` other readers' shapes (${others.map((o) => `${o.reader}: ${o.shapes.length}`).join(", ")})`;
    let state;
    let text;
    const sending = this.inflight && this.inflight.event;
    if (sending && sending.kind === "save" && sending.image_id === w.id) {
      state = "unsaved";
      text = "Saving…";
    } else if (w.pending()) {
      state = "unsaved";
      text = "● Unsaved changes (autosaving the draft…)";
    } else if (w.unsaved()) {
      state = "unsaved";
      text = "● Draft kept on the server, not saved as a revision";
    } else {
      state = "saved";
      text = w.savedRevision ? `All changes saved (revision ${w.savedRevision})` :
        "Nothing drawn yet";
    }
    this.status.dataset.state = state;
    this.status.textContent = text;
    const d = w.desc;
    const newer = d.newest_revision != null && d.newest_revision !== w.savedRevision;
    this.info.textContent = `${d.caption}` + (newer && w.unsaved()
      ? `\nRevision ${d.newest_revision} was saved elsewhere since you opened this image. ` +
        "Saving keeps both; yours becomes the newest." : "");
    this.root.dataset.pending = String(this.anyPending());
    this.root.dataset.probe = JSON.stringify(this.probe());
  }

  draw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  renderWindow() {
    const px = this.pixels;
    const w = this.work;
    if (!this.rendered || this.rendered.width !== px.width || this.rendered.height !== px.height) {
      this.rendered = new OffscreenCanvas(px.width, px.height);
      this.renderedCtx = this.rendered.getContext("2d");
      this.imageData = new ImageData(px.width, px.height);
      this.out32 = new Uint32Array(this.imageData.data.buffer);
    }
    windowLut(w.window, w.desc.offset, w.desc.scale, w.invert, this.lut);
    applyLut(px.values, this.lut, this.out32);
    this.renderedCtx.putImageData(this.imageData, 0, 0);
    this.windowDirty = false;
    this.paintedWindow = { ...w.window, invert: w.invert };
  }

  paint() {
    this.paints = (this.paints || 0) + 1;
    this.root.dataset.paints = String(this.paints);
    this.paintShapes();
    // For tests and the bench: what the reader sees, as a read-only attribute.
    this.root.dataset.probe = JSON.stringify(this.probe());
  }

  paintShapes() {
    const ctx = this.ctx;
    const w = this.work;
    if (!this.stageSize) this.resize();
    const dpr = (this.stageSize && this.stageSize.dpr) || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!w || !w.view) return;
    const v = w.view;
    if (this.pixels) {
      if (this.windowDirty) this.renderWindow();
      ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
      ctx.imageSmoothingEnabled = v.scale < 2;
      ctx.drawImage(this.rendered, 0, 0);
    }
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
    const px = 1 / v.scale; // one screen pixel in image units
    if (this.showOthers) {
      for (const o of w.desc.others || []) {
        for (const s of o.shapes) this.paintShape(s, OTHERS_COLOUR, px, { dashed: true });
      }
    }
    const ed = w.editor;
    const marks = this.marks();
    ed.shapes.forEach((s, i) => {
      const colour = this.colours[s.label] || "#ffcc00";
      this.paintShape(s, colour, px, { selected: ed.selected.includes(i) });
      if (marks[shapeKey(s)]) this.paintMark(s, px);
    });
    const preview = ed.preview();
    if (preview) {
      const colour = this.colours[ed.label] || "#ffcc00";
      this.paintShape(preview, colour, px, { drawing: true });
      if (preview.shape_type === "polygon" && preview.points.length > 3) {
        const [fx, fy] = preview.points[0];
        ctx.beginPath();
        ctx.arc(fx, fy, 6 * px, 0, Math.PI * 2);
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 1.5 * px;
        ctx.stroke();
      }
    }
    for (const h of ed.handles()) {
      const active = ed.activeVertex && ed.activeVertex.index === h.index &&
        ed.activeVertex.vertex === h.vertex;
      ctx.fillStyle = active ? "#ff0" : "#fff";
      ctx.fillRect(h.point[0] - 4 * px, h.point[1] - 4 * px, 8 * px, 8 * px);
      ctx.strokeStyle = "#000";
      ctx.lineWidth = px;
      ctx.strokeRect(h.point[0] - 4 * px, h.point[1] - 4 * px, 8 * px, 8 * px);
    }
  }

  paintShape(s, colour, px, { selected = false, dashed = false, drawing = false } = {}) {
    const ctx = this.ctx;
    ctx.setLineDash(dashed ? [6 * px, 4 * px] : []);
    if (s.shape_type === "point") {
      const [x, y] = s.points[0];
      ctx.beginPath();
      ctx.arc(x, y, 5 * px, 0, Math.PI * 2);
      ctx.fillStyle = colour;
      ctx.fill();
      ctx.lineWidth = (selected ? 2 : 1) * px;
      ctx.strokeStyle = selected ? "#fff" : "#000";
      ctx.stroke();
      return;
    }
    const { pts } = outline(s);
    if (!pts.length) return;
    const closed = s.shape_type === "rectangle" || (s.shape_type === "polygon" && !s.open);
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
    if (closed) ctx.closePath();
    if (s.shape_type === "linestrip") {
      ctx.lineJoin = "round";
      ctx.lineCap = "round";
      ctx.strokeStyle = rgba(colour, 0.45);
      ctx.lineWidth = Math.max(s.stroke_width || this.work.editor.strokeWidth, px);
      ctx.stroke();
      ctx.strokeStyle = colour;
      ctx.lineWidth = (selected ? 3 : 1.5) * px;
      ctx.stroke();
    } else {
      if (closed || drawing) {
        ctx.fillStyle = rgba(colour, FILL_ALPHA[s.shape_type] ?? 0.2);
        if (closed) ctx.fill();
      }
      ctx.strokeStyle = colour;
      ctx.lineWidth = (selected ? 3.5 : 2) * px;
      ctx.stroke();
    }
    ctx.setLineDash([]);
  }

  paintMark(s, px) {
    // A model-made shape: a small "M" badge at its top-left corner.
    const ctx = this.ctx;
    const xs = s.points.map((p) => p[0]);
    const ys = s.points.map((p) => p[1]);
    const x = Math.min(...xs);
    const y = Math.min(...ys);
    ctx.fillStyle = "#7c4dff";
    ctx.fillRect(x - 18 * px, y - 18 * px, 16 * px, 16 * px);
    ctx.fillStyle = "#fff";
    ctx.font = `${12 * px}px sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("M", x - 10 * px, y - 10 * px);
  }

  // --- for tests and the bench -------------------------------------------------------------
  probe() {
    const w = this.work;
    return {
      image: w && w.id,
      painted: Boolean(this.pixels && w && w.view),
      view: w && w.view,
      window: w && w.window,
      painted_window: this.paintedWindow,
      shapes: w && w.editor.shapes,
      drawing: w && w.editor.drawing,
      selected: w && w.editor.selected,
      tool: w && w.editor.tool,
      finding: w && w.finding,
      pending: this.anyPending(),
      unsaved: w && w.unsaved(),
      stage: this.canvas.getBoundingClientRect().toJSON(),
    };
  }
}

const instances = new WeakMap();

export function mount(component) {
  const { data, parentElement, setTriggerValue } = component;
  let annotator = instances.get(parentElement);
  if (!annotator || !annotator.root.isConnected) {
    annotator = new Annotator(parentElement);
    instances.set(parentElement, annotator);
  }
  annotator.update(data, setTriggerValue);
  return () => {};
}
