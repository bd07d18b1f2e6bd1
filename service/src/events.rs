//! The event store: every event the service accepted (and every message it
//! rejected), kept for search (`GET /api/v1/events`) and for replaying one
//! item's lifecycle (`GET /api/v1/workflows/{workflow}/items/{key}`),
//! under its own retention (`[retention] events`).
//!
//! Events are written by [`Store::commit`](crate::store::Store::commit) in
//! the same atomic sled batch as the records and offsets their batch made
//! (ARCHITECTURE.md rule 3): a crash can neither keep an event whose
//! effects were lost nor lose one whose effects were kept, and the journal
//! replay writes both again. What is stored is the decoded event: `pii`
//! fields hold the decoder's hash, never the value (LANGUAGE.md §2), so
//! equal values still compare equal in a replay. A rejected message is
//! indexed with its reason and whatever type, id and time could be read;
//! its bytes stay in the dead-letter log only.
//!
//! Keys in sled's default tree, beside the store's own (`store.rs`), all
//! ending in the event's time (big-endian, sign bit flipped so negative
//! instants sort first) and its sequence (arrival order):
//! - `e` time seq → the [`StoredEvent`] (JSON): the primary log;
//! - `t` type time seq → nothing: by type (the name, length-prefixed, so
//!   undeclared and rejected types are found too);
//! - `k` workflow key time seq → nothing: by item, the (workflow, key)
//!   pairs [`mon_runtime::engine::item_keys`] gives, which are the engine's;
//! - `x` time seq → nothing: the rejected ones;
//! - `m/events` → the next sequence.
//!
//! This module must not decide what an event means: keys come from the
//! runtime, and a search answers from stored data only.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mon_compiler::ir::{self, Program, Value};
use mon_runtime::engine::{display, item_keys};
use mon_runtime::Event;
use serde::{Deserialize, Serialize};

use crate::error::{Domain, Error};
use crate::store::DeadLetter;

const PRIMARY: u8 = b'e';
const BY_TYPE: u8 = b't';
const BY_ITEM: u8 = b'k';
const REJECTED: u8 = b'x';
pub(crate) const NEXT_SEQ: &[u8] = b"m/events";

pub use crate::config::RetentionConfig;

/// One event as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: String,
    /// The event type's name; empty for a rejected message without one.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The event's time, ms; for a rejected message without a readable
    /// time, when it was received.
    pub time: i64,
    /// When the service received it (wall clock, ms).
    pub received: i64,
    /// Declared fields by name; `pii` ones hold the decoder's hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<(String, Value)>,
    /// The items it names: (workflow, key as the engine builds it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejected>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub reason: String,
    /// `kafka:topic/partition@offset`, `http` or `journal`.
    pub origin: String,
}

