//! The alert API: list and read alerts, act on them (ack, unack, suppress,
//! resolve), and see the notification outbox. Reads come from the view the
//! processing thread publishes ([`AlertsView`]) and from sled; a command
//! goes through the processing thread's input channel, is journaled as an
//! [`Input::Command`](mon_runtime::live::Input::Command) like an event, and
//! is answered once its batch is durable.
//!
//! Errors have the API's one shape ([`super::error`]).

use std::collections::{BTreeMap, HashSet};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mon_compiler::ir::Severity;
use mon_runtime::alerts::{Action, Alert, AlertState, CommandError};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::page::{self, DEFAULT_LIMIT};
use super::schema::{AlertStateWord, DeliveryStateWord, NotificationEventWord, RecordKindWord, SeverityWord};
use super::Api;
use crate::auth::Caller;
use crate::clock::wall_now;
use crate::processor::{CommandRequest, Request};
use crate::store::{DeliveryState, NotificationEntry};

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no alert has the id {id}"), json!({ "id": id }))
}

fn rfc3339(ms: i64) -> String {
    mon_stdlib::time::format_rfc3339(ms)
}

/// One alert as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct AlertView {
    /// The id of the record that opened it.
    id: String,
    workflow: String,
    step: String,
    #[schema(value_type = RecordKindWord)]
    kind: &'static str,
    /// Key field name to value.
    key: BTreeMap<String, String>,
    /// The workflow's `group by` field name to value.
    group: BTreeMap<String, String>,
    #[schema(value_type = SeverityWord)]
    severity: &'static str,
    #[schema(value_type = AlertStateWord)]
    state: &'static str,
    /// RFC 3339.
    opened_at: String,
    /// The deadline missed or at risk (RFC 3339).
    deadline: Option<String>,
    /// Now minus the deadline, or minus the opening without one.
    since_breach_ms: i64,
    /// Later records of the same workflow, step, kind and key while active.
    repeats: u32,
    runbook: Option<String>,
    /// With state `suppressed`: until when (RFC 3339); null until resolved.
    suppressed_until: Option<String>,
    resolved_at: Option<String>,
    /// Why it was resolved, in words.
    resolution: Option<String>,
    /// The hash of the rule version that made it.
    program_hash: String,
    /// What the engine knew of the item when the alert opened.
    excerpt: Value,
}

/// One line of an alert's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryLine {
    /// RFC 3339.
    at: String,
    /// `opened`, `notified`, `acknowledged`, `unacknowledged`, `suppressed`,
    /// `unsuppressed`, `escalated`, `resolved`.
    what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// For `notified` and `escalated`: the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    /// For `notified`: the notification's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<String>,
}

/// An alert with its history and the delivery of its notifications.
#[derive(Serialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    alert: AlertView,
    history: Vec<HistoryLine>,
    notifications: Vec<Delivery>,
}

/// A notification with its delivery state.
#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    id: String,
    /// The channel's name, as the rules declare it.
    channel: String,
    #[schema(value_type = NotificationEventWord)]
    event: &'static str,
    group_key: String,
    workflow: String,
    step: String,
    #[schema(value_type = RecordKindWord)]
    kind: &'static str,
    #[schema(value_type = SeverityWord)]
    severity: &'static str,
    summary: String,
    /// The ids of the alerts it lists.
    alerts: Vec<String>,
    /// When the alert book decided to send it (RFC 3339).
    at: String,
    #[schema(value_type = DeliveryStateWord)]
    state: &'static str,
    queued_at: String,
    attempts: u32,
    last_error: Option<String>,
    last_attempt_at: Option<String>,
    next_attempt_at: Option<String>,
    sent_at: Option<String>,
    failed_at: Option<String>,
}

/// A notification trimmed from the sent log (the alert's history outlives it).
#[derive(Serialize, ToSchema)]
pub struct UnknownDelivery {
    id: String,
    #[schema(value_type = String, pattern = "^unknown$")]
    state: &'static str,
}

/// What an alert's detail says of one of its notifications.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Delivery {
    Known(Box<NotificationView>),
    Unknown(UnknownDelivery),
}

