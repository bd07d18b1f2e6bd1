//! Durable state in sled: the outbox, the record and dead-letter logs, the
//! consumed Kafka offsets, and which journal entry they belong to.
//!
//! Everything one batch leaves behind goes into one tree with one atomic
//! `apply_batch`, then one `flush` (fsync), after the batch's inputs were
//! journaled (`journal.rs`) and before anything leaves the process: that is
//! ARCHITECTURE.md rule 3, with the state change held by the journal.
//!
//! Keys in the default tree: `o`+seq outbox item, `r`+seq record (JSON),
//! `d`+seq dead letter, `m/offsets` consumed offsets, `m/applied` the last
//! journal entry whose outputs are here, `m/clock` the clock the state was
//! made on, `m/tasks` how it is split (one state, or one per partition of
//! n: `processor::tasks`), `um`/`uh` trend rollup rows by minute and hour
//! (`rollups.rs`).
//! Sequences are big-endian so keys sort in order.
//!
//! Notifications of the alert book ([`NotificationEntry`], JSON) keep one
//! sequence for their whole life and change prefix as they go: `n`+seq
//! pending (written by the processor in the batch that made it), then
//! either `s`+seq sent (the receiver accepted it) or `f`+seq failed (the
//! receiver refused it for good); `i/`+notification id → seq finds one by
//! its id. The move from `n` to `s` or `f` is one atomic batch written by
//! the delivery task (`delivery.rs`), not flushed: after a crash the item
//! may be pending again and is sent again with the same id, which the
//! receiver drops. Sent and failed ones are trimmed like records.
//!
//! A state rebuilt from the Kafka changelog (`changelog.rs`) starts with
//! a fresh sled: [`Store::restore_outputs`] puts back the outbox and the
//! pending notifications the changelog's snapshot carried, and
//! [`Store::settle_by_marks`] makes every notification the lost process
//! had already delivered arrive here as sent (or failed), never pending,
//! so the delivery task does not send it again; [`Store::replace_rollups`]
//! makes the trend rollups the snapshot's. The record and dead-letter
//! logs are refilled from Kafka beside the processing (`refill.rs`), below
//! the numbers the live entries take from then on.
//!
//! The event store is not in sled: it keeps its own segment files under
//! `<state_dir>/events/` (`events/`); the store only opens it and hands it
//! to the processor and the API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Domain, Error};
use crate::events::EventStore;
use mon_runtime::alerts::Notification;
use mon_runtime::live::ClockMode;

const OUTBOX: u8 = b'o';
const RECORDS: u8 = b'r';
const DEAD_LETTERS: u8 = b'd';
const OFFSETS: &[u8] = b"m/offsets";
const APPLIED: &[u8] = b"m/applied";
const CLOCK: &[u8] = b"m/clock";
/// How the state is split: `one`, or the partition count it is kept per
/// (`processor::tasks`); absent in a state made before there was a choice.
const TASKS: &[u8] = b"m/tasks";
const PENDING: u8 = b'n';
const SENT: u8 = b's';
const FAILED: u8 = b'f';
const BY_ID: &[u8] = b"i/";

/// Next offset to consume, per (topic, partition).
pub type Offsets = BTreeMap<(String, i32), i64>;

pub struct Store {
    db: sled::Db,
    /// Next sequence of the outbox, records, dead letters and notifications.
    next: [u64; 4],
    dir: PathBuf,
    /// The event store ([`EventStore::off`] unless turned on).
    events: EventStore,
    /// Notification id → how a process before a restore from the
    /// changelog settled it ([`Store::settle_by_marks`]).
    settled_elsewhere: std::collections::HashMap<String, Settled>,
}

/// The outbox items and pending notifications, as stored (for a snapshot
/// in the changelog).
pub struct Undelivered {
    pub outbox: Vec<Vec<u8>>,
    pub notifications: Vec<Vec<u8>>,
}

/// How a notification's delivery ended, as the changelog's mark says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// True: the receiver accepted it; false: it refused it for good.
    pub sent: bool,
    /// When (wall clock, ms).
    pub at: i64,
}

/// A notification in the outbox, with what its delivery has met so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotificationEntry {
    pub notification: Notification,
    /// When it was written to the outbox (wall clock, ms).
    pub queued_at: i64,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<i64>,
    /// When it is tried again, after a failure that may pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// When it was accepted or refused for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<i64>,
}

impl NotificationEntry {
    pub fn new(notification: Notification, queued_at: i64) -> Self {
        NotificationEntry {
            notification,
            queued_at,
            attempts: 0,
            last_error: None,
            last_attempt_at: None,
            next_attempt_at: None,
            done_at: None,
        }
    }
}

/// Where a notification is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet tried, or being tried.
    Pending,
    /// Tried, failed in a way that may pass, and waiting for its next attempt.
    Retrying,
    /// Accepted by its receiver.
    Sent,
    /// Refused by its receiver for good; kept, not retried.
    Failed,
}

