// The command center's one script. It reads everything through the public
// API (`/api/v1/...`) with the user's token, listens to `/api/v1/stream`
// for changes (no polling), and renders the view the path names:
//   /                      wallboard
//   /workflows/{w}         map, stage tiles, groups, trend
//   /items/{w}/{key}       an item's lifecycle
//   /w/{w}/s/{stage}       a stage's items and trend (stage.js)
//   /alerts                every active alert
//   /events                event search
//   /rules                 rule editor
// It must not hold state the API does not give: a reload shows the same.
"use strict";

const TOKEN_KEY = "mon.token";
const NAME_KEY = "mon.by";

// ---- API access ----------------------------------------------------------

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

let loginWaiters = null;

/// Shows the sign-in dialog once, however many requests were refused, and
/// resolves when a token is entered.
function needLogin(message) {
  if (!loginWaiters) {
    loginWaiters = [];
    const dialog = document.getElementById("login");
    document.getElementById("login-error").textContent = message || "";
    dialog.showModal();
  }
  return new Promise((resolve) => loginWaiters.push(resolve));
}

function initLogin() {
  document.getElementById("login-form").addEventListener("submit", () => {
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("login-token").value.trim());
    const waiters = loginWaiters || [];
    loginWaiters = null;
    waiters.forEach((resolve) => resolve());
  });
}

/// The answer's JSON; a 401 asks for a token and retries; any other error
/// throws the API's error message.
async function api(path, options = {}) {
  for (;;) {
    const headers = Object.assign({ Accept: "application/json" }, authHeaders(), options.headers || {});
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      await needLogin(body.error ? body.error.message : "");
      continue;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : response.status + " " + response.statusText;
      const error = new Error(message);
      error.status = response.status;
      error.details = body && body.error ? body.error.details : null;
      throw error;
    }
    return body;
  }
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

// ---- Formatting ----------------------------------------------------------

