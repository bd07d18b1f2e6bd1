// The command center's one script. It reads everything through the public
// API (`/api/v1/...`) with the user's token, listens to `/api/v1/stream`
// for changes (no polling), and renders the view the path names:
//   /                      wallboard
//   /w/{w}                 map, stage tiles, groups, trend
//   /w/{w}/i/{key}         an item's lifecycle
//   /w/{w}/s/{stage}       a stage's items and trend (stage.js)
//   /alerts                every active alert
//   /events                event search (the latest events on open)
//   /rules                 rule editor, versions, activations, workflows
// (`/workflows/{w}` and `/items/{w}/{key}`, the first paths, still work.)
// It shows only the actions the caller's role may take (`/api/v1/whoami`);
// the API checks the role of every call all the same.
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
/// resolves when a token is entered. A 401's `details.oidc_issuer` says
/// the service also takes a JWT from that identity provider.
function needLogin(message, details) {
  if (!loginWaiters) {
    loginWaiters = [];
    const dialog = document.getElementById("login");
    document.getElementById("login-error").textContent = message || "";
    const issuer = details && details.oidc_issuer;
    const oidc = document.getElementById("login-oidc");
    if (issuer) {
      oidc.textContent = `This service also accepts a bearer JWT (an ID or access token) from the identity provider ${issuer} (OIDC): sign in there, or paste one as the token.`;
      oidc.hidden = false;
      identityProvider = { issuer, clientId: details.oidc_client_id };
      document.getElementById("login-oidc-redirect").hidden = !details.oidc_client_id;
    }
    dialog.showModal();
  }
  return new Promise((resolve) => loginWaiters.push(resolve));
}

function initLogin() {
  document.getElementById("login-oidc-button").addEventListener("click", () =>
    startOidcSignIn().catch((error) => (document.getElementById("login-error").textContent = error.message))
  );
  document.getElementById("login-form").addEventListener("submit", () => {
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("login-token").value.trim());
    const waiters = loginWaiters || [];
    loginWaiters = null;
    waiters.forEach((resolve) => resolve());
    // Another person may have signed in: another name and role.
    loadMe().then(() => render("all"));
  });
}

// ---- Signing in at the identity provider (OIDC, authorization code + PKCE) --
//
// The browser is a public client: no secret, a one-time PKCE verifier
// instead. The provider's addresses come from its discovery document;
// its client id for mon is the configured audience (both named by a
// 401). The verifier, the state and the page to come back to wait in
// sessionStorage while the provider has the tab.

const OIDC_KEY = "mon.oidc";
let identityProvider = null;

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(length) {
  return base64url(crypto.getRandomValues(new Uint8Array(length)));
}

function callbackAddress() {
  return location.origin + "/oidc/callback";
}

async function startOidcSignIn() {
  if (!identityProvider) throw new Error("this service names no identity provider");
  if (!window.crypto || !crypto.subtle) throw new Error("signing in at the identity provider needs HTTPS (or localhost); paste a token instead");
  const discovery = await fetch(identityProvider.issuer.replace(/\/$/, "") + "/.well-known/openid-configuration")
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`the identity provider's discovery document: ${r.status}`))));
  const verifier = randomText(32);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = randomText(16);
  sessionStorage.setItem(
    OIDC_KEY,
    JSON.stringify({ verifier, state, clientId: identityProvider.clientId, tokenEndpoint: discovery.token_endpoint, back: location.pathname + location.search })
  );
  const address = new URL(discovery.authorization_endpoint);
  const query = { response_type: "code", client_id: identityProvider.clientId, redirect_uri: callbackAddress(), scope: "openid profile email", state, code_challenge: challenge, code_challenge_method: "S256" };
  Object.entries(query).forEach(([name, value]) => address.searchParams.set(name, value));
  location.assign(address.toString());
}