/// What one alert looks like in the API: times as RFC 3339, plus
/// `since_breach_ms` (now − the deadline, or − the opening when it has no
/// deadline).
pub(super) fn alert_view(alert: &Alert, now: i64) -> AlertView {
    let breach = alert.deadline.unwrap_or(alert.opened_at);
    AlertView {
        id: alert.id.clone(),
        workflow: alert.workflow.clone(),
        step: alert.step.clone(),
        kind: alert.kind.name(),
        key: alert.key.clone(),
        group: alert.group.clone(),
        severity: alert.severity.name(),
        state: alert.state.name(),
        opened_at: rfc3339(alert.opened_at),
        deadline: alert.deadline.map(rfc3339),
        since_breach_ms: now.saturating_sub(breach),
        repeats: alert.repeats,
        runbook: alert.runbook.clone(),
        suppressed_until: alert.suppressed_until.map(rfc3339),
        resolved_at: alert.resolved_at.map(rfc3339),
        resolution: alert.resolution.clone(),
        program_hash: alert.program_hash.clone(),
        excerpt: alert.excerpt.clone(),
    }
}

/// A notification with its delivery state, for the alert detail and
/// `/api/v1/notifications`.
fn notification_view(state: DeliveryState, entry: &NotificationEntry) -> NotificationView {
    let n = &entry.notification;
    NotificationView {
        id: n.id.clone(),
        channel: n.channel.clone(),
        event: n.event.name(),
        group_key: n.group_key.clone(),
        workflow: n.workflow.clone(),
        step: n.step.clone(),
        kind: n.kind.name(),
        severity: n.severity.name(),
        summary: n.summary.clone(),
        alerts: n.alerts.iter().map(|a| a.id.clone()).collect(),
        at: rfc3339(n.at),
        state: state.name(),
        queued_at: rfc3339(entry.queued_at),
        attempts: entry.attempts,
        last_error: entry.last_error.clone(),
        last_attempt_at: entry.last_attempt_at.map(rfc3339),
        next_attempt_at: entry.next_attempt_at.map(rfc3339),
        sent_at: entry.done_at.filter(|_| state == DeliveryState::Sent).map(rfc3339),
        failed_at: entry.done_at.filter(|_| state == DeliveryState::Failed).map(rfc3339),
    }
}

/// The alert with its history and the delivery state of each notification
/// its history names.
fn detail(api: &Api, alert: &Alert, now: i64) -> Result<Json<AlertDetail>, ApiError> {
    let history = alert
        .history
        .iter()
        .map(|e| HistoryLine {
            at: rfc3339(e.at),
            what: e.what.clone(),
            by: e.by.clone(),
            reason: e.reason.clone(),
            channel: e.channel.clone(),
            notification: e.notification.clone(),
        })
        .collect();
    let mut notifications = Vec::new();
    let mut seen = HashSet::new();
    for id in alert.history.iter().filter_map(|e| e.notification.as_deref()) {
        if !seen.insert(id) {
            continue;
        }
        match api.store.notification(id) {
            Ok(Some((state, entry))) => notifications.push(Delivery::Known(Box::new(notification_view(state, &entry)))),
            // Trimmed from the sent log, or never written (alerting's
            // history outlives the log's limit).
            Ok(None) => notifications.push(Delivery::Unknown(UnknownDelivery { id: id.to_string(), state: "unknown" })),
            Err(e) => return Err(ApiError::internal("reading a notification", e)),
        }
    }
    Ok(Json(AlertDetail { alert: alert_view(alert, now), history, notifications }))
}

/// "Now" for `since_breach_ms`: the wall clock, or the engine's clock on
/// the event clock.
fn now_of(view: &crate::processor::AlertsView) -> i64 {
    view.event_clock.unwrap_or_else(wall_now)
}

/// The parameters of `GET /api/v1/alerts`, all optional, combined with "and".
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AlertsQuery {
    /// Alerts in any of these states (repeated, or a comma list).
    #[param(value_type = Option<Vec<AlertStateWord>>)]
    state: Option<Vec<String>>,
    /// Alerts of any of these workflows (repeated, or a comma list).
    workflow: Option<Vec<String>>,
    /// Alerts of any of these severities (repeated, or a comma list).
    #[param(value_type = Option<Vec<SeverityWord>>)]
    severity: Option<Vec<String>>,
    /// `NAME=VALUE`: the workflow's `group by` field has this value.
    #[param(pattern = "=")]
    group: Option<String>,
    /// `VALUE` (any key field has it) or `NAME=VALUE`.
    key: Option<String>,
    /// At most this many alerts (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it is.
    #[param(pattern = "^[0-9a-f]{16}([0-9a-f]{2})*$")]
    cursor: Option<String>,
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
    cursor: Option<(i64, Vec<u8>)>,
}