impl DeliveryState {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }
}

/// Where an outbox item goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Records,
    DeadLetters,
}

/// A message waiting to be published.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub target: Target,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The local logs a refill writes (`refill.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Records, as JSON.
    Records,
    /// Dead letters, as JSON ([`DeadLetter`]).
    DeadLetters,
}

impl Log {
    fn prefix(self) -> u8 {
        match self {
            Log::Records => RECORDS,
            Log::DeadLetters => DEAD_LETTERS,
        }
    }
}

/// A rejected message as kept in the dead-letter log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    /// Where it came from: `kafka:topic/partition@offset` or `http`.
    pub origin: String,
    /// When it was received (wall clock, ms).
    pub received: i64,
    /// The original bytes.
    pub bytes: Vec<u8>,
}

/// What one processed batch leaves behind, written atomically.
#[derive(Default)]
pub struct BatchWrite {
    /// The journal entry this batch belongs to.
    pub applied: Option<u64>,
    pub records: Vec<String>,
    pub outbox: Vec<OutboxItem>,
    pub dead_letters: Vec<DeadLetter>,
    /// Notifications the alert book decided on in this batch, in order.
    pub notifications: Vec<NotificationEntry>,
    /// Offsets moved by this batch (merged into the stored ones).
    pub offsets: Offsets,
    /// Trend rollup rows to add to (`rollups.rs`): in this write, so a
    /// replay counts a batch once.
    pub rollups: Vec<(Vec<u8>, mon_runtime::aggregates::Movement)>,
}

