//! A scale-out task's side of its group's rule changes
//! (`rules/group.rs`): a change its API takes (`http/rules.rs`) is
//! published to the group's rules topic and answered once this task has
//! applied it; and whether it has applied one, for its process to wait on
//! every task (`scale_out/group_rules.rs`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::Api;
use crate::rules::group::{Change, GroupChange, GroupRules, Outcome};

/// Where a scale-out group's rule change is in `<group>.rules`: every task
/// applies it there, in the same order (`rules/group.rs`). A process's
/// own address answers once every task has (`tasks`).
#[derive(Clone, Serialize, ToSchema)]
pub struct GroupPlace {
    pub topic: String,
    pub offset: i64,
}

/// How long a task's API waits for its own task to apply a group change
/// before it answers 202 (the change is in the topic and will apply).
const GROUP_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Publishes a scale-out group's change and waits for this task to apply
/// it: its outcome, or the 202 to answer when it has not yet.
pub(super) async fn through_group(
    group: &GroupRules,
    by: &str,
    change: Change,
) -> Result<(GroupPlace, Outcome), Response> {
    let change = GroupChange::new(by, change);
    let offset = group.publish(&change).await.map_err(|e| {
        tracing::error!(error = %e, "cannot publish a group rule change");
        ApiError::unavailable(format!("cannot publish the change to {}: {e}", group.topic)).into_response()
    })?;
    let place = GroupPlace { topic: group.topic.clone(), offset };
    let applied = group.wait_for(offset, GROUP_WAIT).await;
    match applied.outcome {
        Some(outcome) => Ok((place, outcome)),
        None => {
            let body = json!({
                "group": place,
                "applied": false,
                "message": "published to the group's rules topic; this task has not applied it yet, and will",
            });
            Err((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}

/// A change this task published but did not apply as asked: the error,
/// with where the change is (the process's address waits for every task
/// all the same: others may have applied it) and what this task made of it.
pub(super) fn not_applied(place: GroupPlace, outcome: Outcome) -> Response {
    let (status, code, message) = match &outcome {
        Outcome::Refused { reason } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidRequest, reason.clone()),
        Outcome::AlreadyRunning { version } => {
            (StatusCode::CONFLICT, ErrorCode::Conflict, format!("rule version {version} already runs"))
        }
        Outcome::Switched { workflow, known: false, .. } => {
            (StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no workflow {workflow}"))
        }
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "applied, but the audit log could not be written (the service's log says why)".to_string(),
        ),
    };
    let error = json!({ "code": code, "message": message, "details": { "outcome": outcome } });
    (status, Json(json!({ "error": error, "group": place }))).into_response()
}

/// `GET /api/v1/rules/group-changes/{offset}`: the query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupChangeQuery {
    /// Wait up to this long (ms, at most 1500) for the change to apply.
    #[serde(default)]
    wait_ms: u64,
}

/// Whether this scale-out task has applied the group's rule change at
/// `offset` of `<group>.rules`, and what it did: a process waits on this
/// for every task after a change through its address.
#[utoipa::path(
    get,
    path = "/api/v1/rules/group-changes/{offset}",
    tag = "rules",
    params(("offset" = i64, Path, description = "The change's offset in the group's rules topic"), GroupChangeQuery),
    responses(
        (status = 200, description = "Applied or not; the outcome when this task applied it since it started", body = crate::rules::group::Applied),
        (status = 400, description = "Not an offset", body = ErrorBody),
        (status = 404, description = "Not a task of a scale-out group", body = ErrorBody),
    )
)]
pub async fn group_change(
    State(api): State<Api>,
    Path(offset): Path<String>,
    query: Result<Query<GroupChangeQuery>, QueryRejection>,
) -> Result<Json<crate::rules::group::Applied>, ApiError> {
    let Some(group) = &api.group_rules else {
        return Err(ApiError::not_found(
            "only a task of a scale-out group applies the group's rule changes (docs/service.md, \"Scale-out\")",
            Value::Null,
        ));
    };
    let offset = offset
        .parse::<i64>()
        .ok()
        .filter(|o| *o >= 0)
        .ok_or_else(|| ApiError::invalid("offset", format!("offset: `{offset}` is not an offset (0, 1, ...)")))?;
    let Query(query) = query?;
    let wait = std::time::Duration::from_millis(query.wait_ms.min(1500));
    Ok(Json(group.wait_for(offset, wait).await))
}
