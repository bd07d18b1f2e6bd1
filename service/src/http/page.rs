//! What every list endpoint shares: `limit`, the opaque `cursor`, and the
//! rule that an unknown query parameter is a 400 naming it.
//!
//! A cursor is a position in the list, never an offset: what was added
//! since the previous page cannot shift the next one. For the sled logs
//! (records, dead letters, notifications) it is the sequence number of the
//! last entry given, as 16 hex digits; clients take `next_cursor` as it is.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;

/// Asked for by a scale-out front (any value), and answered with: the
/// cursor after each item of the page, in order, comma-separated. A
/// front merging the tasks' lists takes part of a task's page, and goes
/// on after the last item it took (`scale_out/group_api.rs`).
pub const ITEM_CURSORS: &str = "mon-item-cursors";

/// `page` as JSON, with [`ITEM_CURSORS`] when the caller asked for it.
pub fn with_item_cursors(
    asked: &HeaderMap,
    page: impl serde::Serialize,
    cursors: impl FnOnce() -> Vec<String>,
) -> Response {
    let mut response = Json(page).into_response();
    if asked.contains_key(ITEM_CURSORS) {
        if let Ok(value) = HeaderValue::from_str(&cursors().join(",")) {
            response.headers_mut().insert(ITEM_CURSORS, value);
        }
    }
    response
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// `limit`: 1 to [`MAX_LIMIT`].
pub fn limit(value: &str) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid("limit", format!("limit: `{value}` is not a number from 1 to {MAX_LIMIT}"))),
    }
}

pub fn encode_seq(seq: u64) -> String {
    format!("{seq:016x}")
}

/// A sequence cursor, or a 400 naming `cursor`.
pub fn decode_seq(text: &str) -> Result<u64, ApiError> {
    let well_formed = text.len() == 16 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .ok_or_else(|| ApiError::invalid("cursor", "cursor: not a cursor this API gave (take `next_cursor` as it is)"))
}

/// A word of one of the language's vocabularies (`RecordKind::ALL`,
/// `Severity::ALL`...), or a 400 naming `field` and the words it takes.
pub fn word<T: Copy>(field: &str, word: &str, all: &[(&'static str, T)]) -> Result<T, ApiError> {
    all.iter().find(|(w, _)| *w == word).map(|(_, v)| *v).ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|(w, _)| *w).collect();
        ApiError::invalid(field, format!("{field}: unknown `{word}`; expected one of {}", known.join(", ")))
    })
}

/// The values of a parameter that takes a comma list and may be repeated
/// (`kind=late,missing` or `kind=late&kind=missing`). An empty word is
/// kept: for a parameter of known words it is a 400, not "no filter".
pub fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_a_400() {
        assert_eq!(decode_seq(&encode_seq(42)).ok(), Some(42));
        assert_eq!(decode_seq(&encode_seq(u64::MAX)).ok(), Some(u64::MAX));
        for bad in ["", "42", "zzzzzzzzzzzzzzzz", "000000000000002A", "00000000000000000"] {
            let error = decode_seq(bad).err().map(|e| e.details);
            assert_eq!(error, Some(serde_json::json!({ "field": "cursor" })), "{bad}");
        }
    }

    #[test]
    fn limit_is_bounded() {
        assert_eq!(limit("1").ok(), Some(1));
        assert_eq!(limit("1000").ok(), Some(1000));
        assert!(limit("0").is_err() && limit("1001").is_err() && limit("-1").is_err() && limit("x").is_err());
    }
}
