//! `GET /api/v1/workflows/{workflow}/stages/{stage}/items`: the items
//! waiting in one stage, oldest first, with the deadline each waits for.
//!
//! The views hold only each stage's oldest item, so this one reads the
//! live engine: it asks the processing thread (its only owner) through
//! the request channel and waits for the answer, which comes between two
//! batches (never ahead of what is durable) and is never journaled. The handler must not read the engine
//! itself, and the answer is bounded by `limit` (at most 1000) so that a
//! big stage costs the processing thread one walk, not a long copy
//! (`stage_items.rs`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::json;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::page::{self, DEFAULT_LIMIT};
use super::Api;
use crate::processor::{Request, StageItemsRequest};
use crate::stage_items::{Ask, StageItems, Unknown};

/// The parameters of `GET .../stages/{stage}/items`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StageItemsQuery {
    /// At most this many items, the oldest (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only this group's items: its values joined by `/`, as `/groups`
    /// shows it.
    group: Option<String>,
}

/// The in-flight items of one stage, oldest first: each with its key,
/// group, when it entered the stage and its age, and the deadline it
/// waits for with the time left (negative once overdue), on the engine's
/// clock. `in_stage` counts them all; `items` holds the oldest `limit`.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{workflow}/stages/{stage}/items",
    tag = "status",
    params(
        ("workflow" = String, Path, description = "The workflow's name"),
        ("stage" = String, Path, description = "The stage's name (the step that leads into it)"),
        StageItemsQuery,
    ),
    responses(
        (status = 200, description = "The stage's oldest items", body = StageItems),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 404, description = "No workflow has this name, or it has no such stage", body = ErrorBody),
        (status = 503, description = "Busy (with `Retry-After`), or shutting down", body = ErrorBody),
    )
)]
pub async fn items(
    State(api): State<Api>,
    Path((workflow, stage)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<StageItems>, ApiError> {
    let Query(pairs) = query?;
    let (mut limit, mut group) = (DEFAULT_LIMIT, None);
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => limit = page::limit(&value)?,
            "group" => group = Some(value),
            other => return Err(ApiError::unknown_parameter(other, &["limit", "group"])),
        }
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let ask = Ask { workflow: workflow.clone(), stage: stage.clone(), group, limit };
    api.hand_over(Request::StageItems(StageItemsRequest { ask, reply }))?;
    match answer.await {
        Ok(Ok(items)) => Ok(Json(items)),
        Ok(Err(Unknown::Workflow)) => {
            Err(ApiError::not_found(format!("no workflow is named `{workflow}`"), json!({ "workflow": workflow })))
        }
        // A 404 like an unknown workflow: the stage names a part of it.
        Ok(Err(Unknown::Stage(stages))) => Err(ApiError::not_found(
            format!("`{workflow}` has no stage `{stage}`; its stages are {}", stages.join(", ")),
            json!({ "workflow": workflow, "stage": stage }),
        )),
        Err(_) => Err(ApiError::unavailable("shutting down")),
    }
}