impl Filter {
    fn parse(pairs: Vec<(String, String)>) -> Result<Filter, ApiError> {
        let mut filter = Filter::default();
        for (name, value) in pairs {
            match name.as_str() {
                "state" => {
                    for word in page::list(&value) {
                        filter.states.push(page::word("state", word, AlertState::ALL)?);
                    }
                }
                "workflow" => filter.workflows.extend(page::list(&value).map(str::to_string)),
                "severity" => {
                    for word in page::list(&value) {
                        filter.severities.push(page::word("severity", word, Severity::ALL)?);
                    }
                }
                "group" => {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or_else(|| ApiError::invalid("group", format!("group: `{value}` is not NAME=VALUE")))?;
                    filter.group.push((k.to_string(), v.to_string()));
                }
                "key" => match value.split_once('=') {
                    Some((k, v)) => filter.key.push((Some(k.to_string()), v.to_string())),
                    None => filter.key.push((None, value)),
                },
                "limit" => filter.limit = Some(page::limit(&value)?),
                "cursor" => {
                    filter.cursor = Some(decode_cursor(&value).ok_or_else(|| {
                        ApiError::invalid("cursor", "cursor: not a cursor this API gave (take `next_cursor` as it is)")
                    })?);
                }
                other => {
                    return Err(ApiError::unknown_parameter(
                        other,
                        &["state", "workflow", "severity", "group", "key", "limit", "cursor"],
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

/// The cursor is the position of the last alert given, `opened_at` (16
/// hex digits of its two's complement) then the id's bytes in hex: opaque
/// to clients, and stable while alerts come and go (newer alerts never
/// shift a page that was already given). Any string of that pattern is a
/// position, so the document can say exactly what a cursor is.
fn encode_cursor(alert: &Alert) -> String {
    let mut text = format!("{:016x}", alert.opened_at as u64);
    text.extend(alert.id.bytes().map(|b| format!("{b:02x}")));
    text
}

fn decode_cursor(text: &str) -> Option<(i64, Vec<u8>)> {
    if text.len() < 16
        || !text.len().is_multiple_of(2)
        || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let at = u64::from_str_radix(text.get(..16)?, 16).ok()? as i64;
    let id: Option<Vec<u8>> =
        (16..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect();
    Some((at, id?))
}

/// A page of alerts, newest first.
#[derive(Serialize, ToSchema)]
pub struct AlertPage {
    alerts: Vec<AlertView>,
    /// The cursor of the next page; null on the last page.
    next_cursor: Option<String>,
}

/// Alerts, newest first, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(AlertsQuery),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 500, description = "The alert view is unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(api): State<Api>,
    headers: axum::http::HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(pairs) = query?;
    let filter = Filter::parse(pairs)?;
    let view = api.alerts.read().map_err(|_| ApiError::internal("reading the alert view", "the lock is poisoned"))?;
    let now = now_of(&view);
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    // The view is sorted by (opened_at, id), newest first: a page starts
    // after the cursor's position.
    let after = |a: &Alert| match &filter.cursor {
        Some((at, id)) => (a.opened_at, a.id.as_bytes()) < (*at, id.as_slice()),
        None => true,
    };
    let mut matching = view.alerts.iter().filter(|a| after(a) && filter.accepts(a));
    let page: Vec<&Alert> = matching.by_ref().take(limit).collect();
    let next_cursor = match (page.last(), matching.next()) {
        (Some(last), Some(_)) => Some(encode_cursor(last)),
        _ => None,
    };
    let body = AlertPage { alerts: page.iter().map(|a| alert_view(a, now)).collect(), next_cursor };
    Ok(page::with_item_cursors(&headers, body, || page.iter().map(|a| encode_cursor(a)).collect()))
}

/// One alert, its history, and the delivery of its notifications.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "The alert's id")),
    responses(
        (status = 200, description = "The alert", body = AlertDetail),
        (status = 404, description = "No alert has this id", body = ErrorBody),
        (status = 500, description = "The notification log cannot be read", body = ErrorBody),
    )
)]
pub async fn get(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<AlertDetail>, ApiError> {
    let found = api.alerts.read().ok().and_then(|view| {
        let now = now_of(&view);
        view.alerts.iter().find(|a| a.id == id).cloned().map(|a| (a, now))
    });
    match found {
        Some((alert, now)) => detail(&api, &alert, now),
        None => Err(not_found(&id)),
    }
}

/// The body of `ack`, `unack` and `resolve`.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CommandBody {
    /// Who does it; not blank.
    #[schema(pattern = "\\S")]
    by: String,
    reason: Option<String>,
}

/// The body of `suppress`.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SuppressBody {
    /// Who does it; not blank.
    #[schema(pattern = "\\S")]
    by: String,
    reason: Option<String>,
    /// Until when (RFC 3339); without it, until the alert is resolved.
    #[schema(format = DateTime)]
    until: Option<String>,
}

/// The body of a command: `{"by": "...", "reason": "...", "until": "RFC 3339"}`.
fn parse_command(action: &str, body: &[u8]) -> Result<(Action, String, Option<String>), ApiError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", format!("the body is not JSON: {e}")))?
    };
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid("body", "the body must be a JSON object such as {\"by\": \"alice\"}"));
    };
    for name in fields.keys() {
        if !matches!(name.as_str(), "by" | "reason" | "until") {
            return Err(ApiError::invalid(name, format!("unknown field `{name}`; the fields are by, reason, until")));
        }
    }
    let by = match fields.get("by") {
        Some(Value::String(by)) if !by.trim().is_empty() => by.clone(),
        Some(Value::String(_)) => return Err(ApiError::invalid("by", "by: empty; say who does it")),
        Some(_) => return Err(ApiError::invalid("by", "by: must be a string")),
        None => return Err(ApiError::invalid("by", "by: missing; say who does it")),
    };
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => Some(reason.clone()),
        Some(_) => return Err(ApiError::invalid("reason", "reason: must be a string")),
    };
    let until = match fields.get("until") {
        None | Some(Value::Null) => None,
        Some(_) if action != "suppress" => {
            return Err(ApiError::invalid("until", format!("until: only `suppress` takes it, not `{action}`")))
        }
        Some(Value::String(text)) => Some(
            mon_stdlib::time::parse_rfc3339(text)
                .ok_or_else(|| ApiError::invalid("until", format!("until: `{text}` is not an RFC 3339 instant")))?,
        ),
        Some(_) => return Err(ApiError::invalid("until", "until: must be an RFC 3339 string")),
    };
    let action = match action {
        "ack" => Action::Ack,
        "unack" => Action::Unack,
        "suppress" => Action::Suppress { until },
        "resolve" => Action::Resolve,
        other => return Err(ApiError::invalid("action", format!("no action `{other}`"))),
    };
    Ok((action, by, reason))
}

