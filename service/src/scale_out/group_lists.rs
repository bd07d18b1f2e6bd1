//! The group's lists (`scale_out/group_api.rs`): alerts, records, dead
//! letters, notifications, event search and the audit log merged over
//! every task by time, a page at a time, under a cursor that holds each
//! task's own ([`GroupCursor`]); and a stage's items, merged oldest first.
//!
//! Each task gives the cursor after each item of its page when asked
//! (`mon-item-cursors`, `http/page.rs`), so a page may take part of a
//! task's page and go on from its last item taken.
//!
//! What it must not do: reorder a task's own list, or give an item twice
//! or not at all: it takes from the front of each task's page only.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::front::Front;
use super::group_api::{unanswered, Answer, Question};
use crate::http::error::ApiError;
use crate::http::page::ITEM_CURSORS;

/// How a list endpoint's items are ordered across tasks: by an instant,
/// then a tie-break. Each task keeps its own order (its log's, which
/// follows time but is not bound to it): the merge takes from the front
/// of each task's page only, so nothing is lost or given twice, and the
/// page is in time order wherever the tasks' own orders are.
#[derive(Clone, Copy)]
pub(super) struct Listing {
    /// The field of the page that holds the items.
    pub items: &'static str,
    /// The item's instant (RFC 3339) it is ordered by.
    pub instant: &'static str,
    /// Then this field: an instant too when [`tie_is_instant`](Self::tie_is_instant).
    pub tie: &'static str,
    pub tie_is_instant: bool,
}

pub(super) const ALERTS: Listing = Listing { items: "alerts", instant: "opened_at", tie: "id", tie_is_instant: false };
pub(super) const RECORDS: Listing = Listing { items: "records", instant: "at", tie: "id", tie_is_instant: false };
pub(super) const DEAD_LETTERS: Listing =
    Listing { items: "dead_letters", instant: "received", tie: "origin", tie_is_instant: false };
pub(super) const NOTIFICATIONS: Listing =
    Listing { items: "notifications", instant: "queued_at", tie: "id", tie_is_instant: false };
pub(super) const EVENTS: Listing = Listing { items: "events", instant: "time", tie: "received", tie_is_instant: true };
pub(super) const AUDIT: Listing = Listing { items: "entries", instant: "at", tie: "action", tie_is_instant: false };

/// An item's place in the merge: its instant, its tie-break's instant (or
/// 0), its tie-break's text (or empty).
type Place = (i64, i64, String);

impl Listing {
    fn key(&self, item: &Value) -> Place {
        let instant = |field: &str| item[field].as_str().and_then(mon_stdlib::time::parse_rfc3339).unwrap_or(i64::MIN);
        if self.tie_is_instant {
            return (instant(self.instant), instant(self.tie), String::new());
        }
        let tie = match &item[self.tie] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        (instant(self.instant), 0, tie)
    }
}

/// Where a page of the merged list starts in one task's list.
#[derive(Clone, Debug, PartialEq)]
enum Position {
    /// At its start.
    Start,
    /// After the task's own cursor.
    After(String),
    /// Past its end.
    Done,
}

/// A cursor of a merged list: each partition's [`Position`], as hex (the
/// tasks' cursors are hex themselves), so it is as opaque as theirs.
struct GroupCursor(Vec<Position>);