fn key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(key: &[u8]) -> u64 {
    key.get(1..9).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(Domain::Store, "cannot create", dir, e))?;
        let db = sled::Config::new()
            .path(dir.join("state.sled"))
            .cache_capacity(64 << 20)
            .open()
            .map_err(|e| Error::from(e).context(format!("cannot open the state in {}", dir.display())))?;
        let last = |prefix: u8| -> Result<u64, Error> {
            Ok(match db.scan_prefix([prefix]).next_back() {
                Some(entry) => seq_of(&entry?.0) + 1,
                None => 0,
            })
        };
        // A notification keeps its sequence as it moves from pending to
        // sent or failed: the next one follows the highest of the three.
        let notifications = last(PENDING)?.max(last(SENT)?).max(last(FAILED)?);
        let next = [last(OUTBOX)?, last(RECORDS)?, last(DEAD_LETTERS)?, notifications];
        Ok(Store { db, next, dir: dir.to_path_buf(), events: EventStore::off(), settled_elsewhere: Default::default() })
    }

    /// Opens the event store (`<dir>/events`) when `on`; before any handle
    /// is made, so every handle sees it.
    pub fn keep_events(&mut self, on: bool) -> Result<(), Error> {
        self.events = if on { EventStore::open(&self.dir.join("events"))? } else { EventStore::off() };
        Ok(())
    }

    /// The event store, for the processing thread's appends.
    pub fn event_store(&self) -> &EventStore {
        &self.events
    }

    /// The trend rollup rows as stored, for a snapshot in the changelog.
    pub fn rollup_rows(&self) -> Result<Vec<crate::rollups::Row>, Error> {
        crate::rollups::export(&self.db)
    }

    /// Makes the trend rollup rows those a restored snapshot carried
    /// (`rollups::export`): the rows of a state restored over (behind the
    /// changelog), or of a restore a crash cut short, go. The replay then
    /// adds the batches after the snapshot, as it does their records.
    pub fn replace_rollups(&self, rows: &[crate::rollups::Row]) -> Result<(), Error> {
        let rows = crate::rollups::import(rows)?;
        let mut write = sled::Batch::default();
        for prefix in [&b"um"[..], b"uh"] {
            for entry in self.db.scan_prefix(prefix) {
                write.remove(entry?.0);
            }
        }
        for (key, movement) in &rows {
            write.insert(key.as_slice(), &crate::rollups::encode(movement));
        }
        self.db.apply_batch(write)?;
        Ok(())
    }

    /// Whether the record and dead-letter logs hold nothing.
    pub fn no_records_nor_dead_letters(&self) -> Result<bool, Error> {
        Ok(self.db.scan_prefix([RECORDS]).next().is_none() && self.db.scan_prefix([DEAD_LETTERS]).next().is_none())
    }

    /// Numbers the records and dead letters written from now on from
    /// `first` at least: the numbers below are a refill's
    /// ([`StoreHandle::refill_log`]), which then list after them, as older.
    pub fn number_logs_from(&mut self, first: u64) {
        for next in &mut self.next[1..=2] {
            *next = (*next).max(first);
        }
    }

    /// How this state is split: `None`, one state for every partition;
    /// `Some(n)`, one per partition of `n`. A new state takes `wanted`;
    /// call it before [`clock`](Self::clock), which marks a state as made.
    pub fn tasks(&self, wanted: Option<u16>) -> Result<Option<u16>, Error> {
        match self.db.get(TASKS)? {
            Some(v) => Ok(<[u8; 2]>::try_from(v.as_ref()).ok().map(u16::from_be_bytes)),
            // Made before the choice existed: one state.
            None if self.db.get(CLOCK)?.is_some() => Ok(None),
            None => {
                let value = wanted.map_or(b"one".to_vec(), |n| n.to_be_bytes().to_vec());
                self.db.insert(TASKS, value)?;
                self.db.flush()?;
                Ok(wanted)
            }
        }
    }

    /// The clock the state was made on; recorded by the first call.
    pub fn clock(&self, wanted: ClockMode) -> Result<ClockMode, Error> {
        let name = |mode: ClockMode| if mode == ClockMode::Event { b"event".to_vec() } else { b"wall".to_vec() };
        match self.db.get(CLOCK)? {
            Some(v) if v.as_ref() == b"event" => Ok(ClockMode::Event),
            Some(_) => Ok(ClockMode::Wall),
            None => {
                self.db.insert(CLOCK, name(wanted))?;
                self.db.flush()?;
                Ok(wanted)
            }
        }
    }

    /// The last journal entry whose outputs were written.
    pub fn applied(&self) -> Result<Option<u64>, Error> {
        Ok(self.db.get(APPLIED)?.and_then(|v| v.as_ref().try_into().ok()).map(u64::from_be_bytes))
    }

    pub fn offsets(&self) -> Result<Offsets, Error> {
        let Some(bytes) = self.db.get(OFFSETS)? else { return Ok(Offsets::new()) };
        let pairs: Vec<(String, i32, i64)> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::damaged(Domain::Store, "stored offsets are damaged").caused_by(e))?;
        Ok(pairs.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
    }

    /// Writes one batch atomically and flushes it to disk.
    pub fn commit(&mut self, batch: BatchWrite, stored_offsets: &mut Offsets) -> Result<(), Error> {
        let mut write = sled::Batch::default();
        if let Some(applied) = batch.applied {
            write.insert(APPLIED, &applied.to_be_bytes());
        }
        for item in &batch.outbox {
            write.insert(&key(OUTBOX, self.next[0]), encode_outbox(item));
            self.next[0] += 1;
        }
        for record in &batch.records {
            write.insert(&key(RECORDS, self.next[1]), record.as_bytes());
            self.next[1] += 1;
        }
        for letter in &batch.dead_letters {
            let bytes = serde_json::to_vec(letter)
                .map_err(|e| Error::damaged(Domain::Store, "cannot encode a dead letter").caused_by(e))?;
            write.insert(&key(DEAD_LETTERS, self.next[2]), bytes);
            self.next[2] += 1;
        }
        for entry in &batch.notifications {
            let seq = self.next[3];
            match self.settled_elsewhere.get(&entry.notification.id) {
                // Why: a process that was lost had delivered it; the replay
                // of the changelog made it again, and it must not go twice.
                Some(settled) => {
                    let mut done = entry.clone();
                    done.done_at = Some(settled.at);
                    write.insert(&key(if settled.sent { SENT } else { FAILED }, seq), encode_entry(&done)?);
                }
                None => write.insert(&key(PENDING, seq), encode_entry(entry)?),
            }
            write.insert(by_id(&entry.notification.id), &seq.to_be_bytes());
            self.next[3] += 1;
        }
        crate::rollups::add_rows(&self.db, &mut write, &batch.rollups)?;
        if !batch.offsets.is_empty() {
            stored_offsets.extend(batch.offsets);
            let pairs: Vec<(&str, i32, i64)> = stored_offsets.iter().map(|((t, p), o)| (t.as_str(), *p, *o)).collect();
            write.insert(
                OFFSETS,
                serde_json::to_vec(&pairs)
                    .map_err(|e| Error::damaged(Domain::Store, "cannot encode the offsets").caused_by(e))?,
            );
        }
        self.db.apply_batch(write)?;
        self.db.flush()?;
        Ok(())
    }

    /// Notifications that an earlier process settled (the changelog's
    /// delivery marks): from now on they are written as sent or failed
    /// instead of pending. Called before the replay of a restored state.
    pub fn settle_by_marks(&mut self, marks: std::collections::HashMap<String, Settled>) {
        self.settled_elsewhere = marks;
    }

    /// The outbox items and pending notifications, as stored: what a
    /// snapshot in the changelog must carry, since their batches are
    /// covered by it and would not be replayed after a restore.
    pub fn undelivered(&self) -> Result<Undelivered, Error> {
        let raw = |prefix: u8| -> Result<Vec<Vec<u8>>, Error> {
            self.db.scan_prefix([prefix]).values().map(|v| Ok(v?.to_vec())).collect()
        };
        Ok(Undelivered { outbox: raw(OUTBOX)?, notifications: raw(PENDING)? })
    }

    /// Writes what [`undelivered`](Self::undelivered) gave (from a
    /// changelog snapshot) and the offsets stored with it, as one batch.
    pub fn restore_outputs(
        &mut self,
        outbox: &[Vec<u8>],
        notifications: &[Vec<u8>],
        offsets: Offsets,
        stored_offsets: &mut Offsets,
    ) -> Result<(), Error> {
        let mut batch = BatchWrite { offsets, ..BatchWrite::default() };
        for (i, bytes) in outbox.iter().enumerate() {
            let item = decode_outbox(bytes)
                .ok_or_else(|| Error::damaged(Domain::Store, format!("outbox item {i} of the snapshot is damaged")))?;
            batch.outbox.push(item);
        }
        for (i, bytes) in notifications.iter().enumerate() {
            let entry = decode_entry(&key(PENDING, i as u64), bytes)?;
            // Restored once already (a restore that crashed before its
            // files were in place is done again): not twice.
            if !self.db.contains_key(by_id(&entry.notification.id))? {
                batch.notifications.push(entry);
            }
        }
        self.commit(batch, stored_offsets)
    }

    /// The sequence the next outbox item gets: every item below it is flushed
    /// once [`commit`](Self::commit) has returned.
    pub fn next_outbox_seq(&self) -> u64 {
        self.next[0]
    }

    /// The sequence the next notification gets: every pending one below it
    /// is flushed once [`commit`](Self::commit) has returned.
    pub fn next_notification_seq(&self) -> u64 {
        self.next[3]
    }

    /// A handle for the publisher and the API: sled is shared between threads.
    pub fn handle(&self) -> StoreHandle {
        StoreHandle { db: self.db.clone(), events: self.events.clone() }
    }

    /// Drops the oldest records and dead letters beyond `keep` of each.
    pub fn trim(&self, keep: u64) -> Result<(), Error> {
        for (i, prefix) in [(1, RECORDS), (2, DEAD_LETTERS)] {
            let mut below = self.next[i].saturating_sub(keep);
            // A refilled log (`refill.rs`) numbers its live entries from
            // `FIRST_LIVE` and the refilled ones from 0: the gap between
            // holds no entry, and the newest `keep` span both.
            let live = self.next[i].saturating_sub(crate::refill::FIRST_LIVE);
            if live > 0 && live < keep {
                let refilled_end =
                    match self.db.range(key(prefix, 0)..key(prefix, crate::refill::FIRST_LIVE)).next_back() {
                        Some(entry) => seq_of(&entry?.0) + 1,
                        None => 0,
                    };
                below = refilled_end.saturating_sub(keep - live);
            }
            let mut write = sled::Batch::default();
            for entry in self.db.range(key(prefix, 0)..key(prefix, below)) {
                write.remove(entry?.0);
            }
            self.db.apply_batch(write)?;
        }
        let first_kept = self.next[3].saturating_sub(keep);
        for prefix in [SENT, FAILED] {
            let mut write = sled::Batch::default();
            for entry in self.db.range(key(prefix, 0)..key(prefix, first_kept)) {
                let (k, v) = entry?;
                if let Ok(old) = serde_json::from_slice::<NotificationEntry>(&v) {
                    write.remove(by_id(&old.notification.id));
                }
                write.remove(k);
            }
            self.db.apply_batch(write)?;
        }
        Ok(())
    }

    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush()?;
        Ok(())
    }

    /// Compacts the trend rollups (`rollups::compact`).
    pub fn compact_rollups(&self, minutes_before: i64, hours_before: i64) -> Result<usize, Error> {
        crate::rollups::compact(&self.db, minutes_before, hours_before)
    }
}

