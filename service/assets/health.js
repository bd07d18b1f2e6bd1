// mon's own health, on every page: what keeps the service from seeing
// everything it should, said in a strip under the header, so that a
// wallboard never shows green over a monitor that is half blind.
//
// It reads `/readyz` (why the service is not ready: Kafka away, an input
// topic missing, partitions given to another process of the group) and
// `/api/v1/status` (`split_keys`: an item's events on two partitions, a
// producer that does not key by item) every few seconds. It only shows;
// it changes nothing, and it never asks for a sign-in (ui.js does).
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

async function readHealth() {
  const lines = [];
  try {
    const ready = await fetch("/readyz");
    if (ready.status === 503) {
      const body = await ready.json().catch(() => ({ reasons: [] }));
      for (const reason of body.reasons || []) lines.push(healthLine("down", "mon is not seeing everything:", reason));
    }
  } catch (error) {
    lines.push(healthLine("down", "mon does not answer:", String(error.message || error)));
  }
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
  const strip = document.getElementById("health");
  if (strip) strip.replaceChildren(...lines);
}

document.addEventListener("DOMContentLoaded", () => {
  readHealth();
  setInterval(readHealth, HEALTH_EVERY_MS);
});
