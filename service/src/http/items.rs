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

use axum::extract::{Path, State};
use axum::Json;
use mon_runtime::lifecycle::{self, Lifecycle};
use mon_runtime::live::ClockMode;
use serde_json::json;

use super::error::{ApiError, ErrorBody};
use super::events::engine_key;
use super::Api;

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
         body = Object),
        (status = 404, description = "No such workflow, no stored event for this key, or the event store is off",
         body = ErrorBody),
        (status = 500, description = "The event store cannot be read", body = ErrorBody),
    )
)]
pub async fn lifecycle(
    State(api): State<Api>,
    Path((workflow_name, key)): Path<(String, String)>,
) -> Result<Json<Lifecycle>, ApiError> {
    let program = &api.program;
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