/// Reads (and outbox deletes) that other threads may do while the
/// processing thread writes.
#[derive(Clone)]
pub struct StoreHandle {
    db: sled::Db,
    events: EventStore,
}

impl StoreHandle {
    /// The trend series of a query (`rollups::series`).
    pub fn trend(&self, query: &crate::rollups::Query) -> Result<Vec<crate::rollups::Point>, Error> {
        crate::rollups::series(&self.db, query)
    }

    /// A named tree of the same database, for a part of the state that
    /// keeps its own keys (rule versions, the audit log).
    pub fn tree(&self, name: &str) -> Result<sled::Tree, Error> {
        Ok(self.db.open_tree(name)?)
    }

    /// The event store, for search and lifecycle replays.
    pub fn events(&self) -> EventStore {
        self.events.clone()
    }

    /// Up to `limit` outbox items after `after` (from the start when `None`)
    /// and below sequence `below` (the items of batches already flushed:
    /// sled shows a batch before its flush returns).
    pub fn outbox_after(
        &self,
        after: Option<&sled::IVec>,
        below: u64,
        limit: usize,
    ) -> Result<Vec<(sled::IVec, OutboxItem)>, Error> {
        use std::ops::Bound;
        let start = match after {
            Some(k) => Bound::Excluded(k.to_vec()),
            None => Bound::Included(vec![OUTBOX]),
        };
        let end = Bound::Excluded(key(OUTBOX, below).to_vec());
        let mut items = Vec::new();
        for entry in self.db.range::<Vec<u8>, _>((start, end)).take(limit) {
            let (k, v) = entry?;
            let item = decode_outbox(&v)
                .ok_or_else(|| Error::damaged(Domain::Store, format!("outbox item {} is damaged", seq_of(&k))))?;
            items.push((k, item));
        }
        Ok(items)
    }