impl GroupCursor {
    fn encode(&self) -> String {
        let text: Vec<String> = self
            .0
            .iter()
            .map(|p| match p {
                Position::Start => String::new(),
                Position::After(cursor) => cursor.clone(),
                Position::Done => "-".into(),
            })
            .collect();
        text.join(";").bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(hex: &str, partitions: u16) -> Option<GroupCursor> {
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
        let text = String::from_utf8(bytes?).ok()?;
        let positions: Vec<Position> = text
            .split(';')
            .map(|part| match part {
                "" => Position::Start,
                "-" => Position::Done,
                cursor => Position::After(cursor.to_string()),
            })
            .collect();
        (positions.len() == usize::from(partitions)).then_some(GroupCursor(positions))
    }
}

/// One task's page, with the cursor after each of its items.
struct TaskPage {
    items: Vec<Value>,
    cursors: Vec<String>,
    next: Option<String>,
}

fn task_page(listing: Listing, answer: &Answer) -> Option<TaskPage> {
    let json = answer.json()?;
    let items = json.get(listing.items)?.as_array()?.clone();
    let next = json.get("next_cursor").and_then(Value::as_str).map(str::to_string);
    let cursors: Vec<String> = match answer.headers.get(ITEM_CURSORS)?.to_str().ok()? {
        "" => Vec::new(),
        text => text.split(',').map(str::to_string).collect(),
    };
    (cursors.len() == items.len()).then_some(TaskPage { items, cursors, next })
}

/// A list endpoint for the whole group: every task's list, merged in the
/// order they share, a page at a time.
pub(super) async fn merged_list(
    front: Front,
    listing: Listing,
    path: &str,
    headers: HeaderMap,
    query: Vec<(String, String)>,
) -> Response {
    let mut cursor = GroupCursor(vec![Position::Start; usize::from(front.partitions)]);
    let mut limit = crate::http::page::DEFAULT_LIMIT;
    let mut filters = Vec::new();
    for (name, value) in query {
        match name.as_str() {
            "cursor" => match GroupCursor::decode(&value, front.partitions) {
                Some(decoded) => cursor = decoded,
                None => {
                    let message = "cursor: not a cursor this API gave (take `next_cursor` as it is)";
                    return ApiError::invalid("cursor", message).into_response();
                }
            },
            "limit" => match crate::http::page::limit(&value) {
                Ok(n) => limit = n,
                Err(e) => return e.into_response(),
            },
            _ => filters.push((name, value)),
        }
    }
    // The pending notifications go out oldest first, and are listed so;
    // every other list, the failed notifications too, newest first. The
    // last `state` given counts, as for a task.
    let state = filters.iter().rev().find(|(name, _)| name == "state").map(|(_, value)| value.as_str());
    let newest_first = !(listing.items == NOTIFICATIONS.items && state.is_none_or(|s| s == "pending"));
    let mut question = Question::get(path, filters, &headers);
    question.item_cursors = true;
    match merged_page(&front, listing, &question, &cursor, limit, newest_first).await {
        Ok(page) => Json(page).into_response(),
        Err(response) => response,
    }
}

/// One page of the merged list. Each task is asked for `limit` items
/// after its position, with each item's cursor; the page takes the best
/// head among the tasks, one item at a time, so each task's part is a
/// prefix of its own page, and its next position is the cursor of the
/// last item taken from it.
async fn merged_page(
    front: &Front,
    listing: Listing,
    question: &Question,
    cursor: &GroupCursor,
    limit: usize,
    newest_first: bool,
) -> Result<Value, Response> {
    let asks = cursor.0.iter().enumerate().map(|(p, position)| {
        let mut query = question.query.clone();
        query.push(("limit".into(), limit.to_string()));
        if let Position::After(c) = position {
            query.push(("cursor".into(), c.clone()));
        }
        let question = question.with_query(query);
        async move {
            match position {
                Position::Done => Ok(None),
                _ => front.ask_ready(p as u16, &question).await.map(Some),
            }
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut failures = Vec::new();
    let mut pages: Vec<Option<TaskPage>> = Vec::new();
    let mut shape: Option<Value> = None;
    for (p, asked) in answers.into_iter().enumerate() {
        match asked {
            Ok(None) => pages.push(None),
            Ok(Some(answer)) if answer.status.is_success() => {
                match task_page(listing, &answer) {
                    Some(page) => pages.push(Some(page)),
                    None => {
                        failures
                            .push(format!("task {p}: an answer that is not a page of {} with cursors", listing.items));
                        pages.push(None);
                    }
                }
                shape = shape.or_else(|| answer.json());
            }
            // The same question is refused by every task alike (a 400, a 401).
            Ok(Some(answer)) => return Err(answer.into_response()),
            Err(why) => {
                failures.push(why);
                pages.push(None);
            }
        }
    }
    if !failures.is_empty() {
        return Err(unanswered(&failures));
    }
    let better = |a: &Place, b: &Place| if newest_first { a > b } else { a < b };
    let mut heads = vec![0usize; pages.len()];
    let mut taken: Vec<Value> = Vec::new();
    'merge: while taken.len() < limit {
        let mut best: Option<(usize, Place)> = None;
        for (p, page) in pages.iter().enumerate() {
            let Some(page) = page else { continue };
            match page.items.get(heads[p]) {
                Some(item) => {
                    let key = listing.key(item);
                    if best.as_ref().is_none_or(|(_, b)| better(&key, b)) {
                        best = Some((p, key));
                    }
                }
                // Its page is used up and it has more: the merge cannot
                // know what comes next from it.
                None if page.next.is_some() => break 'merge,
                None => {}
            }
        }
        let Some((p, _)) = best else { break };
        if let Some(page) = &pages[p] {
            taken.push(page.items[heads[p]].clone());
        }
        heads[p] += 1;
    }
    let next: Vec<Position> = pages
        .iter()
        .zip(&cursor.0)
        .zip(&heads)
        .map(|((page, position), &used)| match page {
            None => Position::Done,
            Some(page) if used == page.items.len() => match &page.next {
                Some(c) => Position::After(c.clone()),
                None => Position::Done,
            },
            Some(_) if used == 0 => position.clone(),
            Some(page) => Position::After(page.cursors[used - 1].clone()),
        })
        .collect();
    let next_cursor = next.iter().any(|p| *p != Position::Done).then(|| GroupCursor(next).encode());
    let mut page = shape.unwrap_or_else(|| serde_json::json!({}));
    if let Value::Object(fields) = &mut page {
        fields.insert(listing.items.to_string(), Value::Array(taken));
        fields.insert("next_cursor".to_string(), next_cursor.map(Value::String).unwrap_or(Value::Null));
    }
    Ok(page)
}

/// `GET /api/v1/workflows/{w}/stages/{s}/items`: every task's oldest
/// items, merged oldest first, `in_stage` summed over the tasks, on the
/// latest of their clocks.
pub(super) async fn stage_items(
    State(front): State<Front>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut limit = crate::http::page::DEFAULT_LIMIT;
    for (name, value) in &query {
        if name == "limit" {
            match crate::http::page::limit(value) {
                Ok(n) => limit = n,
                Err(e) => return e.into_response(),
            }
        }
    }
    let question = Question::get(uri.path(), query, &headers);
    let pages: Vec<Value> = match front.json_of_every(&question).await {
        Ok(answers) => answers.into_iter().map(|(_, page)| page).collect(),
        Err(response) => return response,
    };
    let Some(mut merged) = pages.first().cloned() else { return unanswered(&["no task answered".into()]) };
    let in_stage: u64 = pages.iter().filter_map(|p| p["in_stage"].as_u64()).sum();
    let latest_clock = pages
        .iter()
        .filter_map(|p| p["clock"].as_str())
        .max_by_key(|c| mon_stdlib::time::parse_rfc3339(c).unwrap_or(i64::MIN))
        .map(str::to_string);
    let mut items: Vec<Value> = pages.iter().flat_map(|p| p["items"].as_array().cloned().unwrap_or_default()).collect();
    let entered = |item: &Value| item["entered_at"].as_str().and_then(mon_stdlib::time::parse_rfc3339);
    items.sort_by(|a, b| (entered(a), a["key"].as_str()).cmp(&(entered(b), b["key"].as_str())));
    items.truncate(limit);
    let Some(fields) = merged.as_object_mut() else {
        return unanswered(&["a task's answer is not a stage's items".into()]);
    };
    fields.insert("in_stage".into(), in_stage.into());
    fields.insert("items".into(), Value::Array(items));
    if let Some(clock) = latest_clock {
        fields.insert("clock".into(), clock.into());
    }
    Json(merged).into_response()
}

/// The partitions whose position a cursor holds, for a test's eyes.
#[cfg(test)]
fn positions(hex: &str, partitions: u16) -> Option<Vec<Position>> {
    GroupCursor::decode(hex, partitions).map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_cursor_round_trips_and_a_foreign_one_is_refused() {
        let cursor = GroupCursor(vec![Position::Start, Position::After("00000000000000ff".into()), Position::Done]);
        let hex = cursor.encode();
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
        assert_eq!(positions(&hex, 3), Some(cursor.0.clone()));
        assert_eq!(positions(&hex, 4), None, "a cursor of a group of another size");
        assert_eq!(positions("zz", 3), None);
        assert_eq!(positions("abc", 3), None);
    }

    #[test]
    fn an_item_is_ordered_by_its_instant_then_its_tie_break() {
        let early = serde_json::json!({ "at": "2026-12-07T08:00:00Z", "id": "b" });
        let late = serde_json::json!({ "at": "2026-12-07T08:00:00.001Z", "id": "a" });
        let same_instant = serde_json::json!({ "at": "2026-12-07T08:00:00.000Z", "id": "c" });
        assert!(RECORDS.key(&late) > RECORDS.key(&early), "by instant first, whatever the text");
        assert!(RECORDS.key(&same_instant) > RECORDS.key(&early), "then by the tie-break");
    }
}
