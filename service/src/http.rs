//! The HTTP side (axum): health, readiness, metrics, event ingest, the
//! read-only endpoints (status, recent records, dead letters), and the
//! alert API ([`alerts`]).

mod alerts;

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::metrics::Metrics;
use super::processor::{AlertsView, IngestRequest, Request, StatusView};
use super::store::StoreHandle;

#[derive(Clone)]
pub struct Api {
    pub metrics: Arc<Metrics>,
    /// The processing thread's input channel: events and alert commands.
    pub ingest: SyncSender<Request>,
    pub status: Arc<RwLock<StatusView>>,
    pub alerts: Arc<RwLock<AlertsView>>,
    pub store: StoreHandle,
    pub kafka_configured: bool,
}

pub fn router(api: Api, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/events", post(ingest))
        .route("/api/v1/status", get(status))
        .route("/api/v1/records", get(records))
        .route("/api/v1/dead-letters", get(dead_letters))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}", get(alerts::get))
        .route("/api/v1/alerts/{id}/{action}", post(alerts::command))
        .route("/api/v1/notifications", get(alerts::notifications))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(api)
}

async fn readyz(State(api): State<Api>) -> Response {
    let mut reasons = Vec::new();
    if !api.metrics.state_open.load(std::sync::atomic::Ordering::Relaxed) {
        reasons.push("the state is not open yet".to_string());
    }
    if api.kafka_configured && !api.metrics.kafka_assigned.load(std::sync::atomic::Ordering::Relaxed) {
        let why = api.metrics.kafka_problem().unwrap_or_else(|| "waiting for the group's assignment".into());
        reasons.push(format!("no Kafka partitions assigned: {why}"));
    }
    let code = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "ready": reasons.is_empty(), "reasons": reasons }))).into_response()
}

async fn metrics(State(api): State<Api>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], api.metrics.encode()).into_response()
}

fn problem(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /api/v1/events`: a JSON array of events, or NDJSON (one per line).
/// Answers once the events are durable, with what became of each.
async fn ingest(State(api): State<Api>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return problem(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let lines: Vec<String> = if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text) {
            Ok(items) => items.into_iter().map(|raw| raw.get().to_string()).collect(),
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("the body is not a JSON array of events: {e}")),
        }
    } else {
        text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
    };
    if lines.is_empty() {
        return problem(StatusCode::BAD_REQUEST, "no events in the body");
    }
    let (reply, outcome) = tokio::sync::oneshot::channel();
    match api.ingest.try_send(Request::Events(IngestRequest { lines, reply })) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], "busy; retry\n").into_response();
        }
        Err(TrySendError::Disconnected(_)) => return problem(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
    match outcome.await {
        Ok(reply) => Json(reply).into_response(),
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "shutting down; the events were not processed"),
    }
}

async fn status(State(api): State<Api>) -> Response {
    let view = api.status.read().map(|v| v.clone()).unwrap_or_default();
    Json(view).into_response()
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn records(State(api): State<Api>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    match api.store.recent_records(limit) {
        Ok(records) => {
            let values: Vec<serde_json::Value> = records.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
            Json(values).into_response()
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn dead_letters(State(api): State<Api>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    match api.store.dead_letters(limit) {
        Ok(letters) => {
            let values: Vec<serde_json::Value> = letters
                .iter()
                .map(|l| {
                    json!({
                        "reason": l.reason,
                        "origin": l.origin,
                        "received": mon_stdlib::time::format_rfc3339(l.received),
                        "text": String::from_utf8_lossy(&l.bytes),
                    })
                })
                .collect();
            Json(values).into_response()
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
