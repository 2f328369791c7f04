// The graph editor of a workflow: palette, SVG canvas, side panel, save.
//
// State lives here as plain objects; the SVG is redrawn from it. Every user
// text reaches the page through textContent or setAttribute, never HTML.
// The server validates again on save with the engine's own rules.

import { autoLayout, cycleIfConnected } from "./editor-graph.js";
import { renderSchemaForm } from "./editor-schema.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 180;
const H = 56;
const MARGIN = 30;
// The engine's rule for step keys (workflows/dag.py): checked as the key is
// typed, so a save is never sent with a key the server would refuse.
const KEY_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const KEY_MAX = 100;

const root = document.getElementById("dagflow-editor");
const data = JSON.parse(document.getElementById("dagflow-editor-data").textContent);
const canChange = data.canChange === true;
const types = new Map(data.types.map((t) => [t.name, t]));
const svg = root.querySelector(".dagflow-canvas");
const wrap = root.querySelector(".dagflow-canvas-wrap");
const panel = root.querySelector(".dagflow-panel-body");
const panelEmpty = root.querySelector(".dagflow-panel-empty");
const messages = root.querySelector(".dagflow-messages");
const button = (action) => root.querySelector(`[data-action="${action}"]`);

let nextId = 1;
let state = { nodes: [] };
let selection = null; // {kind: "node", id} | {kind: "edge", from, to}
let connecting = null; // {from, mode: "drag" | "click"}
let connectMode = false;
let highlighted = new Set();
let version = data.version;

// ---------------------------------------------------------------- state ---

function fromSpecs(steps, layout) {
  const ids = new Map();
  const nodes = steps.map((s) => {
    const id = `n${nextId++}`;
    ids.set(s.key, id);
    const pos = layout[s.key];
    return {
      id,
      key: s.key,
      type: s.type,
      label: s.label || "",
      params: s.params && typeof s.params === "object" ? s.params : {},
      retries: s.retries ?? null,
      retry_delay: s.retry_delay ?? null,
      timeout: s.timeout ?? null,
      after: s.after || [],
      x: pos && Number.isFinite(pos.x) ? pos.x : null,
      y: pos && Number.isFinite(pos.y) ? pos.y : null,
    };
  });
  for (const n of nodes) n.after = n.after.map((k) => ids.get(k)).filter(Boolean);
  if (nodes.some((n) => n.x === null)) {
    const positions = autoLayout(nodes, { width: W, height: H, margin: MARGIN });
    for (const n of nodes) {
      if (n.x === null) Object.assign(n, positions[n.id]);
    }
  }
  return { nodes };
}

function toPayload() {
  const keyOf = new Map(state.nodes.map((n) => [n.id, n.key]));
  const steps = state.nodes.map((n) => {
    const spec = { key: n.key, type: n.type, params: n.params, after: n.after.map((id) => keyOf.get(id)) };
    if (n.label) spec.label = n.label;
    for (const name of ["retries", "retry_delay", "timeout"]) {
      if (n[name] !== null && n[name] !== undefined) spec[name] = n[name];
    }
    return spec;
  });
  const layout = {};
  for (const n of state.nodes) layout[n.key] = { x: Math.round(n.x), y: Math.round(n.y) };
  return { version, steps, layout };
}

const nodeById = (id) => state.nodes.find((n) => n.id === id);

// Why the key of node *n* would be refused, or null when it is valid.
function keyProblem(n) {
  const value = n.key;
  if (value === "") return "A key is required.";
  if (value.length > KEY_MAX) return `A key has at most ${KEY_MAX} characters.`;
  if (!KEY_RE.test(value)) return "Use letters, digits, '_', '-' or '.'; start with a letter, digit or '_'.";
  if (state.nodes.some((o) => o !== n && o.key === value)) return `Another step already has the key “${value}”.`;
  return null;
}

function keyProblems() {
  return state.nodes.map((n) => [n, keyProblem(n)]).filter(([, problem]) => problem);
}
const serialize = () => JSON.stringify(state);
const comparable = () => JSON.stringify({ ...toPayload(), version: 0 });

// ------------------------------------------------------------- history ---

const history = [];
let cursor = -1;
let savedAt = null;
let pendingRecord = null;

