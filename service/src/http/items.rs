//! `GET /api/v1/workflows/{workflow}/items/{key}`: one item's lifecycle,
//! the same document `mon simulate --trace KEY --format json` prints for
//! that workflow ([`mon_runtime::lifecycle::Lifecycle`]).
//!
//! The live engine does not trace every key, so the lifecycle is made by
//! replaying the key's stored events (`crate::events`), in the order they
//! arrived, through a fresh engine that traces it, moved to the service's
//! clock. An item that depends on other keys' events (a scheduled
//! workflow's occurrence keyed by date, `depends on`) is told from the
//! events that carry its key only. This handler must not touch the live
//! engine: it runs beside the processing thread, on stored data.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use mon_runtime::lifecycle::{self, Lifecycle};
use mon_runtime::live::ClockMode;
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::events::engine_key;
use super::Api;

/// One item's lifecycle: the OpenAPI mirror of
/// [`mon_runtime::lifecycle::Lifecycle`] (the runtime knows nothing of
/// HTTP); schemathesis checks answers against it (tests/openapi.rs), and
/// `tests/service_lifecycle.rs` checks the answer equals simulate's.
#[derive(ToSchema)]
#[schema(as = Lifecycle)]
#[allow(dead_code)]
pub struct LifecycleSchema {
    workflow: String,
    /// Key field names to values (`date` for a scheduled workflow).
    key: BTreeMap<String, String>,
    /// The instant it is told at (RFC 3339): the service's clock.
    #[schema(format = DateTime)]
    now: String,
    /// Everything that happened to the item, in the order the engine saw it.
    entries: Vec<TraceEntrySchema>,
    /// The steps taken, in order.
    hops: Vec<HopSchema>,
    /// Time spent per stage; the last one up to now (or the close).
    stages: Vec<StaySchema>,
    /// The deadlines met (`met`), missed (`late`, `missing`), warned of
    /// (`at_risk`) or not yet open (`early`).
    deadlines: Vec<DeadlineSchema>,
    /// Where it is now; null when only events that moved nothing were seen.
    state: Option<ItemStateSchema>,
    /// The payload excerpt of the latest event that reached it (`pii` left out).
    #[schema(value_type = Option<Object>)]
    last_payload: Option<serde_json::Value>,
    /// Events for the key that moved nothing, and why.
    moved_nothing: Vec<UnmovedSchema>,
}

#[derive(ToSchema)]
#[schema(as = LifecycleEntry)]
#[allow(dead_code)]
pub struct TraceEntrySchema {
    at: String,
    /// `took`, `filled_in`, `duplicate`, `out_of_order`, `unexpected`,
    /// `irrelevant`, `redelivery`, `missing`, `at_risk`, `late`, `early`.
    what: String,
    step: Option<String>,
    /// The same in words, as `mon simulate --trace` prints it.
    text: String,
    event_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    payload: Option<serde_json::Value>,
}

#[derive(ToSchema)]
#[schema(as = LifecycleHop)]
#[allow(dead_code)]
pub struct HopSchema {
    step: String,
    at: String,
    deadline: Option<String>,
    on_time: Option<bool>,
    late_by_ms: Option<i64>,
    spare_ms: Option<i64>,
    /// Stages jumped over by an out-of-order event.
    skipped: Vec<String>,
    event_id: Option<String>,
}

#[derive(ToSchema)]
#[schema(as = LifecycleStay)]
#[allow(dead_code)]
pub struct StaySchema {
    stage: String,
    entered_at: String,
    left_at: Option<String>,
    spent_ms: i64,
}

#[derive(ToSchema)]
#[schema(as = LifecycleDeadline)]
#[allow(dead_code)]
pub struct DeadlineSchema {
    step: String,
    deadline: String,
    outcome: String,
    /// When it was decided.
    at: String,
}

#[derive(ToSchema)]
#[schema(as = LifecycleState)]
#[allow(dead_code)]
pub struct ItemStateSchema {
    /// `success` or `failure` once closed.
    closed: Option<String>,
    closed_at: Option<String>,
    stage: Option<String>,
    since: String,
    waits_for: Vec<WaitSchema>,
}

#[derive(ToSchema)]
#[schema(as = LifecycleWait)]
#[allow(dead_code)]
pub struct WaitSchema {
    step: String,
    optional: bool,
    deadline: Option<String>,
    /// Negative once overdue.
    left_ms: Option<i64>,
}

#[derive(ToSchema)]
#[schema(as = LifecycleUnmoved)]
#[allow(dead_code)]
pub struct UnmovedSchema {
    at: String,
    event_id: Option<String>,
    what: String,
    step: Option<String>,
    reason: String,
}

/// The item's lifecycle now.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{workflow}/items/{key}",
    tag = "status",
    params(
        ("workflow" = String, Path, description = "The workflow's name"),
        ("key" = String, Path, description = "The item's key (compound keys as `A,B`; a scheduled workflow's \
                                               occurrence as its date)"),
    ),
    responses(
        (status = 200, description = "The lifecycle: hops, stays, deadlines, what it waits for, the last payload, \
                                      and the events that moved nothing (as `mon simulate --trace KEY --format json`)",
         body = LifecycleSchema),
        (status = 404, description = "No such workflow, no stored event for this key, or the event store is off",
         body = ErrorBody),
        (status = 500, description = "The event store cannot be read", body = ErrorBody),
    )
)]
pub async fn lifecycle(
    State(api): State<Api>,
    Path((workflow_name, key)): Path<(String, String)>,
) -> Result<Json<Lifecycle>, ApiError> {
    let program = api.program();
    let program = &*program;
    let Some(workflow) = program.workflows.iter().find(|w| w.name == workflow_name) else {
        return Err(ApiError::not_found(
            format!("no workflow is named {workflow_name}"),
            json!({ "workflow": workflow_name }),
        ));
    };
    if !api.event_store {
        return Err(ApiError::not_found(
            "the event store is off (`[retention] events = \"0\"`): no lifecycle can be replayed",
            json!({ "store": "events" }),
        ));
    }
    let item_key = engine_key(&key);
    let no_item = || {
        ApiError::not_found(
            format!("no stored event names the item {key} of {workflow_name}"),
            json!({ "workflow": workflow_name, "key": key }),
        )
    };
    let stored =
        api.store.events().of_item(&workflow.name, &item_key).map_err(|e| ApiError::internal("reading events", e))?;
    if stored.is_empty() {
        return Err(no_item());
    }
    let latest = stored.iter().map(|e| e.time).max().unwrap_or(0);
    let now = match api.clock {
        ClockMode::Wall => crate::clock::wall_now(),
        // The event clock as the processing thread last showed it; never
        // before the item's own events.
        ClockMode::Event => {
            let shown =
                api.status.read().ok().and_then(|s| s.clock.as_deref().and_then(mon_stdlib::time::parse_rfc3339));
            shown.unwrap_or(latest).max(latest)
        }
    };
    let events = stored.iter().filter_map(|e| e.to_event(program));
    lifecycle::replay(program, mon_stdlib::registry(), workflow, &item_key, events, now).map(Json).ok_or_else(no_item)
}