/// A command to an alert: answers with the alert as the command left it,
/// once the command is journaled and its batch written.
async fn command(
    api: Api,
    caller: Option<Caller>,
    id: String,
    action_word: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AlertDetail>, ApiError> {
    let (action, by, reason) = parse_command(action_word, &body?)?;
    // The audit log says who is authenticated, and whom they named.
    let who = caller.map_or_else(|| by.clone(), |c| c.name);
    let until = match action {
        Action::Suppress { until } => until.map(rfc3339),
        _ => None,
    };
    let audit_details = json!({ "by": by, "reason": reason, "until": until });
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let request = Request::Command(CommandRequest { alert: id.clone(), action, by, reason, reply });
    api.hand_over(request)?;
    let now_view = api.alerts.read().ok().map(|v| now_of(&v)).unwrap_or_else(wall_now);
    match outcome.await {
        Ok(Ok(alert)) => {
            let action = format!("alert.{action_word}");
            api.audit
                .append(&who, &action, &id, audit_details)
                .map_err(|e| ApiError::internal("writing the audit log", e))?;
            detail(&api, &alert, now_view)
        }
        Ok(Err(CommandError::NotFound(_))) => Err(not_found(&id)),
        Ok(Err(CommandError::Conflict(why))) => {
            Err(ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, why, json!({ "id": id })))
        }
        Err(_) => Err(ApiError::unavailable("shutting down; the command was not applied")),
    }
}

