//! The service's local logs, read-only: `GET /api/v1/records` (the records
//! it made) and `GET /api/v1/dead-letters` (the messages it rejected),
//! newest first, a page at a time ([`super::page`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::page::{self, DEFAULT_LIMIT};
use super::schema::{Record, RecordKindWord};
use super::Api;
use mon_compiler::ir::RecordKind;

/// The parameters of `GET /api/v1/records`, all optional, combined with "and".
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RecordsQuery {
    /// Only records of these kinds (repeated, or a comma list).
    #[param(value_type = Option<Vec<RecordKindWord>>)]
    kind: Option<Vec<String>>,
    /// Only records of these workflows (repeated, or a comma list).
    workflow: Option<Vec<String>>,
    /// At most this many records (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it is.
    #[param(pattern = "^[0-9a-f]{16}$")]
    cursor: Option<String>,
}

/// A page of records, newest first.
#[derive(Serialize, ToSchema)]
pub struct RecordPage {
    #[schema(value_type = Vec<Record>)]
    pub records: Vec<Value>,
    /// The cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The records this service made, newest first, from its local log.
#[utoipa::path(
    get,
    path = "/api/v1/records",
    tag = "records",
    params(RecordsQuery),
    responses(
        (status = 200, description = "A page of records", body = RecordPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 500, description = "The local log cannot be read", body = ErrorBody),
    )
)]
pub async fn records(
    State(api): State<Api>,
    headers: axum::http::HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(pairs) = query?;
    let (mut kinds, mut workflows, mut limit, mut cursor) = (Vec::new(), Vec::new(), DEFAULT_LIMIT, None);
    for (name, value) in &pairs {
        match name.as_str() {
            "kind" => {
                for word in page::list(value) {
                    kinds.push(page::word("kind", word, RecordKind::ALL)?);
                }
            }
            "workflow" => workflows.extend(page::list(value)),
            "limit" => limit = page::limit(value)?,
            "cursor" => cursor = Some(page::decode_seq(value)?),
            other => return Err(ApiError::unknown_parameter(other, &["kind", "workflow", "limit", "cursor"])),
        }
    }
    let found = api.store.records(cursor, limit, |text| {
        let record: Value = serde_json::from_str(text).ok()?;
        let kind_ok = kinds.is_empty() || kinds.iter().any(|k| record["kind"] == k.name());
        let workflow_ok = workflows.is_empty() || workflows.iter().any(|w| record["workflow"] == *w);
        (kind_ok && workflow_ok).then_some(record)
    });
    let page = found.map_err(|e| ApiError::internal("reading the record log", e))?;
    let cursors: Vec<String> = page.items.iter().map(|(seq, _)| page::encode_seq(*seq)).collect();
    let body = RecordPage {
        records: page.items.into_iter().map(|(_, r)| r).collect(),
        next_cursor: page.next.map(page::encode_seq),
    };
    Ok(page::with_item_cursors(&headers, body, || cursors))
}

/// The parameters of `GET /api/v1/dead-letters`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DeadLettersQuery {
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it is.
    #[param(pattern = "^[0-9a-f]{16}$")]
    cursor: Option<String>,
}

/// A message the service rejected, as it came.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterView {
    pub reason: String,
    /// `kafka:topic/partition@offset`, or `http`.
    pub origin: String,
    /// When it was received (RFC 3339).
    pub received: String,
    /// The message (invalid UTF-8 replaced).
    pub text: String,
}

/// A page of dead letters, newest first.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetterView>,
    /// The cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The messages this service rejected, newest first, with the reason.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters",
    tag = "records",
    params(DeadLettersQuery),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 500, description = "The local log cannot be read", body = ErrorBody),
    )
)]
pub async fn dead_letters(
    State(api): State<Api>,
    headers: axum::http::HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(pairs) = query?;
    let (mut limit, mut cursor) = (DEFAULT_LIMIT, None);
    for (name, value) in &pairs {
        match name.as_str() {
            "limit" => limit = page::limit(value)?,
            "cursor" => cursor = Some(page::decode_seq(value)?),
            other => return Err(ApiError::unknown_parameter(other, &["limit", "cursor"])),
        }
    }
    let page = api.store.dead_letters(cursor, limit).map_err(|e| ApiError::internal("reading the dead letters", e))?;
    let cursors: Vec<String> = page.items.iter().map(|(seq, _)| page::encode_seq(*seq)).collect();
    let body = DeadLetterPage {
        dead_letters: page
            .items
            .into_iter()
            .map(|(_, l)| DeadLetterView {
                reason: l.reason,
                origin: l.origin,
                received: mon_stdlib::time::format_rfc3339(l.received),
                text: String::from_utf8_lossy(&l.bytes).into_owned(),
            })
            .collect(),
        next_cursor: page.next.map(page::encode_seq),
    };
    Ok(page::with_item_cursors(&headers, body, || cursors))
}
