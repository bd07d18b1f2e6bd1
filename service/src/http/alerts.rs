//! The alert API: list and read alerts, act on them (ack, unack, suppress,
//! resolve), and see the notification outbox. Reads come from the view the
//! processing thread publishes ([`AlertsView`]) and from sled; a command
//! goes through the processing thread's input channel, is journaled as an
//! [`Input::Command`](mon_runtime::live::Input::Command) like an event, and
//! is answered once its batch is durable.
//!
//! Every error of these endpoints has one shape:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`, where
//! `details.field` names the parameter or body field at fault for a 400.

use std::sync::mpsc::TrySendError;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mon_compiler::ir::Severity;
use mon_runtime::alerts::{Action, Alert, AlertState, CommandError};
use serde_json::{json, Map, Value};

use super::Api;
use crate::clock::wall_now;
use crate::processor::{CommandRequest, Request};
use crate::store::{DeliveryState, NotificationEntry};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The one error shape of the alert API.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>, details: Value) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message.into(), "details": details } }))).into_response()
}

/// A 400, naming the parameter or field at fault.
struct Invalid {
    field: String,
    message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid { field: field.to_string(), message: message.into() }
}

impl IntoResponse for Invalid {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, "invalid_request", self.message, json!({ "field": self.field }))
    }
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", format!("no alert has the id {id}"), json!({ "id": id }))
}

fn rfc3339(ms: i64) -> String {
    mon_stdlib::time::format_rfc3339(ms)
}

/// What one alert looks like in the API: times as RFC 3339, plus
/// `since_breach_ms` (now − the deadline, or − the opening when it has no
/// deadline); with `history` for the detail view.
fn alert_json(alert: &Alert, now: i64, history: bool) -> Value {
    let breach = alert.deadline.unwrap_or(alert.opened_at);
    let mut value = json!({
        "id": alert.id,
        "workflow": alert.workflow,
        "step": alert.step,
        "kind": alert.kind.name(),
        "key": alert.key,
        "group": alert.group,
        "severity": alert.severity.name(),
        "state": alert.state.name(),
        "opened_at": rfc3339(alert.opened_at),
        "deadline": alert.deadline.map(rfc3339),
        "since_breach_ms": now.saturating_sub(breach),
        "repeats": alert.repeats,
        "runbook": alert.runbook,
        "suppressed_until": alert.suppressed_until.map(rfc3339),
        "resolved_at": alert.resolved_at.map(rfc3339),
        "resolution": alert.resolution,
        "program_hash": alert.program_hash,
        "excerpt": alert.excerpt,
    });
    if history {
        let entries: Vec<Value> = alert
            .history
            .iter()
            .map(|e| {
                let mut entry = Map::new();
                entry.insert("at".into(), json!(rfc3339(e.at)));
                entry.insert("what".into(), json!(e.what));
                for (name, field) in
                    [("by", &e.by), ("reason", &e.reason), ("channel", &e.channel), ("notification", &e.notification)]
                {
                    if let Some(text) = field {
                        entry.insert(name.into(), json!(text));
                    }
                }
                Value::Object(entry)
            })
            .collect();
        value["history"] = Value::Array(entries);
    }
    value
}

/// A notification with its delivery state, for the alert detail and
/// `/api/v1/notifications`.
fn notification_json(state: DeliveryState, entry: &NotificationEntry) -> Value {
    let n = &entry.notification;
    json!({
        "id": n.id,
        "channel": n.channel,
        "event": n.event.name(),
        "group_key": n.group_key,
        "workflow": n.workflow,
        "step": n.step,
        "kind": n.kind.name(),
        "severity": n.severity.name(),
        "summary": n.summary,
        "alerts": n.alerts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        "at": rfc3339(n.at),
        "state": state.name(),
        "queued_at": rfc3339(entry.queued_at),
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "last_attempt_at": entry.last_attempt_at.map(rfc3339),
        "next_attempt_at": entry.next_attempt_at.map(rfc3339),
        "sent_at": entry.done_at.filter(|_| state == DeliveryState::Sent).map(rfc3339),
        "failed_at": entry.done_at.filter(|_| state == DeliveryState::Failed).map(rfc3339),
    })
}

/// The alert with its history and the delivery state of each notification
/// its history names.
fn detail(api: &Api, alert: &Alert, now: i64) -> Response {
    let mut value = alert_json(alert, now, true);
    let mut deliveries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in alert.history.iter().filter_map(|e| e.notification.as_deref()) {
        if !seen.insert(id) {
            continue;
        }
        match api.store.notification(id) {
            Ok(Some((state, entry))) => deliveries.push(notification_json(state, &entry)),
            // Trimmed from the sent log, or never written (alerting's
            // history outlives the log's limit).
            Ok(None) => deliveries.push(json!({ "id": id, "state": "unknown" })),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string(), Value::Null),
        }
    }
    value["notifications"] = Value::Array(deliveries);
    Json(value).into_response()
}