function record() {
  clearTimeout(pendingRecord);
  pendingRecord = null;
  const snap = serialize();
  if (history[cursor] === snap) return updateStatus();
  history.splice(cursor + 1);
  history.push(snap);
  cursor = history.length - 1;
  clearStaleMessages();
  updateStatus();
}

// Typing in the panel is recorded once the user pauses, not per keystroke.
function recordSoon() {
  clearTimeout(pendingRecord);
  pendingRecord = setTimeout(record, 400);
  clearStaleMessages();
  updateStatus();
}

function restore(index) {
  if (pendingRecord) record();
  if (index < 0 || index >= history.length) return;
  cursor = index;
  state = JSON.parse(history[cursor]);
  if (selection && selection.kind === "node" && !nodeById(selection.id)) selection = null;
  if (selection && selection.kind === "edge") {
    const to = nodeById(selection.to);
    if (!to || !to.after.includes(selection.from)) selection = null;
  }
  cancelConnect();
  clearStaleMessages();
  render();
  renderPanel();
  updateStatus();
}

const undo = () => restore(pendingRecord ? cursor : cursor - 1);
const redo = () => restore(cursor + 1);
const isDirty = () => canChange && savedAt !== comparable();

function updateStatus() {
  if (!canChange) return;
  button("undo").disabled = cursor <= 0 && !pendingRecord;
  button("redo").disabled = cursor >= history.length - 1;
  button("delete").disabled = !selection;
  root.querySelector(".dagflow-dirty").hidden = !isDirty();
}

// ------------------------------------------------------------ messages ---

// What the message bar shows: "info"/"success" notes describe the last action
// and go as soon as the graph changes again; errors and warnings stay until
// the next action replaces them, except the key check's, which goes once every
// key is valid.
let messageLevel = null;
let messageSource = null;

function say(level, lines, source = null) {
  messageLevel = level;
  messageSource = source;
  messages.replaceChildren();
  for (const line of [].concat(lines)) {
    const li = document.createElement("li");
    li.className = level;
    li.textContent = line;
    messages.append(li);
  }
}

function clearStaleMessages() {
  const stale = messageLevel === "info" || messageLevel === "success" || (messageSource === "keys" && !keyProblems().length);
  if (!stale) return;
  messages.replaceChildren();
  messageLevel = null;
  messageSource = null;
}

function highlight(ids) {
  highlighted = new Set(ids);
  render();
}