impl StoredEvent {
    /// An accepted event as kept.
    pub fn accepted(program: &Program, event: &Event, received: i64) -> StoredEvent {
        let declared = program.events.get(event.event_type as usize);
        let data = declared
            .map(|d| {
                d.fields
                    .iter()
                    .filter_map(|f| {
                        let value = event.fields.get(f.slot as usize)?;
                        (*value != Value::Null).then(|| (f.name.clone(), value.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let items = item_keys(program, event)
            .into_iter()
            .filter_map(|(w, key)| Some((program.workflows.get(w as usize)?.name.clone(), key)))
            .collect();
        StoredEvent {
            id: event.id.to_string(),
            type_name: declared.map(|d| d.name.clone()).unwrap_or_default(),
            time: event.time,
            received,
            data,
            items,
            rejected: None,
        }
    }

    /// A rejected message as kept: what of its envelope could be read, and
    /// the reason; never its data.
    pub fn rejected(letter: &DeadLetter) -> StoredEvent {
        #[derive(Deserialize)]
        struct Attributes<'a> {
            #[serde(rename = "type", borrow)]
            type_name: Option<Cow<'a, str>>,
            #[serde(borrow)]
            id: Option<Cow<'a, str>>,
            #[serde(borrow)]
            time: Option<Cow<'a, str>>,
        }
        let attributes = serde_json::from_slice::<Attributes>(&letter.bytes).ok();
        let (type_name, id, time) = match &attributes {
            Some(a) => (a.type_name.as_deref(), a.id.as_deref(), a.time.as_deref()),
            None => (None, None, None),
        };
        let time = time.and_then(mon_stdlib::time::parse_rfc3339).unwrap_or(letter.received);
        StoredEvent {
            id: id.unwrap_or_default().to_string(),
            type_name: type_name.unwrap_or_default().to_string(),
            time,
            received: letter.received,
            data: Vec::new(),
            items: Vec::new(),
            rejected: Some(Rejected { reason: letter.reason.clone(), origin: letter.origin.clone() }),
        }
    }

    /// The event again, for the current program: `None` for a rejected one
    /// or a type the rules no longer declare. A field no longer declared is
    /// dropped; one newly declared is absent.
    pub fn to_event(&self, program: &Program) -> Option<Event> {
        if self.rejected.is_some() {
            return None;
        }
        let declared = program.events.iter().find(|e| e.name == self.type_name)?;
        let mut fields = vec![Value::Null; declared.fields.len()];
        for (name, value) in &self.data {
            if let Some(field) = declared.fields.iter().find(|f| &f.name == name) {
                if let Some(slot) = fields.get_mut(field.slot as usize) {
                    *slot = value.clone();
                }
            }
        }
        Some(Event { id: self.id.as_str().into(), event_type: declared.id, time: self.time, fields })
    }

    /// A field's value as the API shows and matches it; `None` for an
    /// absent field, a `pii` one, or one the rules no longer declare.
    pub fn field(&self, program: &Program, name: &str) -> Option<String> {
        let field = declared_field(program, &self.type_name, name)?;
        let (_, value) = self.data.iter().find(|(n, _)| n == name)?;
        Some(display(value, &field.ty))
    }
}

/// A declared, non-`pii` field of an event type.
pub fn declared_field<'p>(program: &'p Program, type_name: &str, name: &str) -> Option<&'p ir::Field> {
    let declared = program.events.iter().find(|e| e.name == type_name)?;
    declared.fields.iter().find(|f| f.name == name && !f.pii)
}

/// An instant as a key part: big-endian with the sign bit flipped, so that
/// byte order is time order.
fn time_bytes(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(bytes: &[u8]) -> i64 {
    bytes.try_into().map_or(0, |b: [u8; 8]| (u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

/// A position in the time order: (time, sequence).
pub type Position = (i64, u64);

fn position_bytes((time, seq): Position) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&time_bytes(time));
    out[8..].copy_from_slice(&seq.to_be_bytes());
    out
}

/// The position a key ends with.
fn position_of(key: &[u8]) -> Position {
    let tail = key.len().saturating_sub(16);
    let seq = key.get(tail + 8..).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
    (time_of(key.get(tail..tail + 8).unwrap_or_default()), seq)
}

fn type_prefix(type_name: &str) -> Vec<u8> {
    let mut key = vec![BY_TYPE];
    key.extend_from_slice(&(type_name.len() as u16).to_be_bytes());
    key.extend_from_slice(type_name.as_bytes());
    key
}

/// The index prefix of one item; lengths first, so one key is never the
/// prefix of another.
pub fn item_prefix(workflow: &str, key: &str) -> Vec<u8> {
    let mut out = vec![BY_ITEM];
    out.extend_from_slice(&(workflow.len() as u16).to_be_bytes());
    out.extend_from_slice(workflow.as_bytes());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

fn with_position(prefix: &[u8], position: Position) -> Vec<u8> {
    [prefix, &position_bytes(position)].concat()
}

/// Every key an event is filed under: the primary one first.
fn keys_of(event: &StoredEvent, seq: u64) -> Vec<Vec<u8>> {
    let position = (event.time, seq);
    let mut keys = vec![with_position(&[PRIMARY], position)];
    if !event.type_name.is_empty() {
        keys.push(with_position(&type_prefix(&event.type_name), position));
    }
    for (workflow, key) in &event.items {
        keys.push(with_position(&item_prefix(workflow, key), position));
    }
    if event.rejected.is_some() {
        keys.push(with_position(&[REJECTED], position));
    }
    keys
}

/// Adds `events` to `write`, numbered from `next`; the caller writes
/// `next` (at [`NEXT_SEQ`]) in the same batch.
pub fn add(write: &mut sled::Batch, next: &mut u64, events: &[StoredEvent]) -> Result<(), Error> {
    for event in events {
        let bytes = serde_json::to_vec(event)
            .map_err(|e| Error::damaged(Domain::Store, "cannot encode an event").caused_by(e))?;
        let mut keys = keys_of(event, *next).into_iter();
        if let Some(primary) = keys.next() {
            write.insert(primary, bytes);
        }
        for index in keys {
            write.insert(index, &[]);
        }
        *next += 1;
    }
    Ok(())
}

/// The sequence the next event gets, as stored.
pub fn next_seq(db: &sled::Db) -> Result<u64, Error> {
    Ok(db.get(NEXT_SEQ)?.and_then(|v| v.as_ref().try_into().ok()).map_or(0, u64::from_be_bytes))
}

/// What a search asks for; every part optional, combined with "and".
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub type_name: Option<String>,
    /// Events that name an item of this workflow.
    pub workflow: Option<String>,
    /// Events that name an item with this key (as the engine builds it);
    /// with `workflow`, that one item (found by its index).
    pub key: Option<String>,
    /// Event time, inclusive, ms.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// (field, value): the field's value as shown equals `value`.
    pub fields: Vec<(String, String)>,
    pub rejected: Option<bool>,
    /// Strictly older than this position (the previous page's last).
    pub before: Option<Position>,
    pub limit: usize,
}

/// A page of events, newest first, with the position to go on from.
#[derive(Debug)]
pub struct Found {
    pub events: Vec<(Position, StoredEvent)>,
    pub next: Option<Position>,
}

/// Reads the store; any thread may, while the processing thread writes.
#[derive(Clone)]
pub struct EventStore {
    db: sled::Db,
}

impl EventStore {
    pub fn new(db: sled::Db) -> EventStore {
        EventStore { db }
    }

    /// Events matching `search`, newest first (by event time, then arrival).
    /// It walks the narrowest index the search names: the item's, the
    /// type's, the rejected ones', or else the whole log; each within the
    /// time range.
    pub fn search(&self, program: &Program, search: &Search) -> Result<Found, Error> {
        let item = search.workflow.as_ref().zip(search.key.as_ref());
        let prefix = match (item, &search.type_name, search.rejected) {
            (Some((workflow, key)), _, _) => item_prefix(workflow, key),
            (None, Some(type_name), _) => type_prefix(type_name),
            (None, None, Some(true)) => vec![REJECTED],
            (None, None, _) => vec![PRIMARY],
        };
        let low = with_position(&prefix, (search.from.unwrap_or(i64::MIN), 0));
        let high = with_position(&prefix, (search.to.unwrap_or(i64::MAX), u64::MAX));
        let mut found = Found { events: Vec::new(), next: None };
        // Strictly before the cursor: its own event was on the last page.
        let range = match search.before.map(|b| with_position(&prefix, b)) {
            Some(before) if before <= high => self.db.range(low..before),
            _ => self.db.range(low..=high),
        };
        for entry in range.rev() {
            let (key, value) = entry?;
            let position = position_of(&key);
            let decoded = if prefix == [PRIMARY] {
                decode(&key, &value)
            } else {
                let primary = with_position(&[PRIMARY], position);
                // An index entry whose event the purge just removed.
                let Some(bytes) = self.db.get(&primary)? else { continue };
                decode(&primary, &bytes)
            };
            // A damaged entry cannot be shown, and must not hide the others.
            let Ok(event) = decoded else { continue };
            if !matches(program, search, &event) {
                continue;
            }
            if found.events.len() == search.limit {
                found.next = found.events.last().map(|(p, _)| *p);
                break;
            }
            found.events.push((position, event));
        }
        Ok(found)
    }

    /// Every stored event of one item, in arrival order: what a replay of
    /// its lifecycle feeds the engine.
    pub fn of_item(&self, workflow: &str, key: &str) -> Result<Vec<StoredEvent>, Error> {
        let mut events = Vec::new();
        for entry in self.db.scan_prefix(item_prefix(workflow, key)) {
            let (index, _) = entry?;
            let position = position_of(&index);
            let primary = with_position(&[PRIMARY], position);
            if let Some(Ok(event)) = self.db.get(&primary)?.map(|bytes| decode(&primary, &bytes)) {
                events.push((position.1, event));
            }
        }
        // Why by sequence: the live engine saw them in arrival order, which
        // is not time order when an event comes late.
        events.sort_by_key(|(seq, _)| *seq);
        Ok(events.into_iter().map(|(_, e)| e).collect())
    }

    /// Deletes up to `max` events older than `cutoff` (event time, ms),
    /// with their index entries, oldest first; returns how many. Not
    /// flushed: after a crash a purged event may come back until the next
    /// purge, which is harmless.
    pub fn purge(&self, cutoff: i64, max: usize) -> Result<usize, Error> {
        let low = with_position(&[PRIMARY], (i64::MIN, 0));
        let high = with_position(&[PRIMARY], (cutoff, 0));
        let mut write = sled::Batch::default();
        let mut purged = 0;
        for entry in self.db.range(low..high).take(max) {
            let (key, value) = entry?;
            let (_, seq) = position_of(&key);
            match decode(&key, &value) {
                Ok(event) => {
                    for index in keys_of(&event, seq) {
                        write.remove(index);
                    }
                }
                // A damaged entry cannot name its indexes; a search skips
                // those whose event is gone.
                Err(_) => write.remove(key),
            }
            purged += 1;
        }
        if purged > 0 {
            self.db.apply_batch(write)?;
        }
        Ok(purged)
    }
}

/// Events purged per sled batch: bounds the time one purge step holds a
/// worker thread, and the size of its batch.
const PURGE_CHUNK: usize = 10_000;

/// Runs until `stop`: about four times per retention (at least every 100
/// ms, at most every minute), deletes the events older than `retention_ms`
/// before `clock()` (the service's clock; `None` before it has one). On a
/// blocking thread, chunk by chunk: it never holds the processing thread,
/// which keeps writing while it runs.
pub async fn purge_old(
    store: EventStore,
    retention_ms: u64,
    clock: impl Fn() -> Option<i64> + Send + Sync + 'static,
    stop: Arc<AtomicBool>,
) {
    let period = Duration::from_millis((retention_ms / 4).clamp(100, 60_000));
    let clock = Arc::new(clock);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(period).await;
        let Some(now) = clock() else { continue };
        let cutoff = now.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX));
        loop {
            let store = store.clone();
            let purged = tokio::task::spawn_blocking(move || store.purge(cutoff, PURGE_CHUNK)).await;
            match purged {
                Ok(Ok(n)) if n == PURGE_CHUNK && !stop.load(Ordering::Relaxed) => continue,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "purging old events failed; trying again later");
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<StoredEvent, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        let (time, seq) = position_of(key);
        Error::damaged(Domain::Store, format!("stored event {seq} (time {time}) is damaged")).caused_by(e)
    })
}

fn matches(program: &Program, search: &Search, event: &StoredEvent) -> bool {
    let type_ok = search.type_name.as_ref().is_none_or(|t| *t == event.type_name);
    let item_ok = search.workflow.is_none() && search.key.is_none()
        || event.items.iter().any(|(w, k)| {
            search.workflow.as_ref().is_none_or(|sw| sw == w) && search.key.as_ref().is_none_or(|sk| sk == k)
        });
    let rejected_ok = search.rejected.is_none_or(|r| r == event.rejected.is_some());
    let fields_ok = search.fields.iter().all(|(name, value)| event.field(program, name).as_deref() == Some(value));
    let time_ok = search.from.is_none_or(|f| event.time >= f) && search.to.is_none_or(|t| event.time <= t);
    type_ok && item_ok && rejected_ok && fields_ok && time_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_sort_in_time_order_and_round_trip() {
        let instants = [i64::MIN, -1_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let keys: Vec<Vec<u8>> = instants.iter().map(|t| with_position(&[PRIMARY], (*t, 7))).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (t, k) in instants.iter().zip(&keys) {
            assert_eq!(position_of(k), (*t, 7));
        }
    }

    #[test]
    fn one_item_prefix_is_never_the_prefix_of_another() {
        assert!(!item_prefix("w", "T-1").starts_with(&item_prefix("w", "T-")));
        assert!(!item_prefix("w", "T-10").starts_with(&item_prefix("w", "T-1")));
    }

    #[test]
    fn retention_reads_durations_and_zero_means_off() {
        let retention = |text: &str| RetentionConfig { events: text.into(), ..RetentionConfig::default() }.events_ms();
        assert_eq!(retention("14d"), Ok(Some(14 * 86_400_000)));
        assert_eq!(retention("90m"), Ok(Some(5_400_000)));
        assert_eq!(retention("0"), Ok(None));
        assert!(retention("two weeks").is_err());
    }
}