/// "Now" for `since_breach_ms`: the wall clock, or the engine's clock on
/// the event clock.
fn now_of(view: &crate::processor::AlertsView) -> i64 {
    view.event_clock.unwrap_or_else(wall_now)
}

/// The filters of `GET /api/v1/alerts`.
#[derive(Default)]
struct Filter {
    states: Vec<AlertState>,
    workflows: Vec<String>,
    severities: Vec<Severity>,
    group: Vec<(String, String)>,
    key: Vec<(Option<String>, String)>,
    limit: Option<usize>,
    cursor: Option<(i64, String)>,
}

impl Filter {
    fn parse(pairs: Vec<(String, String)>) -> Result<Filter, Invalid> {
        let mut filter = Filter::default();
        for (name, value) in pairs {
            match name.as_str() {
                "state" => {
                    for word in value.split(',') {
                        let state = [AlertState::Open, AlertState::Acknowledged, AlertState::Suppressed, AlertState::Resolved]
                            .into_iter()
                            .find(|s| s.name() == word)
                            .ok_or_else(|| {
                                invalid("state", format!("state: unknown `{word}`; expected open, acknowledged, suppressed or resolved"))
                            })?;
                        filter.states.push(state);
                    }
                }
                "workflow" => filter.workflows.extend(value.split(',').map(str::to_string)),
                "severity" => {
                    for word in value.split(',') {
                        let severity =
                            Severity::ALL.iter().find(|(w, _)| *w == word).map(|(_, s)| *s).ok_or_else(|| {
                                let known: Vec<&str> = Severity::ALL.iter().map(|(w, _)| *w).collect();
                                invalid("severity", format!("severity: unknown `{word}`; expected one of {}", known.join(", ")))
                            })?;
                        filter.severities.push(severity);
                    }
                }
                "group" => {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or_else(|| invalid("group", format!("group: `{value}` is not NAME=VALUE")))?;
                    filter.group.push((k.to_string(), v.to_string()));
                }
                "key" => match value.split_once('=') {
                    Some((k, v)) => filter.key.push((Some(k.to_string()), v.to_string())),
                    None => filter.key.push((None, value)),
                },
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => filter.limit = Some(n),
                    _ => return Err(invalid("limit", format!("limit: `{value}` is not a number from 1 to {MAX_LIMIT}"))),
                },
                "cursor" => {
                    filter.cursor = Some(
                        decode_cursor(&value)
                            .ok_or_else(|| invalid("cursor", "cursor: not a cursor this API gave (take `next_cursor` as it is)"))?,
                    );
                }
                other => {
                    return Err(invalid(
                        other,
                        format!("unknown parameter `{other}`; the parameters are state, workflow, severity, group, key, limit, cursor"),
                    ))
                }
            }
        }
        Ok(filter)
    }

    fn accepts(&self, alert: &Alert) -> bool {
        (self.states.is_empty() || self.states.contains(&alert.state))
            && (self.workflows.is_empty() || self.workflows.contains(&alert.workflow))
            && (self.severities.is_empty() || self.severities.contains(&alert.severity))
            && self.group.iter().all(|(k, v)| alert.group.get(k) == Some(v))
            && self.key.iter().all(|(k, v)| match k {
                Some(k) => alert.key.get(k) == Some(v),
                None => alert.key.values().any(|value| value == v),
            })
    }
}

/// The cursor is the position of the last alert given, `opened_at` and id,
/// hex-encoded: opaque to clients, and stable while alerts come and go
/// (newer alerts never shift a page that was already given).
fn encode_cursor(alert: &Alert) -> String {
    format!("{}:{}", alert.opened_at, alert.id).bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(text: &str) -> Option<(i64, String)> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.to_string()))
}

/// `GET /api/v1/alerts`: newest first, filtered, a page at a time.
pub async fn list(State(api): State<Api>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let filter = match Filter::parse(pairs) {
        Ok(filter) => filter,
        Err(invalid) => return invalid.into_response(),
    };
    let Ok(view) = api.alerts.read() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the alert view is unavailable", Value::Null);
    };
    let now = now_of(&view);
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    // The view is sorted by (opened_at, id), newest first: a page starts
    // after the cursor's position.
    let after = |a: &Alert| match &filter.cursor {
        Some((at, id)) => (a.opened_at, a.id.as_str()) < (*at, id.as_str()),
        None => true,
    };
    let mut matching = view.alerts.iter().filter(|a| after(a) && filter.accepts(a));
    let page: Vec<&Alert> = matching.by_ref().take(limit).collect();
    let next_cursor = match (page.last(), matching.next()) {
        (Some(last), Some(_)) => Some(encode_cursor(last)),
        _ => None,
    };
    let alerts: Vec<Value> = page.iter().map(|a| alert_json(a, now, false)).collect();
    Json(json!({ "alerts": alerts, "next_cursor": next_cursor })).into_response()
}

