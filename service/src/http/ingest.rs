//! Events in (`POST /api/v1/events`) and the service's status
//! (`GET /api/v1/status`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::Api;
use crate::processor::{IngestReply, IngestRequest, Request, StatusView};

/// A JSON array of event envelopes (CloudEvents in structured mode, or
/// the configured `[envelope.mapping]`), at least one. An item that is
/// not a valid envelope is rejected in the answer, not refused.
pub struct EventBatch;

impl PartialSchema for EventBatch {
    fn schema() -> RefOr<Schema> {
        // Any JSON value: an item that is not a valid envelope is rejected
        // in the answer and kept as a dead letter, not refused with a 400.
        let envelope = ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
            .description(Some("One event envelope; what it must hold depends on `[envelope]`"));
        ArrayBuilder::new().items(envelope).min_items(Some(1)).into()
    }
}

impl ToSchema for EventBatch {}

/// Takes events: a JSON array of envelopes (`Content-Type:
/// application/json`), or NDJSON, one envelope a line. Answers once they
/// are durable, with what became of each; an envelope that is not a
/// valid event is rejected in the answer (and kept as a dead letter), not
/// refused.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body(content(
        (EventBatch = "application/json"),
        (String = "application/x-ndjson"),
    )),
    responses(
        (status = 200, description = "The events are durable; what became of each", body = IngestReply),
        (status = 400, description = "The body is empty or unreadable", body = ErrorBody),
        (status = 409, description = "A scale-out task's own API: its events come from Kafka", body = ErrorBody),
        (status = 413, description = "The body is over `[http] max_body_bytes`", body = ErrorBody),
        (status = 503, description = "Busy (with `Retry-After`), or shutting down", body = ErrorBody,
            headers(("Retry-After" = Option<String>, description = "Seconds to wait, when busy"))),
    )
)]
pub async fn ingest(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestReply>, ApiError> {
    // Why: handed to no other partition's scheduled workflows, such an
    // event would reach only this partition's items.
    api.refuse_on_a_task("an event posted here; produce it to the input topic instead")?;
    let body = body?;
    let Ok(text) = std::str::from_utf8(&body) else {
        return Err(ApiError::invalid("body", "the body is not UTF-8"));
    };
    let declared_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    let lines: Vec<String> = if declared_json || text.trim_start().starts_with('[') {
        let items = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text)
            .map_err(|e| ApiError::invalid("body", format!("the body is not a JSON array of events: {e}")))?;
        items.into_iter().map(|raw| raw.get().to_string()).collect()
    } else {
        text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
    };
    if lines.is_empty() {
        return Err(ApiError::invalid("body", "no events in the body"));
    }
    let (reply, outcome) = tokio::sync::oneshot::channel();
    api.hand_over(Request::Events(IngestRequest { lines, reply }))?;
    match outcome.await {
        Ok(reply) => Ok(Json(reply)),
        Err(_) => Err(ApiError::unavailable("shutting down; the events were not processed")),
    }
}

/// Per workflow: green, amber or red and its counts, plus the records
/// made by kind.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "status",
    responses((status = 200, description = "The status of every workflow", body = StatusView))
)]
pub async fn status(State(api): State<Api>) -> Json<StatusView> {
    Json(api.status.read().map(|v| v.clone()).unwrap_or_default())
}
