//! A scale-out task's side of its group's split-key check
//! (`scale_out/group_split.rs`): the keys it took an event of without
//! holding their item before, and which of a list of keys it holds.
//! Another task's process asks these, with the caller's token, to find an
//! item whose events came from two partitions (a producer that does not
//! key by item), which no task can see alone.
//!
//! Only a scale-out task answers (a 404 elsewhere: a lone process checks
//! its own partitions itself, `processor/partitions.rs`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::Api;
use crate::processor::{KeysHeldRequest, RecentKey, Request, RECENT_KEYS_KEPT};

fn not_a_task() -> ApiError {
    ApiError::not_found("only a task of a scale-out group answers this (docs/service.md, \"Scale-out\")", Value::Null)
}

/// `GET /api/v1/keys/recent`: from where.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// The number of the first key wanted: the `next` of the last answer
    /// (default 0).
    #[serde(default)]
    from: u64,
}

#[derive(Serialize, ToSchema)]
pub struct RecentKeysPage {
    /// Which start of the task numbered them: the numbers start again
    /// at each (an asker then reads from 0).
    instance: String,
    /// Oldest first.
    keys: Vec<RecentKey>,
    /// Ask from here next time.
    next: u64,
    /// Keys from `from` on that were dropped before they were asked for
    /// (the task keeps the newest 10,000).
    dropped: u64,
}

/// The keys of this task's events whose item it did not hold before the
/// event (it started it then, or holds none of it), numbered, from `from` on.
#[utoipa::path(
    get,
    path = "/api/v1/keys/recent",
    tag = "status",
    params(RecentQuery),
    responses(
        (status = 200, description = "The keys, oldest first", body = RecentKeysPage),
        (status = 400, description = "A parameter is wrong", body = ErrorBody),
        (status = 404, description = "Not a task of a scale-out group", body = ErrorBody),
    )
)]
pub async fn recent(
    State(api): State<Api>,
    query: Result<Query<RecentQuery>, QueryRejection>,
) -> Result<Json<RecentKeysPage>, ApiError> {
    let Some(recent) = &api.recent_keys else { return Err(not_a_task()) };
    let Query(RecentQuery { from }) = query?;
    let recent = recent.lock().map_err(|_| ApiError::internal("reading the recent keys", "poisoned"))?;
    let (keys, dropped) = recent.from(from);
    Ok(Json(RecentKeysPage { instance: format!("{:016x}", recent.instance()), keys, next: recent.next(), dropped }))
}

/// One item: its workflow and key.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemKey {
    workflow: String,
    key: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemKeys {
    keys: Vec<ItemKey>,
}

/// Which of `keys` this task holds an item of.
#[utoipa::path(
    post,
    path = "/api/v1/keys/held",
    tag = "status",
    request_body = ItemKeys,
    responses(
        (status = 200, description = "The keys this task holds", body = ItemKeys),
        (status = 400, description = "The body is wrong, or over 10,000 keys", body = ErrorBody),
        (status = 404, description = "Not a task of a scale-out group", body = ErrorBody),
        (status = 503, description = "Busy (with `Retry-After`), or shutting down", body = ErrorBody),
    )
)]
pub async fn held(State(api): State<Api>, raw: Result<Bytes, BytesRejection>) -> Result<Json<ItemKeys>, ApiError> {
    if api.recent_keys.is_none() {
        return Err(not_a_task());
    }
    let ItemKeys { keys } = serde_json::from_slice(&raw?)
        .map_err(|e| ApiError::invalid("body", format!("the body is not `{{\"keys\": [{{workflow, key}}]}}`: {e}")))?;
    if keys.len() > RECENT_KEYS_KEPT {
        return Err(ApiError::invalid("keys", format!("at most {RECENT_KEYS_KEPT} keys at once")));
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let keys = keys.into_iter().map(|k| (k.workflow, k.key)).collect();
    api.hand_over(Request::KeysHeld(KeysHeldRequest { keys, reply }))?;
    let held = answer.await.map_err(|_| ApiError::unavailable("shutting down"))?;
    Ok(Json(ItemKeys { keys: held.into_iter().map(|(workflow, key)| ItemKey { workflow, key }).collect() }))
}
