//! The HTTP side (axum): health, readiness, metrics, event ingest
//! ([`ingest`]), the local logs ([`logs`]), the alert API ([`alerts`]),
//! and the OpenAPI 3.1 document that describes them, served at
//! `GET /api/v1/openapi.json`.
//!
//! Architecture invariant: the router and the document are built from the
//! same list ([`routes`]): each handler carries its `#[utoipa::path]`
//! description, and `utoipa_axum` registers the route and its description
//! together, so the document lists every route the router serves and no
//! other. Every error answer has the shape of [`error`].

mod alerts;
pub mod error;
mod ingest;
mod logs;
mod page;
pub mod schema;

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, OnceLock, RwLock};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::metrics::Metrics;
use super::processor::{AlertsView, Request, StatusView};
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mon service API",
        description = "The HTTP API of `mon run`: events in, status, records, dead letters, alerts and \
                       notifications. Every error answer is `{\"error\": {\"code\", \"message\", \"details\"}}`; \
                       every list is newest first (the pending notifications oldest first) and paged with an \
                       opaque `cursor` (the previous page's `next_cursor`).",
    ),
    tags(
        (name = "events", description = "Events in"),
        (name = "status", description = "Workflow status"),
        (name = "records", description = "The service's local logs"),
        (name = "alerts", description = "The alert book and its notifications"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// Every route with its description: the one list the router and the
/// document are both made of.
fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(ingest::ingest))
        .routes(routes!(ingest::status))
        .routes(routes!(logs::records))
        .routes(routes!(logs::dead_letters))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::get))
        .routes(routes!(alerts::ack))
        .routes(routes!(alerts::unack))
        .routes(routes!(alerts::suppress))
        .routes(routes!(alerts::resolve))
        .routes(routes!(alerts::notifications))
}

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

pub fn router(api: Api, max_body_bytes: usize) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(api)
}

/// `ok` while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process runs", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the service is ready, and if not, why.
#[derive(Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    /// Why not, in words; empty when ready.
    reasons: Vec<String>,
}

/// Ready when the state is recovered and Kafka (when configured) has
/// assigned partitions.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready, with the reasons", body = Readiness),
    )
)]
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
    (code, Json(Readiness { ready: reasons.is_empty(), reasons })).into_response()
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
async fn metrics(State(api): State<Api>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], api.metrics.encode()).into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| openapi().to_json().unwrap_or_else(|_| "{}".to_string()));
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_route() {
        let document: serde_json::Value = serde_json::to_value(openapi()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
        let paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/openapi.json",
            "/api/v1/events",
            "/api/v1/status",
            "/api/v1/records",
            "/api/v1/dead-letters",
            "/api/v1/alerts",
            "/api/v1/alerts/{id}",
            "/api/v1/alerts/{id}/ack",
            "/api/v1/alerts/{id}/unack",
            "/api/v1/alerts/{id}/suppress",
            "/api/v1/alerts/{id}/resolve",
            "/api/v1/notifications",
        ] {
            assert!(paths.contains(&path), "{path} is not in {paths:?}");
        }
        assert_eq!(paths.len(), 15, "{paths:?}");
    }
}