    /// Forgets published outbox items. Not flushed: after a crash an item
    /// may be published again, with the same record id.
    pub fn published(&self, keys: &[sled::IVec]) -> Result<(), Error> {
        let mut write = sled::Batch::default();
        for k in keys {
            write.remove(k.clone());
        }
        self.db.apply_batch(write)?;
        Ok(())
    }

    /// A page of the record log, newest first: up to `limit` records (JSON)
    /// that `take` keeps (and makes into a `T`), below sequence `before` when given.
    pub fn records<T>(
        &self,
        before: Option<u64>,
        limit: usize,
        mut take: impl FnMut(&str) -> Option<T>,
    ) -> Result<Page<T>, Error> {
        self.page(RECORDS, Order::NewestFirst, before, limit, |_, bytes| Ok(take(&String::from_utf8_lossy(bytes))))
    }

    /// A page of the dead-letter log, newest first, below `before`. A
    /// damaged entry is skipped: it cannot be shown, and it must not hide
    /// the others.
    pub fn dead_letters(&self, before: Option<u64>, limit: usize) -> Result<Page<DeadLetter>, Error> {
        self.page(DEAD_LETTERS, Order::NewestFirst, before, limit, |_, bytes| Ok(serde_json::from_slice(bytes).ok()))
    }

    /// Up to `limit` entries of one log (keys `prefix` + sequence) that
    /// `take` keeps, in `order`, strictly past sequence `from`. The page
    /// says the sequence to continue from when more entries are kept
    /// past it: a position, so appends never shift a page already given.
    fn page<T>(
        &self,
        prefix: u8,
        order: Order,
        from: Option<u64>,
        limit: usize,
        mut take: impl FnMut(u64, &[u8]) -> Result<Option<T>, Error>,
    ) -> Result<Page<T>, Error> {
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match (order, from) {
            (Order::NewestFirst, None) => Box::new(self.db.scan_prefix([prefix]).rev()),
            (Order::NewestFirst, Some(seq)) => Box::new(self.db.range(key(prefix, 0)..key(prefix, seq)).rev()),
            (Order::OldestFirst, None) => Box::new(self.db.scan_prefix([prefix])),
            (Order::OldestFirst, Some(seq)) => match seq.checked_add(1) {
                Some(next) => Box::new(self.db.range(key(prefix, next)..=key(prefix, u64::MAX))),
                None => Box::new(std::iter::empty()),
            },
        };
        let mut page = Page { items: Vec::new(), next: None };
        let mut last = None;
        for entry in entries {
            let (k, v) = entry?;
            let seq = seq_of(&k);
            let Some(item) = take(seq, &v)? else { continue };
            if page.items.len() == limit {
                page.next = last;
                break;
            }
            page.items.push((seq, item));
            last = Some(seq);
        }
        Ok(page)
    }
}

/// The order a log is read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// A page of a log: its items with their sequence numbers, and the
/// sequence to continue from when there are more.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<(u64, T)>,
    pub next: Option<u64>,
}

impl StoreHandle {
    /// Writes entries of a local log read again after a restore
    /// (`refill.rs`), numbered from `first`, below the numbers the live
    /// ones take ([`Store::number_logs_from`]). Not flushed: the refill
    /// flushes once it is done, and a stop before redoes it.
    pub fn refill_log(&self, log: Log, first: u64, entries: &[Vec<u8>]) -> Result<(), Error> {
        let mut write = sled::Batch::default();
        for (i, entry) in entries.iter().enumerate() {
            write.insert(&key(log.prefix(), first + i as u64), entry.as_slice());
        }
        self.db.apply_batch(write)?;
        Ok(())
    }

    /// Deletes the entries of `log` numbered below `first`: those of a
    /// refill that a stop interrupted, which is then made again.
    pub fn drop_log_below(&self, log: Log, first: u64) -> Result<u64, Error> {
        let mut write = sled::Batch::default();
        let mut dropped = 0;
        for entry in self.db.range(key(log.prefix(), 0)..key(log.prefix(), first)) {
            write.remove(entry?.0);
            dropped += 1;
        }
        self.db.apply_batch(write)?;
        Ok(dropped)
    }

