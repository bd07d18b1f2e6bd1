//! `GET /api/v1/events`: search the event store (`crate::events`) by type,
//! item, time range, field values and rejected or not, newest first, a
//! page at a time.
//!
//! A `pii` field is never shown and never searchable: a search on one is
//! a 400, since a match would confirm a value the service must not keep.
//! The cursor is a position in the time order (event time, then arrival),
//! so events stored since the previous page cannot shift the next.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use mon_compiler::ir::{Program, Value};
use mon_runtime::engine::{display, key_object};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::page::{self, DEFAULT_LIMIT};
use super::Api;
use crate::events::{declared_field, Position, Search, StoredEvent};

/// The parameters of `GET /api/v1/events`, all optional, combined with "and".
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventsQuery {
    /// Only events of this type.
    #[param(rename = "type")]
    type_name: Option<String>,
    /// Only events that name an item of this workflow (with `key`: that
    /// item, found by its index).
    workflow: Option<String>,
    /// Only events that name an item with this key (compound keys as `A,B`;
    /// a scheduled workflow's occurrence as its date).
    key: Option<String>,
    /// Only events at or after this instant (event time).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only events at or before this instant (event time).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `name:value`: only events whose top-level field `name` shows
    /// `value` exactly; repeat it for several (all must hold). A `pii`
    /// field is refused (400).
    #[param(pattern = ":")]
    field: Option<String>,
    /// Only rejected messages (`true`) or only accepted events (`false`).
    rejected: Option<bool>,
    /// At most this many events (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it is.
    #[param(pattern = "^[0-9a-f]{32}$")]
    cursor: Option<String>,
}

/// An event as stored.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    /// The envelope's `id` (empty for a rejected message without one).
    pub id: String,
    /// The event type (empty for a rejected message without one).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The event's time (RFC 3339); a rejected message without a readable
    /// time has the time it was received.
    pub time: String,
    /// When the service received it (RFC 3339).
    pub received: String,
    pub rejected: bool,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// Where a rejected message came from: `kafka:topic/partition@offset`, `http`.
    pub origin: Option<String>,
    /// The declared fields, without `pii` ones.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// The items the event names, one per workflow its type can move.
    pub items: Vec<ItemRef>,
}

/// An item an event names.
#[derive(Serialize, ToSchema)]
pub struct ItemRef {
    pub workflow: String,
    /// Key field names to values (`date` for a scheduled workflow).
    pub key: BTreeMap<String, String>,
}

/// A page of events, newest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// The cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

const PARAMETERS: &[&str] = &["type", "workflow", "key", "from", "to", "field", "rejected", "limit", "cursor"];

/// The events this service received, newest first, from its event store.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A parameter is wrong; `details.field` names it", body = ErrorBody),
        (status = 404, description = "The event store is off (`[retention] events = \"0\"`)", body = ErrorBody),
        (status = 500, description = "The event store cannot be read", body = ErrorBody),
    )
)]
pub async fn search(
    State(api): State<Api>,
    headers: axum::http::HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(pairs) = query?;
    let program = api.program();
    let search = parse(&program, &pairs)?;
    if !api.event_store {
        return Err(ApiError::not_found(
            "the event store is off (`[retention] events = \"0\"`)",
            serde_json::json!({ "store": "events" }),
        ));
    }
    let found = api.store.events().search(&program, &search).map_err(|e| ApiError::internal("searching events", e))?;
    let body = EventPage {
        events: found.events.iter().map(|(_, e)| view(&program, e)).collect(),
        next_cursor: found.next.map(encode_cursor),
    };
    Ok(page::with_item_cursors(&headers, body, || found.events.iter().map(|(at, _)| encode_cursor(*at)).collect()))
}