/// `/oidc/callback?code=...&state=...`: the code and the verifier for
/// tokens; the access token when the API takes it, else the ID token
/// (whose audience is mon's client id); then back to the page the
/// sign-in started from.
async function finishOidcSignIn() {
  const params = new URLSearchParams(location.search);
  const pending = JSON.parse(sessionStorage.getItem(OIDC_KEY) || "null");
  sessionStorage.removeItem(OIDC_KEY);
  if (params.get("error")) throw new Error("the identity provider refused: " + (params.get("error_description") || params.get("error")));
  if (!pending || !params.get("state") || params.get("state") !== pending.state) throw new Error("this sign-in was not started from this tab (its state does not match)");
  const body = new URLSearchParams({ grant_type: "authorization_code", code: params.get("code") || "", redirect_uri: callbackAddress(), client_id: pending.clientId, code_verifier: pending.verifier });
  const response = await fetch(pending.tokenEndpoint, { method: "POST", body });
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error("the identity provider's token endpoint: " + (tokens.error_description || tokens.error || response.status));
  let refusal = "it gave no token";
  for (const token of [tokens.access_token, tokens.id_token].filter(Boolean)) {
    const check = await fetch("/api/v1/whoami", { headers: { Accept: "application/json", Authorization: "Bearer " + token } });
    if (check.ok) {
      sessionStorage.setItem(TOKEN_KEY, token);
      location.replace(pending.back || "/");
      return;
    }
    const answer = await check.json().catch(() => ({}));
    refusal = answer.error ? answer.error.message : String(check.status);
  }
  throw new Error("this service does not accept the identity provider's tokens: " + refusal);
}

// ---- Who is signed in, and what the role may do --------------------------

/// `GET /api/v1/whoami`: name, role, authentication (off, token, oidc).
/// Until it answers (or when it fails) the page shows no action at all.
let me = null;
const ROLES = ["viewer", "operator", "editor", "admin"];

/// Whether the signed-in role may do what `needed` allows (roles are
/// ordered: each may do what the lower ones may).
function can(needed) {
  return !!me && ROLES.indexOf(me.role) >= ROLES.indexOf(needed);
}

/// Why `whoami` failed (a JWT whose claims give no mon role is a 403).
let meError = "";

async function loadMe() {
  try {
    me = await api("/api/v1/whoami");
    meError = "";
  } catch (error) {
    me = null;
    meError = error.message;
  }
  renderWho();
}

function renderWho() {
  const who = document.getElementById("who");
  if (!me) {
    who.innerHTML = meError ? `<span class="error">${esc(meError)}</span> <button type="button" id="sign-out">Sign out</button>` : "";
    if (meError) document.getElementById("sign-out").addEventListener("click", signOut);
    return;
  }
  if (me.authentication === "off") {
    who.innerHTML = `<span><span class="who-name">anonymous</span> · <span class="who-role">${esc(me.role)}</span> (auth off)</span>`;
    return;
  }
  const via = me.authentication === "oidc" ? "OIDC" : "token";
  who.innerHTML = `<span title="signed in with a ${via}"><span class="who-name">${esc(me.name)}</span> · <span class="who-role">${esc(me.role)}</span></span>
    <button type="button" id="sign-out">Sign out</button>`;
  document.getElementById("sign-out").addEventListener("click", signOut);
}

/// Forgets the token; the reload's first call asks for another.
function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

