// The stage page (`/w/{workflow}/s/{stage}`) and the trend charts with
// their anomaly signals, on the stage page and one small chart per stage
// on the workflow page. Loaded after ui.js, whose helpers (api, esc,
// statusBadge, stageTile, countdown, tick, view...) it uses.
//
// Charts are drawn by uPlot (vendored in assets/vendor, see
// docs/DEPENDENCIES.md); this script draws no canvas itself. An anomaly
// the API names (`drop`, `spike`, `stalled`) is a shaded band over its
// interval with a word on it, and a line of text under the chart: never
// colour alone. Like ui.js, it holds no state the API does not give.
"use strict";

/// Trends change by the minute: each stage's is read at most this often.
const TREND_EVERY_MS = 30000;
/// A stage page re-reads its items on a status change at most this often.
const STAGE_EVERY_MS = 2000;

const trendCache = new Map();

function stageHref(workflow, stage) {
  return `/w/${encodeURIComponent(workflow)}/s/${encodeURIComponent(stage)}`;
}

/// One stage's trend, or one group's within the stage (`group`: its
/// values joined by `/`, as `/groups` gives it).
async function stageTrend(workflow, stage, group) {
  const id = [workflow, stage, group || ""].join("\u0000");
  const cached = trendCache.get(id);
  if (cached && Date.now() - cached.at < TREND_EVERY_MS) return cached.trend;
  const query = `stage=${encodeURIComponent(stage)}` + (group ? `&group=${encodeURIComponent(group)}` : "");
  const trend = await api(`/api/v1/workflows/${encodeURIComponent(workflow)}/trends?${query}`);
  trendCache.set(id, { at: Date.now(), trend });
  return trend;
}

/// The groups charted on a stage page: those with the most in flight.
const GROUP_CHARTS = 8;

const ANOMALY_WORD = { drop: "DROP", spike: "SPIKE", stalled: "STALLED" };

/// "SPIKE 13:59–14:01 UTC: 34.0 entered/minute against 11.3 usually": the
/// word in capitals, then the API's text less its own "spike: ".
function anomalyText(a) {
  const words = a.text.replace(/^[a-z]+: /, "");
  return `<b>${ANOMALY_WORD[a.kind] || esc(a.kind)}</b> ${esc(clockTime(a.from).replace(" UTC", ""))}–${esc(clockTime(a.to))}: ${esc(words)}`;
}

function anomalyList(anomalies) {
  if (!anomalies.length) return "";
  const rows = anomalies.map((a) => `<li class="anomaly-line a-${esc(a.kind)}" data-kind="${esc(a.kind)}">${anomalyText(a)}</li>`);
  return `<ul class="anomalies">${rows.join("")}</ul>`;
}

/// Draws `trend` into `box` with uPlot: entered per bucket (solid) against
/// the baseline (dashed), each anomaly a labelled band.
function drawTrend(box, trend, small) {
  const points = (trend && trend.points) || [];
  if (!points.length) {
    box.innerHTML = `<p class="dim">No history yet.</p>`;
    return;
  }
  const xs = points.map((p) => Date.parse(p.at) / 1000);
  const entered = points.map((p) => p.entered);
  const baseline = points.map((p) => (p.baseline ? p.baseline.entered : null));
  box.innerHTML = `<div class="chart"></div>${small ? "" : anomalyList(trend.anomalies || [])}`;
  const holder = box.querySelector(".chart");
  const axis = { stroke: "#f2f5f8", grid: { stroke: "#2b3440" }, ticks: { stroke: "#3d4654" }, font: "16px DejaVu Sans, sans-serif" };
  const width = Math.max(260, box.clientWidth || 300);
  const chart = new uPlot(
    {
      width,
      height: small ? 120 : 260,
      legend: { show: false },
      cursor: { show: !small },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [
        Object.assign({}, axis, { values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(11, 16)) }),
        Object.assign({}, axis, { size: small ? 44 : 56 }),
      ],
      series: [
        {},
        { label: "entered", stroke: "#9ccfff", width: 2.5, points: { show: false } },
        { label: "baseline", stroke: "#b8c0ca", width: 2, dash: [6, 5], spanGaps: true, points: { show: false } },
      ],
      // Why on `ready`: uPlot sizes its plot after the constructor returns.
      hooks: { ready: [(u) => addBands(u, trend.anomalies || [])] },
    },
    [xs, entered, baseline],
    holder
  );
  return chart;
}

/// Bands are elements over the plot, placed with uPlot's own scale, so
/// their words are text a reader (and a test) can find.
function addBands(chart, anomalies) {
  const plotWidth = chart.bbox.width / uPlot.pxRatio;
  for (const a of anomalies) {
    const left = Math.max(0, chart.valToPos(Date.parse(a.from) / 1000, "x"));
    const right = Math.min(plotWidth, chart.valToPos(Date.parse(a.to) / 1000, "x"));
    if (right <= left) continue;
    const band = document.createElement("div");
    band.className = `anomaly a-${a.kind}`;
    band.dataset.kind = a.kind;
    band.title = a.text;
    band.style.left = left + "px";
    band.style.width = right - left + "px";
    const label = document.createElement("span");
    label.className = "anomaly-label";
    label.textContent = ANOMALY_WORD[a.kind] || a.kind;
    if (left > plotWidth / 2) label.classList.add("end");
    band.appendChild(label);
    chart.over.appendChild(band);
  }
}

/// One small chart per stage tile of the workflow page.
async function drawStageCharts(root, workflow) {
  for (const tile of root.querySelectorAll(".stage[data-stage]")) {
    const box = document.createElement("div");
    box.className = "stage-chart";
    tile.appendChild(box);
    drawSmallTrend(box, stageTrend(workflow, tile.dataset.stage));
  }
}