fn parse(program: &Program, pairs: &[(String, String)]) -> Result<Search, ApiError> {
    let mut search = Search { limit: DEFAULT_LIMIT, ..Search::default() };
    let mut fields = Vec::new();
    let instant = |name: &str, value: &str| {
        mon_stdlib::time::parse_rfc3339(value)
            .ok_or_else(|| ApiError::invalid(name, format!("{name}: `{value}` is not an RFC 3339 instant")))
    };
    for (name, value) in pairs {
        match name.as_str() {
            "type" => search.type_name = Some(value.clone()),
            "workflow" => search.workflow = Some(value.clone()),
            "key" => search.key = Some(engine_key(value)),
            "from" => search.from = Some(instant("from", value)?),
            "to" => search.to = Some(instant("to", value)?),
            "field" => fields.push(value.as_str()),
            "rejected" => {
                search.rejected = Some(match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::invalid("rejected", format!("rejected: `{value}` is not true or false")))
                    }
                })
            }
            "limit" => search.limit = page::limit(value)?,
            "cursor" => search.before = Some(decode_cursor(value)?),
            other => return Err(ApiError::unknown_parameter(other, PARAMETERS)),
        }
    }
    for text in fields {
        search.fields.push(field_filter(program, text)?);
    }
    Ok(search)
}

/// `name:value`. A field some event type declares `pii` is refused; one no
/// type declares matches nothing, as an unknown workflow does.
fn field_filter(program: &Program, text: &str) -> Result<(String, String), ApiError> {
    let Some((name, value)) = text.split_once(':') else {
        return Err(ApiError::invalid("field", format!("field: `{text}` is not `name:value`")));
    };
    let pii = program.events.iter().flat_map(|e| &e.fields).any(|f| f.name == name && f.pii);
    if pii {
        return Err(ApiError::invalid("field", format!("field: `{name}` is pii: it is never stored or searchable")));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A key as the API takes it (`A,B`) as the engine builds it (U+001F).
pub fn engine_key(key: &str) -> String {
    key.split(',').map(str::trim).collect::<Vec<_>>().join("\u{1f}")
}

fn view(program: &Program, event: &StoredEvent) -> EventView {
    let data = event
        .data
        .iter()
        .filter_map(|(name, value)| {
            let field = declared_field(program, &event.type_name, name)?;
            let json = match value {
                Value::Bool(b) => serde_json::Value::Bool(*b),
                Value::Int(i) => serde_json::Value::from(*i),
                Value::Float(f) => serde_json::Value::from(*f),
                other => serde_json::Value::String(display(other, &field.ty)),
            };
            Some((name.clone(), json))
        })
        .collect();
    let items = event
        .items
        .iter()
        .map(|(workflow, key)| ItemRef {
            workflow: workflow.clone(),
            key: match program.workflows.iter().find(|w| &w.name == workflow) {
                Some(w) => key_object(w, key),
                None => BTreeMap::from([("key".to_string(), key.clone())]),
            },
        })
        .collect();
    EventView {
        id: event.id.clone(),
        type_name: event.type_name.clone(),
        time: mon_stdlib::time::format_rfc3339(event.time),
        received: mon_stdlib::time::format_rfc3339(event.received),
        rejected: event.rejected.is_some(),
        reason: event.rejected.as_ref().map(|r| r.reason.clone()),
        origin: event.rejected.as_ref().map(|r| r.origin.clone()),
        data,
        items,
    }
}

/// The position as 32 hex digits: the time's, then the sequence's.
fn encode_cursor((time, seq): Position) -> String {
    format!("{}{}", page::encode_seq((time as u64) ^ (1 << 63)), page::encode_seq(seq))
}

fn decode_cursor(text: &str) -> Result<Position, ApiError> {
    let bad = || ApiError::invalid("cursor", "cursor: not a cursor this API gave (take `next_cursor` as it is)");
    let (time, seq) = (text.get(..16).ok_or_else(bad)?, text.get(16..).ok_or_else(bad)?);
    let time = page::decode_seq(time).map_err(|_| bad())?;
    Ok(((time ^ (1 << 63)) as i64, page::decode_seq(seq).map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_a_400() {
        for position in [(0, 0), (-5, 3), (1_700_000_000_000, u64::MAX), (i64::MIN, 1)] {
            assert_eq!(decode_cursor(&encode_cursor(position)).ok(), Some(position));
        }
        for bad in ["", "00", &"0".repeat(31), &"0".repeat(33), &"g".repeat(32)] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