    /// The entries of `log` numbered from `from` on, oldest first, with
    /// the number after the last: a refill's look at what the live state
    /// wrote since it last asked.
    pub fn log_from(&self, log: Log, from: u64) -> Result<(Vec<Vec<u8>>, u64), Error> {
        let mut entries = Vec::new();
        let mut next = from;
        for entry in self.db.range(key(log.prefix(), from)..=key(log.prefix(), u64::MAX)) {
            let (k, v) = entry?;
            next = seq_of(&k) + 1;
            entries.push(v.to_vec());
        }
        Ok((entries, next))
    }

    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush()?;
        Ok(())
    }

    /// The pending notifications below sequence `below` (those of flushed
    /// batches), oldest first.
    pub fn pending_notifications(&self, below: u64) -> Result<Vec<(u64, NotificationEntry)>, Error> {
        let mut entries = Vec::new();
        for entry in self.db.range(key(PENDING, 0)..key(PENDING, below)) {
            let (k, v) = entry?;
            entries.push((seq_of(&k), decode_entry(&k, &v)?));
        }
        Ok(entries)
    }

    /// Records a failed attempt of pending notification `seq` (its count,
    /// error and next attempt). Not flushed: losing it costs an attempt
    /// count, not a notification.
    pub fn notification_attempted(&self, seq: u64, entry: &NotificationEntry) -> Result<(), Error> {
        let k = key(PENDING, seq);
        // Only while it is still pending: never resurrect a finished one.
        if self.db.contains_key(k)? {
            self.db.insert(k, encode_entry(entry)?)?;
        }
        Ok(())
    }

    /// Moves pending notification `seq` to the sent log (`sent`) or the
    /// failed log, in one atomic batch, and flushes it: a receiver that
    /// does not drop repeats (an SMTP server, Slack) gets a notification
    /// twice only when the process dies between the receiver's answer and
    /// this flush. Notifications are few (the book groups them), so one
    /// fsync each costs little.
    pub fn notification_done(&self, seq: u64, entry: &NotificationEntry, sent: bool) -> Result<(), Error> {
        let mut write = sled::Batch::default();
        write.remove(&key(PENDING, seq));
        write.insert(&key(if sent { SENT } else { FAILED }, seq), encode_entry(entry)?);
        self.db.apply_batch(write)?;
        self.db.flush()?;
        Ok(())
    }

    /// A notification by its id, with where it is; `None` if unknown (or
    /// trimmed).
    pub fn notification(&self, id: &str) -> Result<Option<(DeliveryState, NotificationEntry)>, Error> {
        let Some(seq) = self.db.get(by_id(id))? else { return Ok(None) };
        let Some(seq) = <[u8; 8]>::try_from(seq.as_ref()).ok().map(u64::from_be_bytes) else { return Ok(None) };
        for (prefix, state) in
            [(PENDING, DeliveryState::Pending), (SENT, DeliveryState::Sent), (FAILED, DeliveryState::Failed)]
        {
            let k = key(prefix, seq);
            if let Some(v) = self.db.get(k)? {
                let entry = decode_entry(&k, &v)?;
                let state = match state {
                    DeliveryState::Pending if entry.attempts > 0 => DeliveryState::Retrying,
                    other => other,
                };
                return Ok(Some((state, entry)));
            }
        }
        Ok(None)
    }

    /// A page of pending notifications, oldest first (the order they go
    /// out in), or of failed ones, newest first; past sequence `from`.
    pub fn notifications(
        &self,
        failed: bool,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Page<NotificationEntry>, Error> {
        let (prefix, order) = if failed { (FAILED, Order::NewestFirst) } else { (PENDING, Order::OldestFirst) };
        self.page(prefix, order, from, limit, |seq, v| decode_entry(&key(prefix, seq), v).map(Some))
    }
}

fn by_id(id: &str) -> Vec<u8> {
    [BY_ID, id.as_bytes()].concat()
}

fn encode_entry(entry: &NotificationEntry) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(entry).map_err(|e| Error::damaged(Domain::Store, "cannot encode a notification").caused_by(e))
}

fn decode_entry(k: &[u8], v: &[u8]) -> Result<NotificationEntry, Error> {
    serde_json::from_slice(v)
        .map_err(|e| Error::damaged(Domain::Store, format!("notification {} is damaged", seq_of(k))).caused_by(e))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take_bytes<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let value = rest.get(..len)?;
    *bytes = &rest[len..];
    Some(value)
}

/// Target byte, key (flag + bytes), payload, header count, headers.
fn encode_outbox(item: &OutboxItem) -> Vec<u8> {
    let mut out = Vec::with_capacity(item.payload.len() + 64);
    out.push(match item.target {
        Target::Records => 0,
        Target::DeadLetters => 1,
    });
    match &item.key {
        Some(k) => {
            out.push(1);
            put_bytes(&mut out, k);
        }
        None => out.push(0),
    }
    put_bytes(&mut out, &item.payload);
    out.extend_from_slice(&(item.headers.len() as u32).to_le_bytes());
    for (name, value) in &item.headers {
        put_bytes(&mut out, name.as_bytes());
        put_bytes(&mut out, value);
    }
    out
}