/// `GET /api/v1/alerts/{id}`: the alert, its history, its notifications.
pub async fn get(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let found = api.alerts.read().ok().and_then(|view| {
        let now = now_of(&view);
        view.alerts.iter().find(|a| a.id == id).cloned().map(|a| (a, now))
    });
    match found {
        Some((alert, now)) => detail(&api, &alert, now),
        None => not_found(&id),
    }
}

/// The body of a command: `{"by": "...", "reason": "...", "until": "RFC 3339"}`.
fn parse_command(action: &str, body: &[u8]) -> Result<(Action, String, Option<String>), Invalid> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| invalid("body", format!("the body is not JSON: {e}")))?
    };
    let Value::Object(fields) = value else {
        return Err(invalid("body", "the body must be a JSON object such as {\"by\": \"alice\"}"));
    };
    for name in fields.keys() {
        if !matches!(name.as_str(), "by" | "reason" | "until") {
            return Err(invalid(name, format!("unknown field `{name}`; the fields are by, reason, until")));
        }
    }
    let by = match fields.get("by") {
        Some(Value::String(by)) if !by.trim().is_empty() => by.clone(),
        Some(Value::String(_)) => return Err(invalid("by", "by: empty; say who does it")),
        Some(_) => return Err(invalid("by", "by: must be a string")),
        None => return Err(invalid("by", "by: missing; say who does it")),
    };
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => Some(reason.clone()),
        Some(_) => return Err(invalid("reason", "reason: must be a string")),
    };
    let until = match fields.get("until") {
        None | Some(Value::Null) => None,
        Some(_) if action != "suppress" => {
            return Err(invalid("until", format!("until: only `suppress` takes it, not `{action}`")))
        }
        Some(Value::String(text)) => Some(
            mon_stdlib::time::parse_rfc3339(text)
                .ok_or_else(|| invalid("until", format!("until: `{text}` is not an RFC 3339 instant")))?,
        ),
        Some(_) => return Err(invalid("until", "until: must be an RFC 3339 string")),
    };
    let action = match action {
        "ack" => Action::Ack,
        "unack" => Action::Unack,
        "suppress" => Action::Suppress { until },
        "resolve" => Action::Resolve,
        other => return Err(invalid("action", format!("no action `{other}`"))),
    };
    Ok((action, by, reason))
}

/// `POST /api/v1/alerts/{id}/{action}`: answers with the alert as the
/// command left it, once the command is journaled and its batch written.
pub async fn command(State(api): State<Api>, Path((id, action)): Path<(String, String)>, body: Bytes) -> Response {
    if !matches!(action.as_str(), "ack" | "unack" | "suppress" | "resolve") {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no action `{action}`; the actions are ack, unack, suppress, resolve"),
            json!({ "action": action }),
        );
    }
    let (action, by, reason) = match parse_command(&action, &body) {
        Ok(parsed) => parsed,
        Err(invalid) => return invalid.into_response(),
    };
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let request = Request::Command(CommandRequest { alert: id.clone(), action, by, reason, reply });
    match api.ingest.try_send(request) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "busy", "busy; retry", Value::Null);
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return response;
        }
        Err(TrySendError::Disconnected(_)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "shutting down", Value::Null)
        }
    }
    let now_view = api.alerts.read().ok().map(|v| now_of(&v)).unwrap_or_else(wall_now);
    match outcome.await {
        Ok(Ok(alert)) => detail(&api, &alert, now_view),
        Ok(Err(CommandError::NotFound(_))) => not_found(&id),
        Ok(Err(CommandError::Conflict(why))) => error(StatusCode::CONFLICT, "conflict", why, json!({ "id": id })),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "shutting down; the command was not applied",
            Value::Null,
        ),
    }
}

/// `GET /api/v1/notifications?state=pending|failed&limit=N`: pending ones
/// oldest first (the order they go out in), failed ones newest first, with
/// their attempts and last error.
pub async fn notifications(State(api): State<Api>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let mut failed = false;
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in pairs {
        match name.as_str() {
            "state" => match value.as_str() {
                "pending" => failed = false,
                "failed" => failed = true,
                _ => {
                    return invalid("state", format!("state: unknown `{value}`; expected pending or failed"))
                        .into_response()
                }
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return invalid("limit", format!("limit: `{value}` is not a number from 1 to {MAX_LIMIT}"))
                        .into_response()
                }
            },
            other => {
                return invalid(other, format!("unknown parameter `{other}`; the parameters are state, limit"))
                    .into_response()
            }
        }
    }
    match api.store.notifications(failed, limit) {
        Ok(entries) => {
            let values: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let state = match (failed, e.attempts) {
                        (true, _) => DeliveryState::Failed,
                        (false, 0) => DeliveryState::Pending,
                        (false, _) => DeliveryState::Retrying,
                    };
                    notification_json(state, e)
                })
                .collect();
            Json(json!({ "notifications": values })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string(), Value::Null),
    }
}
