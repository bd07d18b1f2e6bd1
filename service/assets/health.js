// mon's own health, on every page: what keeps the service from seeing
// everything it should, said in a strip under the header, so that a
// wallboard never shows green over a monitor that is half blind.
//
// It reads `/readyz` (why the service is not ready: Kafka away, an input
// topic missing, partitions given to another process of the group),
// `/api/v1/status` (`split_keys`: an item's events on two partitions, a
// producer that does not key by item) and `/api/v1/group` (`failover`:
// no standby would take over) every few seconds. It only shows; it
// changes nothing, and it never asks for a sign-in (ui.js does).
//
// While mon is not ready, the page's own event stream may well be live,
// yet the board stands still because mon sees nothing: the body gets
// `data-monitoring="false"`, which greys the board and turns the header's
// "● live" into "● not monitoring" (ui.css), so that a blind mon is not
// read as a quiet one.
"use strict";

const HEALTH_EVERY_MS = 5000;

function healthText(value) {
  const span = document.createElement("span");
  span.textContent = value;
  return span;
}

function healthLine(kind, title, detail) {
  const line = document.createElement("p");
  line.className = "health-line " + kind;
  const word = document.createElement("strong");
  word.textContent = kind === "down" ? "✖ " + title : "▲ " + title;
  line.append(word, " ", healthText(detail));
  return line;
}

/// Says on the page whether mon monitors: see the header comment.
function showMonitoring(monitoring) {
  document.body.dataset.monitoring = monitoring ? "true" : "false";
}

async function readHealth() {
  const lines = [];
  let monitoring = true;
  try {
    // The readiness of the process that answers this page's API: through
    // a standby of a fail-over group, the active one's (docs/service.md).
    const ready = await fetch("/readyz", { headers: { "mon-readiness": "group" } });
    if (ready.status === 503) {
      monitoring = false;
      const body = await ready.json().catch(() => ({ reasons: [] }));
      for (const reason of body.reasons || []) lines.push(healthLine("down", "mon is not seeing everything:", reason));
    }
  } catch (error) {
    monitoring = false;
    lines.push(healthLine("down", "mon does not answer:", String(error.message || error)));
  }
  showMonitoring(monitoring);
  // Signed in or not: a 401 here only means no warning can be read yet.
  const token = typeof authHeaders === "function" ? authHeaders() : {};
  const status = await fetch("/api/v1/status", { headers: token }).catch(() => null);
  if (status && status.ok) {
    const body = await status.json().catch(() => ({}));
    const split = body.split_keys;
    if (split) {
      const last = split.last;
      // ui.js's clock format, as on every other page, when it is loaded.
      const at = typeof clockTime === "function" ? clockTime(last.at) : last.at;
      lines.push(
        healthLine(
          "warn",
          "A producer does not key its messages by item:",
          `${split.events} event(s) reached an item started on another partition; the latest, ` +
            `${last.workflow} ${last.key}, started on partition ${last.owner_partition} and had an event ` +
            `on partition ${last.seen_on_partition} at ${at}. Their order is not kept.`
        )
      );
    }
  }
  // 404 without Kafka: no group, nothing to say.
  const group = await fetch("/api/v1/group", { headers: token }).catch(() => null);
  if (group && group.ok) {
    const body = await group.json().catch(() => ({}));
    if (body.failover && body.failover.no_standby) {
      lines.push(
        healthLine(
          "warn",
          "No standby:",
          `no other process of the group ${body.group} is waiting to take over. If this one stops, ` +
            "monitoring stops until another one is started (mon run --failover)."
        )
      );
    }
  }
  const strip = document.getElementById("health");
  if (strip) strip.replaceChildren(...lines);
}

document.addEventListener("DOMContentLoaded", () => {
  readHealth();
  setInterval(readHealth, HEALTH_EVERY_MS);
});