// -------------------------------------------------------------- render ---

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function edgePath(u, v) {
  const x1 = u.x + W / 2;
  const y1 = u.y + H;
  const x2 = v.x + W / 2;
  const y2 = v.y - 5; // stop at the in port, so the arrowhead shows
  const bend = Math.max(30, Math.abs(y2 - y1) / 2);
  return `M ${x1} ${y1} C ${x1} ${y1 + bend}, ${x2} ${y2 - bend}, ${x2} ${y2}`;
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function render() {
  const defs = svgEl("defs");
  const marker = svgEl("marker", { id: "dagflow-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
  marker.append(svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "dagflow-arrowhead" }));
  defs.append(marker);
  const edges = svgEl("g", { class: "dagflow-edges" });
  const nodes = svgEl("g", { class: "dagflow-nodes" });
  for (const v of state.nodes) {
    for (const uid of v.after) {
      const u = nodeById(uid);
      if (!u) continue;
      const selected = selection && selection.kind === "edge" && selection.from === u.id && selection.to === v.id;
      const g = svgEl("g", { class: `dagflow-edge${selected ? " is-selected" : ""}`, "data-from": u.key, "data-to": v.key, "data-from-id": u.id, "data-to-id": v.id });
      const title = svgEl("title", {}, `${u.key} → ${v.key}`);
      g.append(title, svgEl("path", { d: edgePath(u, v), class: "dagflow-edge-hit" }), svgEl("path", { d: edgePath(u, v), class: "dagflow-edge-line", "marker-end": "url(#dagflow-arrow)" }));
      edges.append(g);
    }
  }
  for (const n of state.nodes) {
    const type = types.get(n.type);
    const classes = ["dagflow-node"];
    if (selection && selection.kind === "node" && selection.id === n.id) classes.push("is-selected");
    if (highlighted.has(n.id)) classes.push("is-cycle");
    if (connecting && connecting.from === n.id) classes.push("is-source");
    if (!type) classes.push("is-unknown");
    if (keyProblem(n)) classes.push("is-invalid");
    const g = svgEl("g", { class: classes.join(" "), transform: `translate(${n.x} ${n.y})`, "data-key": n.key, "data-id": n.id });
    g.append(svgEl("title", {}, `${n.label || n.key} (${n.key}: ${n.type})`));
    g.append(svgEl("rect", { width: W, height: H, rx: 6, class: "dagflow-node-box" }));
    g.append(svgEl("text", { x: 10, y: 22, class: "dagflow-node-title" }, clip(n.label || n.key, 24)));
    g.append(svgEl("text", { x: 10, y: 42, class: "dagflow-node-sub" }, clip(`${n.key} · ${type ? type.label : `${n.type} (unknown)`}`, 30)));
    g.append(svgEl("circle", { cx: W / 2, cy: 0, r: 5, class: "dagflow-port dagflow-port-in" }));
    if (canChange) g.append(svgEl("circle", { cx: W / 2, cy: H, r: 7, class: "dagflow-port dagflow-port-out", "data-port": "out" }));
    nodes.append(g);
  }
  const ghost = svgEl("path", { class: "dagflow-ghost", d: "" });
  svg.replaceChildren(defs, edges, nodes, ghost);
  const maxX = Math.max(0, ...state.nodes.map((n) => n.x + W));
  const maxY = Math.max(0, ...state.nodes.map((n) => n.y + H));
  svg.setAttribute("width", Math.max(wrap.clientWidth - 4, maxX + MARGIN * 4));
  svg.setAttribute("height", Math.max(420, maxY + MARGIN * 4));
  root.classList.toggle("is-connecting", Boolean(connectMode || connecting));
  updateStatus();
}

// ---------------------------------------------------------------- panel ---

function field(labelText, control, help) {
  const row = document.createElement("div");
  row.className = "dagflow-field";
  const label = document.createElement("label");
  label.textContent = labelText;
  label.htmlFor = control.id;
  row.append(label, control);
  if (help) {
    const div = document.createElement("div");
    div.className = "help";
    div.textContent = help;
    row.append(div);
  }
  return row;
}

function input(id, type, value, attrs = {}) {
  const node = document.createElement("input");
  node.id = id;
  node.name = id.replace("dagflow-", "");
  node.type = type;
  node.value = value ?? "";
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.disabled = !canChange;
  return node;
}

function numberOption(n, name, id, label, integer) {
  const type = types.get(n.type);
  const fallback = type && type[name] !== null && type[name] !== undefined ? `type default: ${type[name]}` : "default";
  const control = input(id, "number", n[name], { min: "0", step: integer ? "1" : "any", placeholder: fallback });
  control.addEventListener("input", () => {
    const text = control.value.trim();
    const value = text === "" ? null : Number(text);
    if (value !== null && (Number.isNaN(value) || (integer && !Number.isInteger(value)))) return;
    n[name] = value;
    recordSoon();
  });
  return field(label, control);
}

function renderPanel() {
  const n = selection && selection.kind === "node" ? nodeById(selection.id) : null;
  panel.replaceChildren();
  panel.hidden = !n;
  panelEmpty.hidden = Boolean(n);
  if (!n) return;
  const type = types.get(n.type);
  const heading = document.createElement("h2");
  heading.textContent = n.label || n.key;
  panel.append(heading);

  // The key is taken as typed and checked at once; an invalid key stays in
  // the field (and on the box), flagged, and Save refuses until it is fixed.
  const key = input("dagflow-key", "text", n.key, { maxlength: String(KEY_MAX), required: "", "aria-describedby": "dagflow-key-error" });
  const keyError = document.createElement("div");
  keyError.id = "dagflow-key-error";
  keyError.className = "errornote dagflow-key-error";
  const keyRow = field("Key", key, "Unique in the workflow; downstream steps find this step's result by it.");
  const showKeyProblem = () => {
    const problem = keyProblem(n);
    keyError.textContent = problem || "";
    keyError.hidden = !problem;
    key.setAttribute("aria-invalid", problem ? "true" : "false");
    keyRow.classList.toggle("errors", Boolean(problem));
  };
  key.addEventListener("input", () => {
    n.key = key.value;
    heading.textContent = n.label || n.key;
    showKeyProblem();
    recordSoon();
    render();
  });
  keyRow.append(keyError);
  showKeyProblem();
  panel.append(keyRow);

  const label = input("dagflow-label", "text", n.label, { maxlength: "200" });
  label.addEventListener("input", () => {
    n.label = label.value;
    heading.textContent = n.label || n.key;
    recordSoon();
    render();
  });
  panel.append(field("Label", label));

  const select = document.createElement("select");
  select.id = "dagflow-type";
  select.disabled = !canChange;
  if (!type) {
    const option = document.createElement("option");
    option.value = n.type;
    option.textContent = `${n.type} (not registered)`;
    select.append(option);
  }
  for (const t of types.values()) {
    const option = document.createElement("option");
    option.value = t.name;
    option.textContent = `${t.label} (${t.name})`;
    select.append(option);
  }
  select.value = n.type;
  select.addEventListener("change", () => {
    n.type = select.value;
    n.params = structuredClone(types.get(n.type).defaults || {});
    record();
    render();
    renderPanel();
  });
  panel.append(field("Type", select, type ? type.description : "This type is not registered: saving will be refused."));

  panel.append(numberOption(n, "retries", "dagflow-retries", "Retries", true));
  panel.append(numberOption(n, "retry_delay", "dagflow-retry-delay", "Retry delay (seconds)", false));
  panel.append(numberOption(n, "timeout", "dagflow-timeout", "Timeout (seconds)", false));

  const after = document.createElement("p");
  after.className = "help dagflow-after";
  const ups = n.after.map((id) => nodeById(id)).filter(Boolean).map((u) => u.key);
  after.textContent = ups.length ? `Runs after: ${ups.join(", ")}` : "Runs first (no upstream step).";
  panel.append(after);

  const params = document.createElement("fieldset");
  params.className = "module dagflow-params";
  const legend = document.createElement("h2");
  legend.textContent = "Params";
  params.append(legend);
  params.append(renderSchemaForm(type ? type.params_schema : {}, n.params, (value) => {
    n.params = value;
    recordSoon();
  }, { disabled: !canChange }));
  panel.append(params);

  if (canChange) {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button dagflow-delete-step";
    remove.textContent = "Delete this step";
    remove.addEventListener("click", deleteSelection);
    panel.append(remove);
  }
}

// ------------------------------------------------------------- actions ---

function select(next) {
  selection = next;
  highlighted = new Set();
  render();
  renderPanel();
}

function uniqueKey(base) {
  const stem = base.replace(/[^A-Za-z0-9_.-]/g, "_");
  const taken = new Set(state.nodes.map((n) => n.key));
  for (let i = 1; ; i++) {
    if (!taken.has(`${stem}_${i}`)) return `${stem}_${i}`;
  }
}

function addNode(typeName) {
  const type = types.get(typeName);
  const anchor = selection && selection.kind === "node" ? nodeById(selection.id) : null;
  let x = MARGIN;
  let y = MARGIN;
  if (anchor) {
    x = anchor.x;
    y = anchor.y + H + 70;
  } else if (state.nodes.length) {
    y = Math.max(...state.nodes.map((n) => n.y)) + H + 70;
  }
  while (state.nodes.some((n) => Math.abs(n.x - x) < W && Math.abs(n.y - y) < H)) x += W + 40;
  const node = {
    id: `n${Date.now().toString(36)}${nextId++}`,
    key: uniqueKey(typeName),
    type: typeName,
    label: "",
    params: structuredClone(type.defaults || {}),
    retries: null,
    retry_delay: null,
    timeout: null,
    after: [],
    x,
    y,
  };
  state.nodes.push(node);
  record();
  select({ kind: "node", id: node.id });
  say("info", `Added step “${node.key}”. Change its key and params in the panel.`);
}

function connect(fromId, toId) {
  const from = nodeById(fromId);
  const to = nodeById(toId);
  if (!from || !to) return;
  if (to.after.includes(fromId)) {
    say("info", `“${to.key}” already runs after “${from.key}”.`);
    return;
  }
  const cycle = cycleIfConnected(state.nodes, fromId, toId);
  if (cycle) {
    const keys = cycle.map((id) => nodeById(id).key);
    say("error", `Refused: “${to.key}” after “${from.key}” would close a cycle: ${[...keys, keys[0]].join(" → ")}. A workflow must not loop back on itself.`);
    highlight(cycle);
    return;
  }
  to.after.push(fromId);
  record();
  select({ kind: "edge", from: fromId, to: toId });
  say("info", `“${to.key}” now runs after “${from.key}”.`);
}

function deleteSelection() {
  if (!canChange || !selection) return;
  if (selection.kind === "node") {
    const id = selection.id;
    state.nodes = state.nodes.filter((n) => n.id !== id);
    for (const n of state.nodes) n.after = n.after.filter((u) => u !== id);
  } else {
    const to = nodeById(selection.to);
    if (to) to.after = to.after.filter((u) => u !== selection.from);
  }
  record();
  select(null);
}

function cancelConnect() {
  connecting = null;
  const ghost = svg.querySelector(".dagflow-ghost");
  if (ghost) ghost.setAttribute("d", "");
}

function setConnectMode(on) {
  connectMode = on;
  cancelConnect();
  const b = button("connect");
  if (b) b.setAttribute("aria-pressed", on ? "true" : "false");
  if (on) say("info", "Connect: click a step, then the step that runs after it. Escape cancels.");
  else if (messageLevel === "info") say("info", []);
  render();
}

function layout() {
  const positions = autoLayout(state.nodes, { width: W, height: H, margin: MARGIN });
  for (const n of state.nodes) Object.assign(n, positions[n.id]);
  record();
  render();
}

async function save() {
  if (pendingRecord) record();
  const invalid = keyProblems();
  if (invalid.length) {
    // Nothing is sent: the server would refuse these keys anyway.
    const first = invalid[0][0];
    if (!selection || selection.kind !== "node" || selection.id !== first.id) select({ kind: "node", id: first.id });
    say("error", [
      "Not saved: fix the key of the steps outlined in red first.",
      ...invalid.map(([n, problem]) => `Key “${n.key}”: ${problem}`),
    ], "keys");
    highlight(invalid.map(([n]) => n.id));
    const field = panel.querySelector("#dagflow-key");
    if (field) field.focus();
    return;
  }
  const payload = toPayload();
  const saveButton = button("save");
  saveButton.disabled = true;
  const csrf = root.closest("#content-main").querySelector("[name=csrfmiddlewaretoken]").value;
  try {
    const response = await fetch(data.saveUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify(payload),
      credentials: "same-origin",
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = { ok: false, errors: [`The server refused the save (HTTP ${response.status}). Reload the page and try again.`] };
    }
    if (response.ok && body.ok) {
      version = body.version;
      savedAt = comparable();
      highlighted = new Set();
      render();
      say("success", `Saved. The workflow is now at version ${version}.`);
    } else {
      say(response.status === 409 ? "warning" : "error", body.errors || ["The save was refused."]);
      const keys = new Set((body.errors || []).flatMap((e) => [...e.matchAll(/step '([^']+)'/g)].map((m) => m[1])));
      for (const k of body.cycle || []) keys.add(k);
      highlight(state.nodes.filter((n) => keys.has(n.key)).map((n) => n.id));
    }
  } catch (error) {
    say("error", `Could not reach the server: ${error.message}. Your changes are still here; try again.`);
  } finally {
    saveButton.disabled = false;
    updateStatus();
  }
}

// ------------------------------------------------------------- pointer ---

function point(event) {
  const m = svg.getScreenCTM().inverse();
  const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(m);
  return { x: p.x, y: p.y };
}

let drag = null;

svg.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  const port = event.target.closest("[data-port=out]");
  const nodeEl = event.target.closest(".dagflow-node");
  const edgeEl = event.target.closest(".dagflow-edge");
  wrap.focus({ preventScroll: true });
  if (port && canChange) {
    connecting = { from: nodeEl.dataset.id, mode: "drag" };
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
    render();
    return;
  }
  if (nodeEl) {
    const id = nodeEl.dataset.id;
    if (connectMode && canChange) {
      if (!connecting) {
        connecting = { from: id, mode: "click" };
        render();
      } else {
        const from = connecting.from;
        if (from !== id) {
          // One connection per click on Connect: the mode ends here, made or refused.
          setConnectMode(false);
          connect(from, id);
        } else {
          cancelConnect();
          render();
        }
      }
      return;
    }
    select({ kind: "node", id });
    if (canChange) {
      const n = nodeById(id);
      const p = point(event);
      drag = { n, dx: p.x - n.x, dy: p.y - n.y, moved: false, pointerId: event.pointerId };
      svg.setPointerCapture(event.pointerId);
      event.preventDefault();
    }
    return;
  }
  if (edgeEl) {
    select({ kind: "edge", from: edgeEl.dataset.fromId, to: edgeEl.dataset.toId });
    return;
  }
  if (connecting) cancelConnect();
  select(null);
});

svg.addEventListener("pointermove", (event) => {
  const p = point(event);
  if (connecting && connecting.mode === "drag") {
    const from = nodeById(connecting.from);
    svg.querySelector(".dagflow-ghost").setAttribute("d", `M ${from.x + W / 2} ${from.y + H} L ${p.x} ${p.y}`);
    return;
  }
  if (drag) {
    drag.n.x = Math.max(0, Math.round(p.x - drag.dx));
    drag.n.y = Math.max(0, Math.round(p.y - drag.dy));
    drag.moved = true;
    const g = svg.querySelector(`.dagflow-node[data-id="${drag.n.id}"]`);
    g.setAttribute("transform", `translate(${drag.n.x} ${drag.n.y})`);
    for (const e of svg.querySelectorAll(".dagflow-edge")) {
      if (e.dataset.fromId === drag.n.id || e.dataset.toId === drag.n.id) {
        const d = edgePath(nodeById(e.dataset.fromId), nodeById(e.dataset.toId));
        for (const path of e.querySelectorAll("path")) path.setAttribute("d", d);
      }
    }
  }
});

svg.addEventListener("pointerup", (event) => {
  if (connecting && connecting.mode === "drag") {
    const from = connecting.from;
    cancelConnect();
    const target = document.elementFromPoint(event.clientX, event.clientY);
    const nodeEl = target && target.closest(".dagflow-node");
    if (nodeEl && nodeEl.dataset.id !== from) connect(from, nodeEl.dataset.id);
    else render();
    return;
  }
  if (drag) {
    const moved = drag.moved;
    drag = null;
    if (moved) {
      record();
      render();
    }
  }
});

// ------------------------------------------------------------ keyboard ---

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
  if (event.key === "Escape") {
    if (connecting || connectMode) {
      setConnectMode(false);
      say("info", "Connection cancelled.");
      event.preventDefault();
    }
    return;
  }
  if (typing || !canChange) return;
  const mod = event.ctrlKey || event.metaKey;
  if (mod && event.key.toLowerCase() === "z") {
    event.preventDefault();
    if (event.shiftKey) redo();
    else undo();
  } else if (mod && event.key.toLowerCase() === "y") {
    event.preventDefault();
    redo();
  } else if (event.key === "Delete" || event.key === "Backspace") {
    if (selection) {
      event.preventDefault();
      deleteSelection();
    }
  }
});

