// Draw the graph of a workflow or a run from its DOT with Graphviz compiled to
// WebAssembly (vendored viz.js, no server-side Graphviz needed). On a run page,
// poll the run's status JSON and recolour the nodes until the run is final.
// User text only ever reaches the page as SVG text produced by Graphviz from
// escaped DOT, or through textContent: never through innerHTML.
import { instance } from "../vendor/viz-js/viz.js";

const POLL_MS = 1000;

function nodeElements(svg) {
  const nodes = new Map();
  for (const g of svg.querySelectorAll("g.node")) {
    const title = g.querySelector("title");
    if (title) nodes.set(title.textContent, g);
  }
  return nodes;
}

function setState(g, state) {
  for (const cls of [...g.classList]) {
    if (cls.startsWith("state-")) g.classList.remove(cls);
  }
  g.classList.add(`state-${state}`);
  g.dataset.state = state;
}

function applyRun(container, nodes, run) {
  const counts = {};
  for (const [key, step] of Object.entries(run.steps)) {
    counts[step.status] = (counts[step.status] || 0) + 1;
    const g = nodes.get(key);
    if (!g) continue;
    setState(g, step.status);
    if (step.url && !g.dataset.href) {
      g.dataset.href = step.url;
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "link");
    }
  }
  for (const el of document.querySelectorAll("[data-dagflow-count]")) {
    const n = counts[el.dataset.dagflowCount] || 0;
    el.textContent = n ? `(${n})` : "";
  }
  const badge = document.querySelector("[data-dagflow-run-status]");
  if (badge) {
    badge.textContent = run.status_label;
    badge.className = `dagflow-badge state-${run.status}`;
  }
  const bar = document.querySelector("[data-dagflow-progress-bar]");
  if (bar) {
    bar.style.width = `${run.total ? Math.round((100 * run.finished) / run.total) : 0}%`;
    bar.className = `dagflow-progress-bar state-${run.status}`;
  }
  const text = document.querySelector("[data-dagflow-progress-text]");
  if (text) text.textContent = `${run.finished} / ${run.total}`;
  const polling = document.querySelector("[data-dagflow-polling]");
  if (polling) polling.hidden = run.final;
  // "running": shown until the run ends; "final": once it has ended;
  // "rerunnable": once it has ended with something to rerun.
  for (const el of document.querySelectorAll("[data-dagflow-when]")) {
    const when = el.dataset.dagflowWhen;
    el.hidden = when === "running" ? run.final : when === "final" ? !run.final : !run[when];
  }
  container.dataset.runStatus = run.status;
  container.dataset.final = run.final ? "true" : "false";
  drawTimeline(run);
}

function drawTimeline(run) {
  const box = document.getElementById("dagflow-timeline");
  if (!box) return;
  const steps = Object.entries(run.steps).filter(([, s]) => s.started_at);
  if (!steps.length) {
    box.textContent = "";
    return;
  }
  const now = Date.parse(run.now);
  const start = Math.min(...steps.map(([, s]) => Date.parse(s.started_at)));
  const end = Math.max(...steps.map(([, s]) => (s.finished_at ? Date.parse(s.finished_at) : now)));
  const span = Math.max(end - start, 1);
  steps.sort((a, b) => Date.parse(a[1].started_at) - Date.parse(b[1].started_at));
  const rows = steps.map(([key, s]) => {
    const row = document.createElement("div");
    row.className = "dagflow-timeline-row";
    const label = document.createElement("span");
    label.className = "dagflow-timeline-key";
    label.textContent = key;
    label.title = key;
    const track = document.createElement("span");
    track.className = "dagflow-timeline-track";
    const bar = document.createElement("span");
    const from = Date.parse(s.started_at);
    const to = s.finished_at ? Date.parse(s.finished_at) : now;
    bar.className = `dagflow-timeline-bar state-${s.status}`;
    bar.style.left = `${(100 * (from - start)) / span}%`;
    bar.style.width = `${(100 * (to - from)) / span}%`;
    bar.title = `${key}: ${((to - from) / 1000).toFixed(1)} s (${s.status})`;
    track.append(bar);
    row.append(label, track);
    return row;
  });
  box.replaceChildren(...rows);
}

async function poll(container, nodes, url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.ok) {
      const run = await response.json();
      applyRun(container, nodes, run);
      if (run.final) return;
    }
  } catch (error) {
    console.warn("dagflow: polling failed, retrying", error);
  }
  setTimeout(() => poll(container, nodes, url), POLL_MS);
}

function openNode(event) {
  const g = event.target.closest("g.node[data-href]");
  if (!g) return;
  if (event.type === "keydown" && event.key !== "Enter") return;
  window.location.assign(g.dataset.href);
}

async function draw(container) {
  const data = JSON.parse(document.getElementById(container.dataset.graphSource).textContent);
  const started = performance.now();
  let svg;
  try {
    const viz = await instance();
    svg = viz.renderSVGElement(data.dot);
  } catch (error) {
    const p = document.createElement("p");
    p.className = "dagflow-graph-error";
    p.textContent = `The graph could not be drawn: ${error}`;
    container.replaceChildren(p);
    return;
  }
  container.replaceChildren(svg);
  container.dataset.drawMs = String(Math.round(performance.now() - started));
  container.dataset.drawn = "true";
  const nodes = nodeElements(svg);
  container.addEventListener("click", openNode);
  container.addEventListener("keydown", openNode);
  if (data.run) {
    applyRun(container, nodes, data.run);
    if (!data.run.final && data.status_url) {
      setTimeout(() => poll(container, nodes, data.status_url), POLL_MS);
    }
  }
}

for (const container of document.querySelectorAll("[data-graph-source]")) {
  draw(container);
}