fn decode_outbox(mut bytes: &[u8]) -> Option<OutboxItem> {
    let (&target, rest) = bytes.split_first()?;
    let target = match target {
        0 => Target::Records,
        1 => Target::DeadLetters,
        _ => return None,
    };
    let (&has_key, rest) = rest.split_first()?;
    bytes = rest;
    let key = if has_key == 1 { Some(take_bytes(&mut bytes)?.to_vec()) } else { None };
    let payload = take_bytes(&mut bytes)?.to_vec();
    let (count, rest) = bytes.split_first_chunk::<4>()?;
    bytes = rest;
    let mut headers = Vec::new();
    for _ in 0..u32::from_le_bytes(*count) {
        let name = String::from_utf8(take_bytes(&mut bytes)?.to_vec()).ok()?;
        headers.push((name, take_bytes(&mut bytes)?.to_vec()));
    }
    Some(OutboxItem { target, key, payload, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_batch_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut offsets = Offsets::new();
        {
            let mut store = Store::open(dir.path()).unwrap();
            let mut batch = BatchWrite { applied: Some(7), ..Default::default() };
            batch.records.push("{\"id\":\"a\"}".into());
            batch.outbox.push(OutboxItem {
                target: Target::DeadLetters,
                key: None,
                payload: vec![0xff, 0],
                headers: vec![("mon_reason".into(), b"bad".to_vec())],
            });
            batch.offsets.insert(("t".into(), 3), 42);
            store.commit(batch, &mut offsets).unwrap();
            store.commit(BatchWrite { applied: Some(8), ..Default::default() }, &mut offsets).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.applied().unwrap(), Some(8));
        assert_eq!(store.offsets().unwrap().get(&("t".to_string(), 3)), Some(&42));
        let outbox = store.handle().outbox_after(None, u64::MAX, 10).unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].1.payload, vec![0xff, 0]);
        assert_eq!(outbox[0].1.headers[0].1, b"bad");
        let page = store.handle().records(None, 5, |r| Some(r.to_string())).unwrap();
        assert_eq!(page.items.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), vec!["{\"id\":\"a\"}".to_string()]);
    }

    #[test]
    fn record_pages_are_newest_first_filtered_and_stable_under_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut offsets = Offsets::new();
        let write = |store: &mut Store, offsets: &mut Offsets, ids: std::ops::Range<u32>| {
            let records = ids
                .map(|i| format!("{{\"id\":\"r{i}\",\"kind\":\"{}\"}}", if i % 2 == 0 { "late" } else { "missing" }));
            store.commit(BatchWrite { records: records.collect(), ..Default::default() }, offsets).unwrap();
        };
        write(&mut store, &mut offsets, 0..7);
        let ids = |page: &Page<String>| page.items.iter().map(|(_, r)| r[7..9].to_string()).collect::<Vec<_>>();
        let late = |r: &str| r.contains("late").then(|| r.to_string());
        let first = store.handle().records(None, 2, late).unwrap();
        assert_eq!(ids(&first), ["r6", "r4"]);
        // Appends after the first page do not shift the second.
        write(&mut store, &mut offsets, 7..10);
        let second = store.handle().records(first.next, 2, late).unwrap();
        assert_eq!(ids(&second), ["r2", "r0"]);
        assert_eq!(second.next, None, "the last page says so");
        let newest = store.handle().records(None, 1, |r| Some(r.to_string())).unwrap();
        assert_eq!(ids(&newest), ["r9"]);
    }

    #[test]
    fn a_notification_keeps_its_sequence_from_pending_to_sent_or_failed() {
        use mon_runtime::alerts::Notification;
        let dir = tempfile::tempdir().unwrap();
        let notification = |id: &str| -> Notification {
            serde_json::from_value(serde_json::json!({
                "id": id, "channel": "ops", "at": 5, "event": "firing", "group_key": "ops/g",
                "workflow": "w", "step": "s", "kind": "missing", "severity": "high", "group": {},
                "program_hash": "h", "active": 1, "acknowledged": 0, "new": 1, "resolved": 0,
                "escalated": false, "alerts": [], "summary": "s"
            }))
            .unwrap()
        };
        let mut offsets = Offsets::new();
        {
            let mut store = Store::open(dir.path()).unwrap();
            let batch = BatchWrite {
                applied: Some(1),
                notifications: vec![
                    NotificationEntry::new(notification("a"), 10),
                    NotificationEntry::new(notification("b"), 11),
                ],
                ..Default::default()
            };
            store.commit(batch, &mut offsets).unwrap();
            assert_eq!(store.next_notification_seq(), 2);
            let handle = store.handle();
            assert_eq!(handle.pending_notifications(1).unwrap().len(), 1, "only below the flushed sequence");
            let pending = handle.pending_notifications(2).unwrap();
            let (seq, mut entry) = pending[0].clone();
            entry.attempts = 1;
            entry.last_error = Some("503".into());
            handle.notification_attempted(seq, &entry).unwrap();
            assert_eq!(handle.notification("a").unwrap().unwrap().0, DeliveryState::Retrying);
            handle.notification_done(seq, &entry, true).unwrap();
            handle.notification_done(pending[1].0, &pending[1].1, false).unwrap();
            // A late attempt record does not bring a finished one back.
            handle.notification_attempted(seq, &entry).unwrap();
            assert!(handle.pending_notifications(2).unwrap().is_empty());
            store.flush().unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_notification_seq(), 2, "sent and failed ones keep their sequence");
        let handle = store.handle();
        let (state, entry) = handle.notification("a").unwrap().unwrap();
        assert_eq!((state, entry.attempts), (DeliveryState::Sent, 1));
        assert_eq!(handle.notification("b").unwrap().unwrap().0, DeliveryState::Failed);
        assert_eq!(handle.notifications(true, None, 10).unwrap().items.len(), 1);
        let batch =
            BatchWrite { notifications: vec![NotificationEntry::new(notification("c"), 12)], ..Default::default() };
        store.commit(batch, &mut offsets).unwrap();
        store.trim(1).unwrap();
        assert!(handle.notification("a").unwrap().is_none(), "trimmed with its index");
        assert_eq!(handle.notification("c").unwrap().unwrap().0, DeliveryState::Pending);
    }

    #[test]
    fn the_clock_of_the_first_run_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Store::open(dir.path()).unwrap().clock(ClockMode::Event).unwrap(), ClockMode::Event);
        assert_eq!(Store::open(dir.path()).unwrap().clock(ClockMode::Wall).unwrap(), ClockMode::Event);
    }

    #[test]
    fn a_restored_store_gets_the_snapshots_outputs_and_settles_what_the_marks_name() {
        use mon_runtime::alerts::Notification;
        let notification = |id: &str| -> Notification {
            serde_json::from_value(serde_json::json!({
                "id": id, "channel": "ops", "at": 5, "event": "firing", "group_key": format!("ops/{id}"),
                "workflow": "w", "step": "s", "kind": "missing", "severity": "high", "group": {},
                "program_hash": "h", "active": 1, "acknowledged": 0, "new": 1, "resolved": 0,
                "escalated": false, "alerts": [], "summary": "s"
            }))
            .unwrap()
        };
        let item = OutboxItem {
            target: Target::Records,
            key: Some(b"w/1".to_vec()),
            payload: b"{}".to_vec(),
            headers: vec![],
        };
        // The lost process's store: one outbox item, two pending notifications.
        let lost = tempfile::tempdir().unwrap();
        let mut offsets = Offsets::new();
        let mut store = Store::open(lost.path()).unwrap();
        let batch = BatchWrite {
            outbox: vec![item.clone()],
            notifications: vec![
                NotificationEntry::new(notification("a"), 1),
                NotificationEntry::new(notification("b"), 2),
            ],
            ..Default::default()
        };
        store.commit(batch, &mut offsets).unwrap();
        let Undelivered { outbox, notifications } = store.undelivered().unwrap();
        assert_eq!((outbox.len(), notifications.len()), (1, 2));

        // The new one: "a" was marked sent in the changelog after the snapshot.
        let fresh = tempfile::tempdir().unwrap();
        let mut restored = Store::open(fresh.path()).unwrap();
        restored.settle_by_marks([("a".to_string(), Settled { sent: true, at: 7 })].into_iter().collect());
        let snapshot_offsets: Offsets = [(("events".to_string(), 0), 12)].into_iter().collect();
        let mut stored = Offsets::new();
        restored.restore_outputs(&outbox, &notifications, snapshot_offsets.clone(), &mut stored).unwrap();
        assert_eq!(restored.offsets().unwrap(), snapshot_offsets);
        let handle = restored.handle();
        let items = handle.outbox_after(None, restored.next_outbox_seq(), 10).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].1.key.clone(), items[0].1.payload.clone()), (item.key, item.payload));
        let (state, entry) = handle.notification("a").unwrap().unwrap();
        assert_eq!((state, entry.done_at), (DeliveryState::Sent, Some(7)));
        assert_eq!(handle.notification("b").unwrap().unwrap().0, DeliveryState::Pending);
        let pending = handle.pending_notifications(restored.next_notification_seq()).unwrap();
        assert_eq!(pending.iter().map(|(_, e)| e.notification.id.as_str()).collect::<Vec<_>>(), vec!["b"]);
        // A restore done again after a crash adds no notification twice.
        restored.restore_outputs(&outbox, &notifications, Offsets::new(), &mut stored).unwrap();
        let pending = restored.handle().pending_notifications(restored.next_notification_seq()).unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
    }
}