/// The answer's JSON; a 401 asks for a token and retries; any other error
/// throws the API's error message.
async function api(path, options = {}) {
  for (;;) {
    const headers = Object.assign({ Accept: "application/json" }, authHeaders(), options.headers || {});
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      // A first visit sent no token: nothing was refused, nothing to say.
      const refusal = headers.Authorization && body.error ? body.error.message : "";
      await needLogin(refusal, body.error ? body.error.details : null);
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
  disabled: { word: "DISABLED", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><circle cx="10" cy="10" r="9" fill="currentColor"/><path d="M7.5 5.5v9M12.5 5.5v9" stroke="#0b0e13" stroke-width="2.6"/></svg>' },
  red: { word: "BREACHED", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><polygon points="6,1 14,1 19,6 19,14 14,19 6,19 1,14 1,6" fill="currentColor"/><path d="M6.5 6.5l7 7M13.5 6.5l-7 7" stroke="#0b0e13" stroke-width="2.6"/></svg>' },
  amber: { word: "AT RISK", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><polygon points="10,1 19,18 1,18" fill="currentColor"/><path d="M10 7v5M10 14v2" stroke="#0b0e13" stroke-width="2.4"/></svg>' },
  green: { word: "OK", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><circle cx="10" cy="10" r="9" fill="currentColor"/><path d="M5.5 10.5l3 3 6-7" fill="none" stroke="#0b0e13" stroke-width="2.6"/></svg>' },
  idle: { word: "IDLE", icon: '<svg viewBox="0 0 20 20" aria-hidden="true"><circle cx="10" cy="10" r="8" fill="none" stroke="currentColor" stroke-width="3"/></svg>' },
};
const RANK = { red: 0, amber: 1, green: 2, idle: 3, disabled: 4 };

/// Grey "DISABLED" for a workflow switched off (it takes no events and
/// fires no deadline, so its counts say nothing: never OK); grey "IDLE"
/// when green with nothing in flight and nothing expected.
function effectiveStatus(w) {
  if (w.enabled === false) return "disabled";
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

/// On the strip: open, acknowledged, and suppressed (so that nobody
/// wonders where a silenced alert went); resolved ones leave it.
function activeAlert(alert) {
  return alert.state === "open" || alert.state === "acknowledged" || alert.state === "suppressed";
}

function applyAlerts(alerts) {
  const now = Date.now();
  for (const alert of alerts) {
    alert._received = now;
    const before = state.alerts.get(alert.id);
    if (!alert.history && before && before.history && before.state === alert.state) alert.history = before.history;
    // Back in a state it was in before (acknowledged again): who did it
    // this time is a new question.
    if (before && before.state !== alert.state) historyAsked.delete(alert.id + " " + alert.state);
    if (activeAlert(alert)) state.alerts.set(alert.id, alert);
    else state.alerts.delete(alert.id);
    if ((alert.state === "acknowledged" || alert.state === "suppressed") && !alert.history) fetchHistory(alert.id, alert.state);
  }
}

/// The list does not say who acknowledged or suppressed: the alert's
/// detail does. One request per alert and state, not per update.
const historyAsked = new Set();
function fetchHistory(id, alertState) {
  const asked = id + " " + alertState;
  if (historyAsked.has(asked)) return;
  historyAsked.add(asked);
  api(`/api/v1/alerts/${encodeURIComponent(id)}`)
    .then((detail) => {
      const current = state.alerts.get(id);
      if (current && detail.history) {
        current.history = detail.history;
        changed("alert");
      }
    })
    .catch(() => historyAsked.delete(asked));
}

async function loadAll() {
  const [list, alerts] = await Promise.all([
    api("/api/v1/workflows"),
    api("/api/v1/alerts?state=open,acknowledged,suppressed&limit=1000"),
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
        const body = await response.json().catch(() => ({}));
        await needLogin("", body.error ? body.error.details : null);
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
const ALERT_STATE_RANK = { open: 0, acknowledged: 1, suppressed: 2 };

function sortedAlerts() {
  return [...state.alerts.values()].sort(
    (a, b) =>
      (ALERT_STATE_RANK[a.state] ?? 9) - (ALERT_STATE_RANK[b.state] ?? 9) ||
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
  return `<a class="item-link" href="${itemPath(workflow, text)}">${esc(text)}</a>`;
}

function workflowPath(workflow) {
  return `/w/${encodeURIComponent(workflow)}`;
}

function itemPath(workflow, key) {
  return `${workflowPath(workflow)}/i/${encodeURIComponent(key)}`;
}

/// Who did the last `what` to an alert, with the reason they gave.
function lastBy(alert, what) {
  const history = alert.history || [];
  const line = [...history].reverse().find((h) => h.what === what);
  return line && line.by ? line.by + (line.reason ? ` (“${line.reason}”)` : "") : "";
}

function lastAck(alert) {
  return lastBy(alert, "acknowledged");
}

/// "suppressed until 14:35 UTC by ann (“maintenance”)".
function suppressedText(alert) {
  const until = alert.suppressed_until ? "until " + clockTime(alert.suppressed_until).replace(/:\d\d UTC$/, " UTC") : "until resolved";
  const by = lastBy(alert, "suppressed");
  return `suppressed ${until}${by ? " by " + by : ""}`;
}

/// The commands an operator may give an alert in its state.
const ALERT_ACTIONS = {
  open: [["ack", "Ack"], ["suppress", "Suppress"], ["resolve", "Resolve"]],
  acknowledged: [["unack", "Unack"], ["resolve", "Resolve"]],
  suppressed: [["resolve", "Resolve"]],
};

function alertRow(alert) {
  const runbook = alert.runbook ? `<a href="${esc(alert.runbook)}" target="_blank" rel="noopener">runbook</a>` : "";
  let said = "";
  if (alert.state === "acknowledged") said = `acknowledged${lastAck(alert) ? " by " + lastAck(alert) : ""}`;
  else if (alert.state === "suppressed") said = suppressedText(alert);
  const buttons = can("operator")
    ? (ALERT_ACTIONS[alert.state] || [])
        .map(([action, label]) => `<button type="button" class="${action}" data-action="${action}" data-alert="${esc(alert.id)}">${label}</button>`)
        .join("\n")
    : "";
  const actions = `${said ? `<span class="dim said">${esc(said)}</span>` : ""}${buttons}`;
  return `<div class="alert ${esc(alert.state)}" data-alert-id="${esc(alert.id)}" data-workflow="${esc(alert.workflow)}">
    <span class="sev">${esc(alert.severity)}</span>
    <span><a href="${workflowPath(alert.workflow)}">${esc(alert.workflow)}</a> · ${esc(alert.step)} · ${esc(alert.kind)}</span>
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

const ACTION_WORD = { ack: "Acknowledge", unack: "Take back the ack", suppress: "Suppress", resolve: "Resolve" };

/// Ack, Unack, Suppress and Resolve open an inline form for the reason
/// (and the name the alert's history records: the signed-in name when
/// auth is on), then post the command.
function initAlertActions() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest(".alert button[data-action]");
    if (!button) return;
    const row = button.closest(".alert");
    const action = button.dataset.action;
    const suppress = action === "suppress";
    const actions = row.querySelector(".actions");
    const name = me && me.authentication !== "off" ? me.name : sessionStorage.getItem(NAME_KEY) || "";
    actions.innerHTML = `<form class="alert-form" data-action="${action}">
      <input name="by" placeholder="your name" required value="${esc(name)}">
      <input name="reason" placeholder="reason" required>
      ${suppress ? `<select name="for"><option value="900000">15 min</option><option value="3600000">1 hour</option><option value="14400000">4 hours</option><option value="">until resolved</option></select>` : ""}
      <button type="submit">${ACTION_WORD[action]}</button>
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
        const alert = await post(`/api/v1/alerts/${encodeURIComponent(row.dataset.alertId)}/${action}`, body);
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
    return `<a class="tile s-${status}${pulsing ? " pulse" : ""}" href="${workflowPath(w.name)}" data-workflow="${esc(w.name)}" data-status="${status}">
      <div class="tile-head"><span class="name">${breakable(w.name)}</span>${statusBadge(status)}</div>
      <div class="counts">
        <div class="count"><b>${c.in_flight}</b><span>in flight</span></div>
        <div class="count"><b>${c.late}</b><span>late</span></div>
        <div class="count"><b>${c.missing}</b><span>missing</span></div>
        <div class="count"><b>${c.failed}</b><span>failed</span></div>
      </div>
      ${w.reason ? `<div class="reason">${esc(w.reason)}</div>` : ""}
      ${w.worst_stage ? `<div class="worst">worst stage: <b>${esc(w.worst_stage)}</b></div>` : ""}
      ${w.next_deadline && status !== "disabled" ? `<div class="deadline">${deadlineLine(w.next_deadline, state.workflowsAt)}</div>` : ""}
      ${status === "disabled" ? `<div class="acked">switched off on the rules page: takes no events, fires no deadline</div>` : ""}
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
    const status = detail.enabled === false ? "disabled" : detail.status;
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
    <p><a href="${workflowPath(workflow)}">← ${esc(workflow)}</a></p>
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
  // No filter is a search too: the latest events, newest first.
  search(params);
}

const EVENTS_PAGE = 50;

/// One page of events, newest first; "Older events" appends the next page
/// (the API's cursor), so the rows already read stay where they are.
async function search(query, cursor) {
  const results = document.getElementById("results");
  const params = new URLSearchParams(query);
  params.set("limit", String(EVENTS_PAGE));
  if (cursor) params.set("cursor", cursor);
  try {
    const page = await api("/api/v1/events?" + params);
    const rows = page.events
      .map(
        (e) => `<tr><td>${esc(clockTime(e.time))}</td><td>${esc(e.type)}${e.rejected ? ` <span class="error">rejected: ${esc(e.reason)}</span>` : ""}</td>
        <td>${(e.items || []).map((i) => itemLink(i.workflow, i.key)).join(" ")}</td><td class="mono">${esc(JSON.stringify(e.data))}</td></tr>`
      )
      .join("");
    if (!cursor) {
      const filtered = [...new URLSearchParams(query)].length > 0;
      const title = filtered ? "Matching events, newest first" : "The latest events, newest first";
      results.innerHTML = page.events.length
        ? `<h2>${title}</h2><table class="events"><thead><tr><th>time</th><th>type</th><th>items</th><th>data</th></tr></thead><tbody></tbody></table><p id="older"></p>`
        : `<p class="dim">${filtered ? "No event matches." : "No event is stored yet."}</p>`;
    }
    const body = results.querySelector("table.events tbody");
    if (body) body.insertAdjacentHTML("beforeend", rows);
    const older = document.getElementById("older");
    if (older) {
      older.innerHTML = page.next_cursor ? `<button type="button" id="older-events">Older events</button>` : `<span class="dim">No older event.</span>`;
      const button = document.getElementById("older-events");
      if (button) button.addEventListener("click", () => search(query, page.next_cursor));
    }
  } catch (error) {
    results.innerHTML = `<p class="error">${esc(error.message)}</p>`;
  }
}

// -- Rule editor ------------------------------------------------------------

/// What the last change made on this page did, shown above the editor
/// however often the page is redrawn.
let rulesNotice = "";

/// The active version's files in an editor: diagnostics from the compiler
/// (`POST /api/v1/rules/validate`) as you type, then store the edit as a
/// version, dry-run it (over pasted events or the stored history), diff it
/// against the active version, and activate it; roll back to the version
/// that ran before; the activations (who, when, from which version to
/// which); each workflow's state, with enable and disable. Every change
/// needs the editor role (validation too): a lower role sees the rules
/// read-only, without the forms.
async function renderRules() {
  const [page, activations] = await Promise.all([
    api("/api/v1/rules/versions?limit=20"),
    api("/api/v1/rules/activations?limit=20").catch(() => ({ activations: [] })),
  ]);
  const versions = page.versions || [];
  const active = page.active;
  if (active == null) {
    view().innerHTML = `<h1>Rules</h1><p class="dim">No version is active.</p>`;
    return;
  }
  const editor = can("editor");
  const detail = await api(`/api/v1/rules/versions/${active}`);
  const files = Object.assign({}, detail.sources);
  const ruleFiles = Object.keys(files).filter((path) => path.endsWith(".mon"));
  const log = versions
    .map((v) => `<tr><td>${v.version}${v.version === active ? " (active)" : ""}</td><td>${esc(v.author)}</td><td>${esc(v.message)}</td><td>${esc(clockTime(v.created_at))}</td></tr>`)
    .join("");
  const history = (activations.activations || [])
    .map((a) => `<tr><td>${a.previous == null ? "—" : a.previous} → ${a.version}</td><td>${esc(a.by)}</td><td>${esc(clockTime(a.at))}</td></tr>`)
    .join("");
  // A rollback goes to the version that ran before the active one.
  const latest = (activations.activations || [])[0];
  const previous = latest && latest.version === active ? latest.previous : null;
  const rollback =
    editor && previous != null
      ? `<form id="rollback" class="search"><label>Message <input name="message" required placeholder="why roll back"></label>
          <button type="submit">Roll back to version ${previous}</button></form><div id="rolled-back"></div>`
      : "";
  view().innerHTML = `<h1>Rules</h1>
    <p>${editor ? "Editing" : "Reading"} version ${active} (active).
      <label>File <select id="rule-file">${ruleFiles.map((f) => `<option>${esc(f)}</option>`).join("")}</select></label>
      ${editor ? "" : `<span class="dim" id="read-only">Read-only: changing rules needs the editor role; you are ${esc(me ? me.role : "not signed in")}.</span>`}</p>
    ${rollback}
    ${rulesNotice ? `<p class="verdict-met" id="rolled-back-to">${esc(rulesNotice)}</p>` : ""}
    <textarea id="rule-text" class="editor" spellcheck="false" rows="24"${editor ? "" : " readonly"}></textarea>
    ${editor ? `<div id="diagnostics" class="diagnostics" aria-live="polite"></div>
    <form id="rule-store" class="search">
      <label>Message <input name="message" required placeholder="why this change"></label>
      <button type="submit">Store as a new version</button>
    </form>
    <div id="stored"></div>` : ""}
    <h2>Workflows</h2><div id="switches">${workflowSwitches(editor)}</div>
    <h2>Activations</h2><table class="activations"><thead><tr><th>from → to</th><th>by</th><th>at</th></tr></thead><tbody>${history}</tbody></table>
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
  initSwitches();
  if (rollback) {
    document.getElementById("rollback").addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = document.getElementById("rolled-back");
      try {
        const done = await post("/api/v1/rules/rollback", { message: event.target.message.value });
        rulesNotice = `Rolled back: version ${done.version} is active (was ${done.previous}).`;
        await renderRules();
      } catch (error) {
        out.innerHTML = `<p class="error">${esc(error.message)}</p>`;
      }
    });
  }
  if (!editor) return;
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

/// Each workflow with its state (from the streamed list) and, for an
/// editor, the switch that turns it the other way, with a reason.
function workflowSwitches(editor) {
  const workflows = (state.workflows && state.workflows.workflows) || [];
  const rows = workflows.map((w) => {
    const on = w.enabled !== false;
    const word = on ? `<span class="verdict-met">enabled</span>` : `<span class="status s-disabled">${STATUS.disabled.icon}<span>DISABLED</span></span>`;
    const form = editor
      ? `<form class="switch" data-workflow="${esc(w.name)}" data-enable="${!on}"><input name="reason" placeholder="reason" aria-label="reason">
          <button type="submit">${on ? "Disable" : "Enable"}</button><span class="error"></span></form>`
      : "";
    return `<tr data-workflow="${esc(w.name)}" data-enabled="${on}"><td><a href="${workflowPath(w.name)}">${esc(w.name)}</a></td><td>${word}</td><td>${form}</td></tr>`;
  });
  return `<table class="switches"><thead><tr><th>workflow</th><th>state</th><th></th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/// Another person may switch a workflow: the streamed list redraws the
/// switches, unless a reason is being typed into one.
function refreshSwitches() {
  const box = document.getElementById("switches");
  if (!box || [...box.querySelectorAll("input")].some((input) => input.value || input === document.activeElement)) return;
  const html = workflowSwitches(can("editor"));
  if (html === box.dataset.drawn) return;
  box.innerHTML = html;
  box.dataset.drawn = html;
  initSwitches();
}

function initSwitches() {
  document.querySelectorAll("form.switch").forEach((form) =>
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const workflow = form.dataset.workflow;
      const verb = form.dataset.enable === "true" ? "enable" : "disable";
      try {
        const done = await post(`/api/v1/workflows/${encodeURIComponent(workflow)}/${verb}`, { reason: form.reason.value.trim() });
        // The stream will say so too; the answer is already the truth.
        const line = state.workflows && state.workflows.workflows.find((w) => w.name === workflow);
        if (line) line.enabled = done.enabled;
        document.getElementById("switches").innerHTML = workflowSwitches(true);
        initSwitches();
      } catch (error) {
        form.querySelector(".error").textContent = error.message;
      }
    })
  );
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
/// pasted events or over the stored history (the event store: `{}` with
/// no `events`), and activation.
async function showStored(box, version, active) {
  const diff = await api(`/api/v1/rules/versions/${version}/diff?against=${active}`).catch((error) => ({ error }));
  const source = diff.error
    ? `<p class="error">${esc(diff.error.message)}</p>`
    : diff.source.map((f) => `<h3>${esc(f.path)} (${esc(f.status)})</h3><pre class="payload diff">${esc(f.diff)}</pre>`).join("") || "<p>No change to the sources.</p>";
  box.innerHTML = `<h2>Version ${version}</h2><h3>Diff against version ${active}</h3>${source}
    <form id="dry-run" class="search"><label>Events (NDJSON) <textarea name="events" rows="5" cols="80" required></textarea></label>
      <button type="submit">Dry-run these events</button>
      <button type="button" id="dry-run-history">Dry-run over the stored history</button></form><div id="dry-run-result"></div>
    <form id="activate" class="search"><label>Message <input name="message" required></label><button type="submit">Activate version ${version}</button></form>
    <div id="activated"></div>`;
  const dryRun = async (events) => {
    const out = document.getElementById("dry-run-result");
    out.innerHTML = `<p class="dim">Replaying…</p>`;
    const body = { notifications: true, against: active };
    if (events != null) body.events = events;
    try {
      const result = await post(`/api/v1/rules/versions/${version}/dry-run`, body);
      const records = result.records.map((r) => `<li class="mono">${esc(JSON.stringify(r))}</li>`).join("");
      const compared = result.compared ? `<p>${result.compared.only_in_version.length} records only with version ${version}, ${result.compared.only_in_against.length} only with version ${active}.</p>` : "";
      const source = result.source === "history"
        ? `Over the stored history${result.truncated ? " (the newest events only: older ones were left out)" : ""}: `
        : "Over the pasted events: ";
      out.innerHTML = `<p>${source}${result.lines} lines, ${result.rejected} rejected, ${result.records.length} records, ${result.notifications.length} notifications.</p>${compared}<ul class="records">${records}</ul>`;
    } catch (error) {
      out.innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  };
  document.getElementById("dry-run").addEventListener("submit", (event) => {
    event.preventDefault();
    dryRun(event.target.events.value);
  });
  document.getElementById("dry-run-history").addEventListener("click", () => dryRun(null));
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
  if (parts[0] === "w" && parts.length === 2) return { name: "workflow", workflow: parts[1] };
  if (parts[0] === "w" && parts.length === 4 && parts[2] === "i") return { name: "item", workflow: parts[1], key: parts[3] };
  // The first slice's paths.
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
  else if (r.name === "rules" && what === "status") refreshSwitches();
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
  if (location.pathname === "/oidc/callback") {
    finishOidcSignIn().catch(
      (error) => (view().innerHTML = `<p class="error">${esc(error.message)}</p><p><a href="/">Sign in again</a></p>`)
    );
    return;
  }
  onChange(render);
  // Who first: the page draws actions only for a role that may take them.
  loadMe()
    .then(loadAll)
    .catch((error) => (view().innerHTML = `<p class="error">${esc(error.message)}</p>`))
    .then(listen);
  setInterval(tick, 1000);
});