/// The stage's rate per group, one small chart each, for the groups with
/// the most in flight.
function drawGroupCharts(root, workflow, stage, groups) {
  const busiest = [...groups].sort((a, b) => b.counts.in_flight - a.counts.in_flight || a.group.localeCompare(b.group)).slice(0, GROUP_CHARTS);
  root.innerHTML = busiest
    .map((g) => `<section class="group-trend" data-group="${esc(g.group)}"><h3>${esc(g.group || "(no group)")} ${statusBadge(g.status)}</h3><div class="stage-chart"></div></section>`)
    .join("");
  root.querySelectorAll(".group-trend").forEach((section) =>
    drawSmallTrend(section.querySelector(".stage-chart"), stageTrend(workflow, stage, section.dataset.group))
  );
}

/// A small chart, and the latest anomaly in words under it (the stage
/// page lists them all).
function drawSmallTrend(box, loading) {
  loading
    .then((trend) => {
      drawTrend(box, trend, true);
      const latest = (trend.anomalies || []).slice(-1)[0];
      if (latest) box.insertAdjacentHTML("beforeend", `<p class="anomaly-note a-${esc(latest.kind)}">${anomalyText(latest)}</p>`);
    })
    .catch((error) => (box.innerHTML = `<p class="error">${esc(error.message)}</p>`));
}

function itemRow(workflow, item, receivedAt) {
  const d = item.deadline;
  const key = item.key.split("/").join(",");
  const waits = d ? `${esc(d.step)} by ${esc(clockTime(d.at))}` : "—";
  const flag = d && d.missing ? ` <b class="flag">MISSING</b>` : d && d.at_risk ? ` <b class="flag">AT RISK</b>` : "";
  const left = d ? `<span class="${d.time_left_ms < 0 ? "overdue" : "ahead"}">${countdown(d, receivedAt)}</span>${flag}` : "—";
  return `<tr data-key="${esc(item.key)}">
    <td>${itemLink(workflow, key)}</td><td>${esc(item.group) || "—"}</td>
    <td>${esc(clockTime(item.entered_at))}</td><td class="age" data-age-from="${receivedAt - item.age_ms}">${hms(item.age_ms)}</td>
    <td>${waits}</td><td>${left}</td></tr>`;
}

let stageLoad = null;
let stageLoadedAt = 0;

let stageLater = null;
let stageAgain = false;

// An update that comes too soon, or while the page loads, is deferred,
// never dropped: it may be the last one for a while (on the event clock
// nothing else moves), and the page would show the views before it.
async function renderStage(workflow, stage, what) {
  const again = () => renderStage(workflow, stage, "status").catch((e) => console.warn(e));
  if (stageLoad) {
    if (what === "status") stageAgain = true;
    return stageLoad;
  }
  const wait = stageLoadedAt + STAGE_EVERY_MS - Date.now();
  if (what === "status" && wait > 0) {
    if (!stageLater) stageLater = setTimeout(() => ((stageLater = null), again()), wait);
    return;
  }
  stageLoadedAt = Date.now();
  stageLoad = (async () => {
    const base = `/api/v1/workflows/${encodeURIComponent(workflow)}`;
    const [detail, items, trend, groups] = await Promise.all([
      api(base),
      api(`${base}/stages/${encodeURIComponent(stage)}/items?limit=200`),
      stageTrend(workflow, stage).catch(() => null),
      api(`${base}/groups?limit=200`).catch(() => ({ groups: [] })),
    ]);
    const s = detail.stages.find((x) => x.name === stage);
    const receivedAt = Date.now();
    const shown = items.items.length < items.in_stage ? `, the oldest ${items.items.length} shown` : "";
    const rows = items.items.map((item) => itemRow(workflow, item, receivedAt)).join("");
    view().innerHTML = `<p class="crumbs"><a href="/w/${encodeURIComponent(workflow)}">${esc(workflow)}</a> › stage</p>
      <h1>${esc(workflow)} › ${esc(stage)} ${statusBadge(s.status)}</h1>
      <div class="stage-top">
        <div class="stages stage-page">${stageTile(workflow, s, receivedAt)}</div>
        <section><h2>Entered per minute, last hour (dashed: baseline)</h2><div class="trend" id="stage-trend"></div></section>
      </div>
      <h2 id="waiting">Waiting in ${esc(stage)}, oldest first (${items.in_stage} in flight${shown})</h2>
      ${items.items.length
        ? `<table class="stage-items"><thead><tr><th>item</th><th>group</th><th>entered</th><th>age</th><th>waits for</th><th>time left</th></tr></thead><tbody>${rows}</tbody></table>`
        : `<p class="dim">Nothing is waiting in this stage.</p>`}
      ${groups.groups.length > 1 ? `<h2>Entered per minute by group${groups.groups.length > GROUP_CHARTS ? ` (the ${GROUP_CHARTS} with most in flight)` : ""}</h2><div class="group-trends" id="group-trends"></div>` : ""}`;
    applyBarHeights(view());
    drawTrend(document.getElementById("stage-trend"), trend, false);
    const groupTrends = document.getElementById("group-trends");
    if (groupTrends) drawGroupCharts(groupTrends, workflow, stage, groups.groups);
    tick();
  })().finally(() => {
    stageLoad = null;
    if (stageAgain) {
      stageAgain = false;
      again();
    }
  });
  return stageLoad;
}

function tickAges() {
  const now = Date.now();
  document.querySelectorAll("[data-age-from]").forEach((el) => (el.textContent = hms(now - Number(el.dataset.ageFrom))));
}

document.addEventListener("DOMContentLoaded", () => setInterval(tickAges, 1000));