macro_rules! command_endpoint {
    ($name:ident, $path:literal, $body:ty, $what:literal) => {
        #[doc = $what]
        #[utoipa::path(
            post,
            path = $path,
            tag = "alerts",
            params(("id" = String, Path, description = "The alert's id")),
            request_body = $body,
            responses(
                (status = 200, description = "The alert as the command left it, once journaled", body = AlertDetail),
                (status = 400, description = "The body is wrong; `details.field` names the field", body = ErrorBody),
                (status = 404, description = "No alert has this id", body = ErrorBody),
                (status = 409, description = "The alert's state does not allow it", body = ErrorBody),
                (status = 413, description = "The body is over `[http] max_body_bytes`", body = ErrorBody),
                (status = 503, description = "Busy (with `Retry-After`), or shutting down", body = ErrorBody),
            )
        )]
        pub async fn $name(
            State(api): State<Api>,
            caller: Option<Extension<Caller>>,
            Path(id): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<AlertDetail>, ApiError> {
            command(api, caller.map(|Extension(c)| c), id, stringify!($name), body).await
        }
    };
}

command_endpoint!(ack, "/api/v1/alerts/{id}/ack", CommandBody, "Acknowledges an alert: someone is on it.");
command_endpoint!(unack, "/api/v1/alerts/{id}/unack", CommandBody, "Takes an acknowledgement back.");
command_endpoint!(
    suppress,
    "/api/v1/alerts/{id}/suppress",
    SuppressBody,
    "Silences an alert, until a time or until resolved."
);
command_endpoint!(resolve, "/api/v1/alerts/{id}/resolve", CommandBody, "Resolves an alert by hand.");

/// The parameters of `GET /api/v1/notifications`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NotificationsQuery {
    /// `pending` (the default: oldest first, the order they go out in) or
    /// `failed` (newest first).
    #[param(inline)]
    state: Option<NotificationList>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it is.
    #[param(pattern = "^[0-9a-f]{16}$")]
    cursor: Option<String>,
}

/// Which notifications to list.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum NotificationList {
    Pending,
    Failed,
}

/// A page of notifications.
#[derive(Serialize, ToSchema)]
pub struct NotificationPage {
    notifications: Vec<NotificationView>,
    /// The cursor of the next page; null on the last page.
    next_cursor: Option<String>,
}

/// The notification outbox: pending notifications oldest first (the
/// order they go out in), or failed ones newest first, with their
/// attempts and last error.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "alerts",
    params(NotificationsQuery),
    responses(
        (status = 200, description = "A page of notifications", body = NotificationPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 500, description = "The notification log cannot be read", body = ErrorBody),
    )
)]
pub async fn notifications(
    State(api): State<Api>,
    headers: axum::http::HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(pairs) = query?;
    let (mut failed, mut limit, mut cursor) = (false, DEFAULT_LIMIT, None);
    for (name, value) in pairs {
        match name.as_str() {
            "state" => match value.as_str() {
                "pending" => failed = false,
                "failed" => failed = true,
                _ => {
                    return Err(ApiError::invalid(
                        "state",
                        format!("state: unknown `{value}`; expected pending or failed"),
                    ))
                }
            },
            "limit" => limit = page::limit(&value)?,
            "cursor" => cursor = Some(page::decode_seq(&value)?),
            other => return Err(ApiError::unknown_parameter(other, &["state", "limit", "cursor"])),
        }
    }
    let page = api
        .store
        .notifications(failed, cursor, limit)
        .map_err(|e| ApiError::internal("reading the notification log", e))?;
    let notifications = page
        .items
        .iter()
        .map(|(_, e)| {
            let state = match (failed, e.attempts) {
                (true, _) => DeliveryState::Failed,
                (false, 0) => DeliveryState::Pending,
                (false, _) => DeliveryState::Retrying,
            };
            notification_view(state, e)
        })
        .collect();
    let body = NotificationPage { notifications, next_cursor: page.next.map(page::encode_seq) };
    Ok(page::with_item_cursors(&headers, body, || page.items.iter().map(|(seq, _)| page::encode_seq(*seq)).collect()))
}