function esc(value) {
  return String(value == null ? "" : value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/// 00:12:31 (hours may exceed 24); negative values get a "-".
function hms(ms) {
  const sign = ms < 0 ? "-" : "";
  let s = Math.floor(Math.abs(ms) / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return sign + [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}

function duration(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}

function clockTime(rfc3339) {
  const d = new Date(rfc3339);
  if (isNaN(d)) return rfc3339;
  return d.toISOString().slice(11, 19) + " UTC";
}

const STATUS = {
  red: { word: "BREACHED", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><polygon points="6,1 14,1 19,6 19,14 14,19 6,19 1,14 1,6" fill="currentColor"/><path d="M6.5 6.5l7 7M13.5 6.5l-7 7" stroke="#0b0e13" stroke-width="2.6"/></svg>' },
  amber: { word: "AT RISK", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><polygon points="10,1 19,18 1,18" fill="currentColor"/><path d="M10 7v5M10 14v2" stroke="#0b0e13" stroke-width="2.4"/></svg>' },
  green: { word: "OK", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><circle cx="10" cy="10" r="9" fill="currentColor"/><path d="M5.5 10.5l3 3 6-7" fill="none" stroke="#0b0e13" stroke-width="2.6"/></svg>' },
  idle: { word: "IDLE", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><circle cx="10" cy="10" r="8" fill="none" stroke="currentColor" stroke-width="3"/></svg>' },
};
const RANK = { red: 0, amber: 1, green: 2, idle: 3 };

/// Grey "IDLE" when green with nothing in flight and nothing expected.
function effectiveStatus(w) {
  if (w.status === "green" && w.counts && w.counts.in_flight === 0 && !w.next_deadline) return "idle";
  return w.status;
}

function statusBadge(status) {
  const s = STATUS[status] || STATUS.idle;
  return `<span class="status s-${esc(status)}" data-status-word="${esc(s.word)}">${s.icon}<span>${s.word}</span></span>`;
}

// Countdowns: the server's time_left, when the answer arrived, makes an
// instant on this browser's clock (to the second, so that the markup stays
// the same from one update to the next and only changed tiles are redrawn);
// tick() writes the time left into each one every second.
function countdown(deadline, receivedAt) {
  if (!deadline) return "";
  const until = Math.round((receivedAt + deadline.time_left_ms) / 1000) * 1000;
  return `<span class="left" data-until="${until}"></span>`;
}

function leftText(ms) {
  return ms >= 0 ? hms(ms) + " left" : "overdue by " + hms(-ms);
}

function tick() {
  const now = Date.now();
  document.querySelectorAll("[data-until]").forEach((el) => {
    el.textContent = leftText(Number(el.dataset.until) - now);
  });
  document.querySelectorAll("[data-since-ms]").forEach((el) => {
    el.textContent = sinceText(Number(el.dataset.sinceMs) + (now - Number(el.dataset.received)));
  });
}

/// An alert's time since its breach; an "at risk" alert's deadline is
/// still ahead (negative).
function sinceText(ms) {
  return ms >= 0 ? "breached " + hms(ms) + " ago" : "deadline in " + hms(-ms);
}

function deadlineLine(deadline, receivedAt) {
  if (!deadline) return "";
  const items = deadline.items > 1 ? ` (${deadline.items} items)` : "";
  return `${esc(deadline.step)} due ${esc(clockTime(deadline.at))}, ${countdown(deadline, receivedAt)}${items}`;
}

// ---- Shared state: workflows and alerts, kept current by the stream -----

const state = {
  workflows: null,
  workflowsAt: 0,
  alerts: new Map(),
  listeners: [],
};

function onChange(listener) {
  state.listeners.push(listener);
}

function changed(what) {
  state.listeners.forEach((listener) => listener(what));
}

function activeAlert(alert) {
  return alert.state === "open" || alert.state === "acknowledged";
}

function applyAlerts(alerts) {
  const now = Date.now();
  for (const alert of alerts) {
    alert._received = now;
    const before = state.alerts.get(alert.id);
    if (!alert.history && before && before.history && before.state === alert.state) alert.history = before.history;
    if (activeAlert(alert)) state.alerts.set(alert.id, alert);
    else state.alerts.delete(alert.id);
    if (alert.state === "acknowledged" && !alert.history) fetchHistory(alert.id);
  }
}

/// The list does not say who acknowledged: the alert's detail does. One
/// request per acknowledged alert, not per update.
const historyAsked = new Set();
function fetchHistory(id) {
  if (historyAsked.has(id)) return;
  historyAsked.add(id);
  api(`/api/v1/alerts/${encodeURIComponent(id)}`)
    .then((detail) => {
      const current = state.alerts.get(id);
      if (current && detail.history) {
        current.history = detail.history;
        changed("alert");
      }
    })
    .catch(() => historyAsked.delete(id));
}

async function loadAll() {
  const [list, alerts] = await Promise.all([
    api("/api/v1/workflows"),
    api("/api/v1/alerts?state=open,acknowledged&limit=1000"),
  ]);
  state.workflows = list;
  state.workflowsAt = Date.now();
  state.alerts.clear();
  applyAlerts(alerts.alerts);
  changed("all");
}

/// Reads `/api/v1/stream` with fetch (an EventSource cannot send the
/// bearer token) and applies each event; reconnects after a pause, and
/// reloads everything after a reconnect or a `resync`.
async function listen() {
  const live = document.getElementById("live");
  for (;;) {
    try {
      const response = await fetch("/api/v1/stream", { headers: Object.assign({ Accept: "text/event-stream" }, authHeaders()) });
      if (response.status === 401) {
        await needLogin("");
        continue;
      }
      if (!response.ok || !response.body) throw new Error("stream: " + response.status);
      live.dataset.live = "true";
      live.textContent = "● live";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          dispatch(block);
        }
      }
    } catch (error) {
      console.warn(error);
    }
    live.dataset.live = "false";
    live.textContent = "reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await loadAll().catch(() => {});
  }
}

/// How long applying each of the last status updates took in this page
/// (ms): what the browser test reads to hold the update budget.
const updateTimes = [];
window.monUpdateTimes = updateTimes;

function dispatch(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  let payload;
  try {
    payload = JSON.parse(data.join("\n"));
  } catch (error) {
    return;
  }
  if (event === "status") {
    state.workflows = payload;
    state.workflowsAt = Date.now();
    const started = performance.now();
    changed("status");
    // Style and layout included: reading a size forces them now.
    void document.body.offsetHeight;
    updateTimes.push(performance.now() - started);
    if (updateTimes.length > 50) updateTimes.shift();
  } else if (event === "alert") {
    applyAlerts(payload.alerts || []);
    changed("alert");
  } else if (event === "resync") {
    loadAll().catch(() => {});
  }
}

/// The open (not yet acknowledged) alerts of a workflow: what makes its red pulse.
function unacknowledged(workflow) {
  return [...state.alerts.values()].filter((a) => a.workflow === workflow && a.state === "open");
}

function acknowledgedBy(workflow) {
  return [...state.alerts.values()].filter((a) => a.workflow === workflow && a.state === "acknowledged");
}

// ---- Alert strip (every page) and the alerts page ----------------------

const SEVERITY = { critical: 0, high: 1, medium: 2, low: 3 };

function sortedAlerts() {
  return [...state.alerts.values()].sort(
    (a, b) =>
      (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1) ||
      (SEVERITY[a.severity] ?? 9) - (SEVERITY[b.severity] ?? 9) ||
      b.since_breach_ms - a.since_breach_ms ||
      a.id.localeCompare(b.id)
  );
}

function keyText(key) {
  if (!key) return "";
  if (typeof key === "string") return key;
  return Object.values(key).join(",");
}

function itemLink(workflow, key) {
  const text = keyText(key);
  if (!text) return "";
  return `<a class="item-link" href="/items/${encodeURIComponent(workflow)}/${encodeURIComponent(text)}">${esc(text)}</a>`;
}

function lastAck(alert) {
  const history = alert.history || [];
  const ack = [...history].reverse().find((h) => h.what === "acknowledged");
  return ack && ack.by ? ack.by + (ack.reason ? ` (“${ack.reason}”)` : "") : "";
}

function alertRow(alert) {
  const acked = alert.state === "acknowledged";
  const runbook = alert.runbook ? `<a href="${esc(alert.runbook)}" target="_blank" rel="noopener">runbook</a>` : "";
  const actions = acked
    ? `<span class="dim">acknowledged${lastAck(alert) ? " by " + esc(lastAck(alert)) : ""}</span>`
    : `<button type="button" class="ack" data-alert="${esc(alert.id)}">Ack</button>
       <button type="button" class="suppress" data-alert="${esc(alert.id)}">Suppress</button>`;
  return `<div class="alert ${esc(alert.state)}" data-alert-id="${esc(alert.id)}" data-workflow="${esc(alert.workflow)}">
    <span class="sev">${esc(alert.severity)}</span>
    <span><a href="/workflows/${encodeURIComponent(alert.workflow)}">${esc(alert.workflow)}</a> · ${esc(alert.step)} · ${esc(alert.kind)}</span>
    <span>${itemLink(alert.workflow, alert.key) || (alert.group ? "group " + esc(keyText(alert.group)) : "")}</span>
    <span class="since" data-since-ms="${alert.since_breach_ms}" data-received="${alert._received}">${sinceText(alert.since_breach_ms)}</span>
    ${runbook}
    <span class="actions">${actions}</span>
  </div>`;
}

function renderStrip() {
  const strip = document.getElementById("strip");
  if (location.pathname === "/alerts") {
    strip.innerHTML = "";
    return;
  }
  // An open form keeps its typed reason: do not redraw under the user.
  if (strip.querySelector("form")) return;
  const alerts = sortedAlerts();
  const shown = alerts.slice(0, 5);
  strip.innerHTML =
    shown.map(alertRow).join("") +
    (alerts.length > shown.length ? `<a class="more" href="/alerts">and ${alerts.length - shown.length} more alerts</a>` : "");
}

/// Ack and Suppress open an inline form for the reason (and the name the
/// alert's history records), then post the command.
function initAlertActions() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.ack, button.suppress");
    if (!button) return;
    const row = button.closest(".alert");
    const suppress = button.classList.contains("suppress");
    const actions = row.querySelector(".actions");
    actions.innerHTML = `<form class="alert-form">
      <input name="by" placeholder="your name" required value="${esc(sessionStorage.getItem(NAME_KEY) || "")}">
      <input name="reason" placeholder="reason" required>
      ${suppress ? `<select name="for"><option value="900000">15 min</option><option value="3600000">1 hour</option><option value="14400000">4 hours</option><option value="">until resolved</option></select>` : ""}
      <button type="submit">${suppress ? "Suppress" : "Acknowledge"}</button>
      <button type="button" class="cancel">Cancel</button>
      <span class="error"></span></form>`;
    const form = actions.querySelector("form");
    form.querySelector(suppress || form.by.value ? "[name=reason]" : "[name=by]").focus();
    form.querySelector(".cancel").addEventListener("click", () => {
      actions.innerHTML = "";
      renderStrip();
      render();
    });
    form.addEventListener("submit", async (submit) => {
      submit.preventDefault();
      const by = form.by.value.trim();
      sessionStorage.setItem(NAME_KEY, by);
      const body = { by, reason: form.reason.value.trim() };
      if (suppress && form.for.value) body.until = new Date(Date.now() + Number(form.for.value)).toISOString();
      try {
        const alert = await post(`/api/v1/alerts/${encodeURIComponent(row.dataset.alertId)}/${suppress ? "suppress" : "ack"}`, body);
        form.remove();
        applyAlerts([alert]);
        changed("alert");
      } catch (error) {
        form.querySelector(".error").textContent = error.message;
      }
    });
  });
}

// ---- Views ---------------------------------------------------------------

const view = () => document.getElementById("view");

/// A name that may wrap after its underscores rather than mid-word.
function breakable(name) {
  return esc(name).replace(/_/g, "_<wbr>");
}

function renderWallboard() {
  const list = state.workflows;
  if (!list) return;
  const order = list.workflows.map((w, index) => ({ w, index, status: effectiveStatus(w) }));
  order.sort((a, b) => RANK[a.status] - RANK[b.status] || a.index - b.index);
  const tiles = order.map(({ w, status }) => {
    const pulsing = status === "red" && unacknowledged(w.name).length > 0;
    const acked = status === "red" && !pulsing ? acknowledgedBy(w.name) : [];
    const c = w.counts;
    return `<a class="tile s-${status}${pulsing ? " pulse" : ""}" href="/workflows/${encodeURIComponent(w.name)}" data-workflow="${esc(w.name)}" data-status="${status}">
      <div class="tile-head"><span class="name">${breakable(w.name)}</span>${statusBadge(status)}</div>
      <div class="counts">
        <div class="count"><b>${c.in_flight}</b><span>in flight</span></div>
        <div class="count"><b>${c.late}</b><span>late</span></div>
        <div class="count"><b>${c.missing}</b><span>missing</span></div>
        <div class="count"><b>${c.failed}</b><span>failed</span></div>
      </div>
      ${w.reason ? `<div class="reason">${esc(w.reason)}</div>` : ""}
      ${w.worst_stage ? `<div class="worst">worst stage: <b>${esc(w.worst_stage)}</b></div>` : ""}
      ${w.next_deadline ? `<div class="deadline">${deadlineLine(w.next_deadline, state.workflowsAt)}</div>` : ""}
      ${!w.enabled ? `<div class="acked">switched off</div>` : ""}
      ${acked.length ? `<div class="acked">acknowledged by ${esc([...new Set(acked.map(lastAck).filter(Boolean))].join(", ") || "an operator")}</div>` : ""}
    </a>`;
  });
  drawBoard(order.map(({ w }) => w.name), tiles);
  tick();
}

/// Redraws only the tiles whose markup changed when the order is the
/// same (an update usually changes a few workflows' counts); the whole
/// board otherwise.
let drawnTiles = [];
let drawnOrder = "";
function drawBoard(names, tiles) {
  const board = document.getElementById("board");
  const order = names.join("\n");
  if (!board || order !== drawnOrder || board.children.length !== tiles.length) {
    view().innerHTML = `<div class="board" id="board">${tiles.join("")}</div>`;
  } else {
    tiles.forEach((html, i) => {
      if (html === drawnTiles[i]) return;
      const template = document.createElement("template");
      template.innerHTML = html;
      board.children[i].replaceWith(template.content);
    });
  }
  drawnTiles = tiles;
  drawnOrder = order;
}

// -- Workflow map: a layered layout computed from the graph ---------------

/// Longest-path layering (a stage sits one layer right of its furthest
/// predecessor), then a few sweeps ordering each layer by the barycentre
/// of its predecessors' positions. Cycles are cut by capping the layer.
function layout(graph) {
  const stages = graph.stages;
  const layer = new Map(stages.map((s) => [s, 0]));
  const preds = new Map(stages.map((s) => [s, []]));
  for (const edge of graph.edges) for (const from of edge.from) if (preds.has(edge.to) && from !== edge.to) preds.get(edge.to).push(from);
  for (let pass = 0; pass < stages.length; pass++) {
    let moved = false;
    for (const s of stages) {
      for (const p of preds.get(s)) {
        const want = Math.min(layer.get(p) + 1, stages.length - 1);
        if (want > layer.get(s)) {
          layer.set(s, want);
          moved = true;
        }
      }
    }
    if (!moved) break;
  }
  const failing = new Set(graph.edges.filter((e) => e.outcome === "failure").map((e) => e.to));
  const layers = [];
  stages.forEach((s) => (layers[layer.get(s)] = layers[layer.get(s)] || []).push(s));
  const position = new Map();
  layers.forEach((l) => l && l.forEach((s, i) => position.set(s, i)));
  for (let sweep = 0; sweep < 4; sweep++) {
    for (const l of layers) {
      if (!l) continue;
      const centre = (s) => {
        const ps = preds.get(s).filter((p) => layer.get(p) < layer.get(s));
        return ps.length ? ps.reduce((sum, p) => sum + position.get(p), 0) / ps.length : position.get(s);
      };
      // Ties: the success path first, so failures branch off below it.
      l.sort((a, b) => centre(a) - centre(b) || failing.has(a) - failing.has(b) || stages.indexOf(a) - stages.indexOf(b));
      l.forEach((s, i) => position.set(s, i));
    }
  }
  return { layer, position, layers: layers.filter(Boolean).length, height: Math.max(1, ...layers.map((l) => (l ? l.length : 0))) };
}

/// In flight always; late, missing and failed when there are any.
function nodeCounts(c) {
  const parts = [`${c.in_flight} in flight`];
  for (const [count, word] of [[c.late, "late"], [c.missing, "missing"], [c.failed, "failed"]]) if (count) parts.push(`${count} ${word}`);
  return parts.join(" · ");
}

function renderMap(detail) {
  const NODE_W = 240, NODE_H = 96, COL = 430, ROW = 150, PAD_X = 190, PAD_Y = 40;
  const { layer, position, layers, height } = layout(detail.graph);
  const stageOf = new Map(detail.stages.map((s) => [s.name, s]));
  const pulsingWorkflow = unacknowledged(detail.name).length > 0;
  const x = (s) => PAD_X + layer.get(s) * COL;
  const y = (s) => PAD_Y + position.get(s) * ROW;
  const width = PAD_X + layers * COL;
  const svgHeight = PAD_Y * 2 + height * ROW;
  const edges = [];
  for (const edge of detail.graph.edges) {
    const target = stageOf.get(edge.to);
    const classes = ["edge"];
    if (edge.outcome === "failure") classes.push("failure");
    if (edge.optional) classes.push("optional");
    const label = [edge.step, edge.deadline, edge.outcome === "failure" ? "→ failure" : ""].filter(Boolean).join(" · ");
    const late = target && target.counts.late ? ` · ${target.counts.late} late` : "";
    const x2 = x(edge.to), y2 = y(edge.to) + NODE_H / 2;
    const sources = edge.from.length ? edge.from : [null];
    // A step from several stages is labelled once, on its nearest source.
    const labelled = sources.reduce((best, from) => (from && best && layer.get(from) > layer.get(best) ? from : best), sources[0]);
    for (const from of sources) {
      const source = from ? stageOf.get(from) : target;
      const status = source ? source.status : "green";
      const x1 = from ? x(from) + NODE_W : x2 - PAD_X + 20;
      const y1 = from ? y(from) + NODE_H / 2 : y2;
      const bend = Math.max(40, Math.abs(x2 - x1) / 2);
      // An edge that skips a layer on the same row would run under the
      // nodes between: it arcs below them instead.
      const skips = from && layer.get(edge.to) - layer.get(from) > 1 && y2 >= y1;
      const d = x2 <= x1
        ? `M${x1},${y1} C${x1 + 120},${y1 + ROW} ${x2 - 120},${y2 + ROW} ${x2},${y2}`
        : skips
        ? `M${x1},${y1} C${x1 + bend},${y1 + ROW * 0.75} ${x2 - bend},${y2 + ROW * 0.75} ${x2},${y2}`
        : `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
      const text = from === labelled ? `<text x="${x2 - 14}" y="${y2 - 10}" text-anchor="end">${esc(label + late)}</text>` : "";
      edges.push(`<g class="${classes.join(" ")} s-${status}" data-step="${esc(edge.step)}"><path d="${d}" marker-end="url(#arrow)"/>${text}</g>`);
    }
  }
  const nodes = detail.graph.stages.map((name) => {
    const stage = stageOf.get(name) || { status: "green", counts: { in_flight: 0, late: 0, missing: 0 } };
    const status = stage.status;
    const pulsing = status === "red" && pulsingWorkflow;
    const word = (STATUS[status] || STATUS.idle).word;
    return `<a href="${stageHref(detail.name, name)}"><g class="node s-${status}${pulsing ? " pulse" : ""}" data-stage="${esc(name)}" data-status="${status}" transform="translate(${x(name)},${y(name)})">
      <rect width="${NODE_W}" height="${NODE_H}" rx="10"/>
      <text x="14" y="28" font-weight="700">${esc(name)}</text>
      <text class="word" x="14" y="54">${word}</text>
      <text x="14" y="80">${esc(nodeCounts(stage.counts))}</text>
    </g></a>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${svgHeight}" viewBox="0 0 ${width} ${svgHeight}" role="img" aria-label="map of ${esc(detail.name)}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>
    ${edges.join("")}${nodes.join("")}</svg>`;
}

function stageTile(workflow, stage, receivedAt) {
  const c = stage.counts;
  const most = Math.max(1, ...stage.aging.map((b) => b.items));
  const aging = stage.aging
    .map((b) => `<div title="${b.items} items"><i style-height="${Math.round((b.items / most) * 100)}"></i>${esc(b.label)}<br><b>${b.items}</b></div>`)
    .join("");
  return `<section class="stage s-${stage.status}" data-stage="${esc(stage.name)}">
    <h3><a href="${stageHref(workflow, stage.name)}">${esc(stage.name)}</a>${statusBadge(stage.status)}</h3>
    ${stage.reason ? `<p class="reason">${esc(stage.reason)}</p>` : ""}
    <dl>
      <dt>in flight</dt><dd>${c.in_flight}</dd>
      <dt>completed</dt><dd>${c.completed}</dd>
      <dt>late</dt><dd>${c.late}</dd>
      <dt>missing</dt><dd>${c.missing}</dd>
      <dt>failed</dt><dd>${c.failed}</dd>
      <dt>oldest</dt><dd>${stage.oldest ? `${itemLink(workflow, stage.oldest.key)} (${duration(stage.oldest.age_ms)})` : "—"}</dd>
      <dt>next</dt><dd>${stage.next_deadline ? deadlineLine(stage.next_deadline, receivedAt) : "—"}</dd>
    </dl>
    <div class="aging">${aging}</div>
  </section>`;
}

/// Bar heights go through the CSS object model: the page's policy allows
/// no inline style attribute.
function applyBarHeights(root) {
  root.querySelectorAll("[style-height]").forEach((bar) => (bar.style.height = bar.getAttribute("style-height") * 0.02 + "rem"));
}

function sparkline(points) {
  if (!points.length || !points.some((p) => p.entered || p.baseline)) return `<p class="dim">No entries in the last hour.</p>`;
  const W = 420, H = 60;
  const usual = (p) => (p.baseline ? p.baseline.entered : 0);
  const max = Math.max(1, ...points.map((p) => Math.max(p.entered, usual(p))));
  const line = (value) =>
    points.map((p, i) => `${((i / Math.max(1, points.length - 1)) * W).toFixed(1)},${(H - (value(p) / max) * (H - 4) - 2).toFixed(1)}`).join(" ");
  const baseline = points.some((p) => p.baseline != null) ? `<polyline class="baseline" points="${line(usual)}"/>` : "";
  return `<svg class="spark" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="entered per minute, last hour">${baseline}<polyline class="entered" points="${line((p) => p.entered)}"/></svg>`;
}

let groupSort = { column: "status", descending: false };

function groupsTable(workflow, groups) {
  if (!groups.length) return "";
  const value = (g, column) => (column === "status" ? RANK[g.status] : column === "group" ? g.group : g.counts[column]);
  const sorted = [...groups].sort((a, b) => {
    const va = value(a, groupSort.column), vb = value(b, groupSort.column);
    const order = va < vb ? -1 : va > vb ? 1 : a.group.localeCompare(b.group);
    return groupSort.descending ? -order : order;
  });
  const header = ["group", "status", "in_flight", "late", "missing", "failed"]
    .map((c) => `<th data-sort="${c}">${c.replace("_", " ")}</th>`)
    .join("");
  const rows = sorted.map(
    (g) => `<tr><td>${esc(g.group)}</td><td>${statusBadge(g.status)}${g.reason ? `<div class="dim">${esc(g.reason)}</div>` : ""}</td>
      <td>${g.counts.in_flight}</td><td>${g.counts.late}</td><td>${g.counts.missing}</td><td>${g.counts.failed}</td></tr>`
  );
  return `<h2>Groups</h2><table class="groups"><thead><tr>${header}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

let workflowLoad = null;
let trendsCache = null;

async function renderWorkflow(name) {
  // One request at a time: status events arrive about once a second.
  if (workflowLoad) return workflowLoad;
  workflowLoad = (async () => {
    const path = `/api/v1/workflows/${encodeURIComponent(name)}`;
    // Trends change per minute: read them at most every 30 s.
    const trendsFresh = trendsCache && trendsCache.workflow === name && Date.now() - trendsCache.at < 30000;
    const [detail, groups, trends] = await Promise.all([
      api(path),
      api(path + "/groups?limit=200").catch(() => ({ groups: [] })),
      trendsFresh ? trendsCache.trends : api(path + "/trends").catch(() => ({ points: [] })),
    ]);
    if (!trendsFresh) trendsCache = { workflow: name, at: Date.now(), trends };
    const receivedAt = Date.now();
    const status = detail.status;
    view().innerHTML = `<h1>${esc(detail.name)} ${statusBadge(status)}</h1>
      ${detail.reason ? `<p class="reason">${esc(detail.reason)}</p>` : ""}
      ${detail.next_deadline ? `<p class="deadline">${deadlineLine(detail.next_deadline, receivedAt)}</p>` : ""}
      <div class="map" id="map">${renderMap(detail)}</div>
      <h2>Entered per minute (dashed: baseline)</h2>${sparkline(trends.points || [])}
      <h2>Stages</h2><div class="stages">${detail.stages.map((s) => stageTile(detail.name, s, receivedAt)).join("")}</div>
      <div id="groups">${groupsTable(detail.name, groups.groups || [])}</div>`;
    applyBarHeights(view());
    drawStageCharts(view(), detail.name);
    tick();
    view().querySelectorAll("th[data-sort]").forEach((th) =>
      th.addEventListener("click", () => {
        groupSort = { column: th.dataset.sort, descending: groupSort.column === th.dataset.sort && !groupSort.descending };
        document.getElementById("groups").innerHTML = groupsTable(detail.name, groups.groups || []);
      })
    );
  })().finally(() => (workflowLoad = null));
  return workflowLoad;
}

// -- Item lifecycle -------------------------------------------------------

function verdict(hop) {
  if (hop.on_time === true) return `<span class="verdict-on-time">on time${hop.spare_ms != null ? ", " + duration(hop.spare_ms) + " to spare" : ""}</span>`;
  if (hop.on_time === false) return `<span class="verdict-late">late by ${duration(hop.late_by_ms || 0)}</span>`;
  return `<span class="dim">no deadline</span>`;
}

function timeline(stays) {
  if (!stays.length) return "";
  const W = 900, ROW = 34;
  const total = Math.max(1, stays.reduce((sum, s) => sum + Math.max(0, s.spent_ms), 0));
  let x = 0;
  const rows = stays.map((s, i) => {
    const w = Math.max(4, (Math.max(0, s.spent_ms) / total) * (W - 260));
    const bar = `<rect class="stay${s.left_at ? "" : " open"}" x="${200 + x}" y="${i * ROW + 6}" width="${w}" height="${ROW - 12}"/>
      <text x="0" y="${i * ROW + 23}">${esc(s.stage)}</text>
      <text x="${200 + x + w + 8}" y="${i * ROW + 23}">${duration(s.spent_ms)}${s.left_at ? "" : " (still here)"}</text>`;
    x += w;
    return bar;
  });
  return `<div class="timeline"><svg width="${W + 160}" height="${stays.length * ROW + 6}" role="img" aria-label="time per stage">${rows.join("")}</svg></div>`;
}

async function renderItem(workflow, key) {
  const item = await api(`/api/v1/workflows/${encodeURIComponent(workflow)}/items/${encodeURIComponent(key)}`);
  const s = item.state;
  const receivedAt = Date.now();
  let now;
  if (!s) now = "no item";
  else if (s.closed) now = `closed (${esc(s.closed)}) at ${esc(clockTime(s.closed_at))}`;
  else {
    const waits = (s.waits_for || []).map(
      (w) => `<li><b>${esc(w.step)}</b>${w.optional ? " (optional)" : ""}${w.deadline ? `, due ${esc(clockTime(w.deadline))}` : ""}${
        w.left_ms != null ? ", " + countdown({ time_left_ms: w.left_ms }, receivedAt) : ""
      }</li>`
    );
    now = `in <b>${esc(s.stage)}</b> since ${esc(clockTime(s.since))}; waits for:<ul>${waits.join("") || "<li>nothing</li>"}</ul>`;
  }
  const hops = (item.hops || []).map(
    (h) => `<tr><td>${esc(h.step)}</td><td>${esc(clockTime(h.at))}</td><td>${h.deadline ? esc(clockTime(h.deadline)) : "—"}</td><td>${verdict(h)}</td>
      <td>${h.skipped && h.skipped.length ? "skipped " + esc(h.skipped.join(", ")) : ""}</td></tr>`
  );
  const deadlines = (item.deadlines || []).map(
    (d) => `<tr><td>${esc(d.step)}</td><td>${esc(clockTime(d.deadline))}</td><td class="verdict-${esc(d.outcome).replace(/[^a-z-]/g, "-")}">${esc(d.outcome)}</td><td>${esc(clockTime(d.at))}</td></tr>`
  );
  const unmoved = (item.moved_nothing || []).map((u) => `<tr><td>${esc(clockTime(u.at))}</td><td>${esc(u.what)}</td><td>${esc(u.reason)}</td></tr>`);
  view().innerHTML = `<h1>${esc(workflow)} · <span class="mono">${esc(key)}</span></h1>
    <p><a href="/workflows/${encodeURIComponent(workflow)}">← ${esc(workflow)}</a></p>
    <h2>Now</h2><div class="waits" id="waits">${now}</div>
    <h2>Time per stage</h2>${timeline(item.stages || [])}
    <h2>Hops</h2><table class="hops"><thead><tr><th>step</th><th>at</th><th>deadline</th><th>verdict</th><th></th></tr></thead><tbody>${hops.join("")}</tbody></table>
    ${deadlines.length ? `<h2>Deadlines</h2><table><thead><tr><th>step</th><th>deadline</th><th>outcome</th><th>decided at</th></tr></thead><tbody>${deadlines.join("")}</tbody></table>` : ""}
    <h2>Payload (last event)</h2><pre class="payload">${esc(JSON.stringify(item.last_payload, null, 2))}</pre>
    ${unmoved.length ? `<h2>Events that moved nothing</h2><table><tbody>${unmoved.join("")}</tbody></table>` : ""}`;
  tick();
}

// -- Alerts and events pages ---------------------------------------------

function renderAlerts() {
  const alerts = sortedAlerts();
  view().innerHTML = `<h1>Active alerts (${alerts.length})</h1>${alerts.map(alertRow).join("") || '<p class="dim">No active alert.</p>'}`;
}

function renderEvents() {
  const params = new URLSearchParams(location.search);
  const field = (name, label, type = "text") => `<label>${label}<input name="${name}" type="${type}" value="${esc(params.get(name) || "")}"></label>`;
  view().innerHTML = `<h1>Events</h1>
    <form class="search" id="search">${field("type", "type")}${field("workflow", "workflow")}${field("key", "key")}${field("from", "from (RFC 3339)")}${field("to", "to (RFC 3339)")}${field("field", "field name:value")}
      <label>rejected<select name="rejected"><option value="">any</option><option value="false">accepted</option><option value="true">rejected</option></select></label>
      <button type="submit">Search</button></form><div id="results"></div>`;
  const form = document.getElementById("search");
  form.rejected.value = params.get("rejected") || "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams([...new FormData(form)].filter(([, v]) => v));
    history.replaceState(null, "", "/events?" + query);
    search(query);
  });
  if ([...params].length) search(params);
}

async function search(query) {
  const results = document.getElementById("results");
  try {
    const page = await api("/api/v1/events?" + query);
    results.innerHTML = `<table><thead><tr><th>time</th><th>type</th><th>items</th><th>data</th></tr></thead><tbody>${page.events
      .map(
        (e) => `<tr><td>${esc(clockTime(e.time))}</td><td>${esc(e.type)}${e.rejected ? ` <span class="error">rejected: ${esc(e.reason)}</span>` : ""}</td>
        <td>${(e.items || []).map((i) => itemLink(i.workflow, i.key)).join(" ")}</td><td class="mono">${esc(JSON.stringify(e.data))}</td></tr>`
      )
      .join("")}</tbody></table>`;
  } catch (error) {
    results.innerHTML = `<p class="error">${esc(error.message)}</p>`;
  }
}

// -- Rule editor ------------------------------------------------------------

/// The active version's files in an editor: diagnostics from the compiler
/// (`POST /api/v1/rules/validate`) as you type, then store the edit as a
/// version, dry-run it against pasted events, diff it against the active
/// version, and activate it. Storing and activating need the editor role;
/// the API refuses a lower one and the page shows its answer.
async function renderRules() {
  const page = await api("/api/v1/rules/versions?limit=20");
  const versions = page.versions || [];
  const active = page.active;
  if (active == null) {
    view().innerHTML = `<h1>Rules</h1><p class="dim">No version is active.</p>`;
    return;
  }
  const detail = await api(`/api/v1/rules/versions/${active}`);
  const files = Object.assign({}, detail.sources);
  const ruleFiles = Object.keys(files).filter((path) => path.endsWith(".mon"));
  const log = versions
    .map((v) => `<tr><td>${v.version}${v.version === active ? " (active)" : ""}</td><td>${esc(v.author)}</td><td>${esc(v.message)}</td><td>${esc(clockTime(v.created_at))}</td></tr>`)
    .join("");
  view().innerHTML = `<h1>Rules</h1>
    <p>Editing version ${active} (active).
      <label>File <select id="rule-file">${ruleFiles.map((f) => `<option>${esc(f)}</option>`).join("")}</select></label></p>
    <textarea id="rule-text" class="editor" spellcheck="false" rows="24"></textarea>
    <div id="diagnostics" class="diagnostics" aria-live="polite"></div>
    <form id="rule-store" class="search">
      <label>Message <input name="message" required placeholder="why this change"></label>
      <button type="submit">Store as a new version</button>
    </form>
    <div id="stored"></div>
    <h2>Versions</h2><table><thead><tr><th>version</th><th>author</th><th>message</th><th>stored</th></tr></thead><tbody>${log}</tbody></table>`;
  const select = document.getElementById("rule-file");
  const text = document.getElementById("rule-text");
  let current = ruleFiles[0];
  text.value = files[current] || "";
  select.addEventListener("change", () => {
    files[current] = text.value;
    current = select.value;
    text.value = files[current];
  });
  let timer = null;
  text.addEventListener("input", () => {
    files[current] = text.value;
    clearTimeout(timer);
    timer = setTimeout(() => validate(files), 300);
  });
  validate(files);
  document.getElementById("rule-store").addEventListener("submit", async (event) => {
    event.preventDefault();
    const stored = document.getElementById("stored");
    files[current] = text.value;
    try {
      const answer = await post("/api/v1/rules/versions", { files, message: event.target.message.value });
      showStored(stored, answer.version.version, active);
    } catch (error) {
      stored.innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  });
}

async function validate(files) {
  const box = document.getElementById("diagnostics");
  if (!box) return;
  try {
    const result = await post("/api/v1/rules/validate", { files });
    box.dataset.ok = String(result.ok);
    box.innerHTML = result.diagnostics.length
      ? `<ul>${result.diagnostics
          .map((d) => `<li class="diag-${esc(d.severity)}"><span class="mono">${esc(d.file)}:${d.line}:${d.column}</span> ${esc(d.severity)} ${esc(d.code)}: ${esc(d.message)}${d.help ? ` <span class="dim">(${esc(d.help)})</span>` : ""}</li>`)
          .join("")}</ul>`
      : `<p class="verdict-met">No problems: ${result.workflows.length} workflows compile.</p>`;
  } catch (error) {
    box.innerHTML = `<p class="error">${esc(error.message)}</p>`;
  }
}

/// A stored version: its diff against the active one, a dry-run over
/// pasted events, and activation.
async function showStored(box, version, active) {
  const diff = await api(`/api/v1/rules/versions/${version}/diff?against=${active}`).catch((error) => ({ error }));
  const source = diff.error
    ? `<p class="error">${esc(diff.error.message)}</p>`
    : diff.source.map((f) => `<h3>${esc(f.path)} (${esc(f.status)})</h3><pre class="payload diff">${esc(f.diff)}</pre>`).join("") || "<p>No change to the sources.</p>";
  box.innerHTML = `<h2>Version ${version}</h2><h3>Diff against version ${active}</h3>${source}
    <form id="dry-run" class="search"><label>Events (NDJSON) <textarea name="events" rows="5" cols="80" required></textarea></label>
      <button type="submit">Dry-run</button></form><div id="dry-run-result"></div>
    <form id="activate" class="search"><label>Message <input name="message" required></label><button type="submit">Activate version ${version}</button></form>
    <div id="activated"></div>`;
  document.getElementById("dry-run").addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = document.getElementById("dry-run-result");
    try {
      const result = await post(`/api/v1/rules/versions/${version}/dry-run`, { events: event.target.events.value, notifications: true, against: active });
      const records = result.records.map((r) => `<li class="mono">${esc(JSON.stringify(r))}</li>`).join("");
      const compared = result.compared ? `<p>${result.compared.only_in_version.length} records only with version ${version}.</p>` : "";
      out.innerHTML = `<p>${result.lines} lines, ${result.rejected} rejected, ${result.records.length} records, ${result.notifications.length} notifications.</p>${compared}<ul class="records">${records}</ul>`;
    } catch (error) {
      out.innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  });
  document.getElementById("activate").addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = document.getElementById("activated");
    try {
      await post(`/api/v1/rules/versions/${version}/activate`, { message: event.target.message.value });
      out.innerHTML = `<p class="verdict-met">Version ${version} is active.</p>`;
    } catch (error) {
      out.innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  });
}

// ---- Routing -------------------------------------------------------------

function route() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { name: "wallboard" };
  if (parts[0] === "workflows" && parts.length === 2) return { name: "workflow", workflow: parts[1] };
  if (parts[0] === "items" && parts.length === 3) return { name: "item", workflow: parts[1], key: parts[2] };
  if (parts[0] === "w" && parts[2] === "s" && parts.length === 4) return { name: "stage", workflow: parts[1], stage: parts[3] };
  if (parts[0] === "alerts") return { name: "alerts" };
  if (parts[0] === "events") return { name: "events" };
  if (parts[0] === "rules") return { name: "rules" };
  return { name: "unknown" };
}

let lastItemLoad = 0;

function render(what = "all") {
  const r = route();
  renderStrip();
  const fail = (error) => (view().innerHTML = `<p class="error">${esc(error.message)}</p>`);
  if (r.name === "wallboard") renderWallboard();
  else if (r.name === "workflow" && (what !== "status" || changedWorkflow(r.workflow))) renderWorkflow(r.workflow).catch(fail);
  else if (r.name === "stage") renderStage(r.workflow, r.stage, what).catch(fail);
  else if (r.name === "item" && (what === "all" || Date.now() - lastItemLoad > 5000)) {
    // A replay per load: at most every 5 s, whatever the stream says.
    lastItemLoad = Date.now();
    renderItem(r.workflow, r.key).catch(fail);
  } else if (r.name === "alerts") {
    if (!view().querySelector("form")) renderAlerts();
  } else if (r.name === "events" && what === "all") renderEvents();
  else if (r.name === "rules" && what === "all") renderRules().catch(fail);
  else if (r.name === "unknown") view().innerHTML = `<p class="error">No such page.</p>`;
}

/// Whether the streamed list changed this workflow's line since the page
/// last drew it.
let drawnLine = "";
function changedWorkflow(name) {
  const line = JSON.stringify((state.workflows.workflows || []).find((w) => w.name === name) || null);
  const differs = line !== drawnLine;
  drawnLine = line;
  return differs;
}

document.addEventListener("DOMContentLoaded", () => {
  // NOC mode (`/?board`): the room's screen, read-only: no navigation, no
  // alert actions, nothing to click by accident.
  if (new URLSearchParams(location.search).has("board")) document.body.classList.add("board-mode");
  initLogin();
  initAlertActions();
  onChange(render);
  loadAll()
    .catch((error) => (view().innerHTML = `<p class="error">${esc(error.message)}</p>`))
    .then(listen);
  setInterval(tick, 1000);
});