window.addEventListener("beforeunload", (event) => {
  if (pendingRecord) record();
  if (isDirty()) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// ------------------------------------------------------------- palette ---

function renderPalette() {
  const list = root.querySelector(".dagflow-palette-list");
  if (!list) return;
  for (const t of types.values()) {
    const li = document.createElement("li");
    li.dataset.search = `${t.label} ${t.name} ${t.description}`.toLowerCase();
    const b = document.createElement("button");
    b.type = "button";
    b.className = "dagflow-type";
    b.dataset.type = t.name;
    const strong = document.createElement("strong");
    strong.textContent = t.label;
    const code = document.createElement("code");
    code.textContent = t.name;
    b.append(strong, " ", code);
    if (t.description) {
      const small = document.createElement("small");
      small.textContent = t.description;
      b.append(small);
    }
    b.addEventListener("click", () => addNode(t.name));
    li.append(b);
    list.append(li);
  }
  const search = root.querySelector(".dagflow-palette-search");
  search.addEventListener("input", () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const li of list.children) li.hidden = !words.every((w) => li.dataset.search.includes(w));
  });
}

// ---------------------------------------------------------------- start ---

state = fromSpecs(data.steps, data.layout || {});
record();
savedAt = comparable();
if (canChange) {
  button("undo").addEventListener("click", undo);
  button("redo").addEventListener("click", redo);
  button("delete").addEventListener("click", deleteSelection);
  button("connect").addEventListener("click", () => setConnectMode(!connectMode));
  button("save").addEventListener("click", save);
}
button("layout").addEventListener("click", layout);
renderPalette();
render();
renderPanel();
root.dataset.ready = "true";
