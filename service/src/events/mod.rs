//! The event store: every event the service accepted (and every message it
//! rejected), kept for search (`GET /api/v1/events`) and for replaying one
//! item's lifecycle (`GET /api/v1/workflows/{workflow}/items/{key}`),
//! under its own retention (`[retention] events`).
//!
//! Events are appended, a batch at a time, to segment files under
//! `<state_dir>/events/` (`segments.rs`), beside sled rather than in it:
//! a sled key per event cost more than the rest of the batch's write.
//! What is stored is the decoded event: `pii` fields hold the decoder's
//! hash, never the value (LANGUAGE.md §2), so equal values still compare
//! equal in a replay. A rejected message is indexed with its reason and
//! whatever type, id and time could be read; its bytes stay in the
//! dead-letter log only.
//!
//! Durability without an fsync per batch: every batch's frame carries its
//! journal sequence, and the journal holds every input since the last
//! snapshot. At start the store knows the last journal entry whose events
//! it holds ([`EventStore::last_journal`]); the replay appends the events
//! of every later entry, whether or not sled had its other outputs
//! (`Processor::replay`), and an append of an entry already held is a
//! no-op. Before a snapshot truncates the journal the open segment is
//! fsynced ([`EventStore::sync`]). So a crash neither loses an
//! acknowledged event nor stores one twice.
//!
//! Appends happen on a thread of their own (`mon-events`), so the
//! processing thread hands a batch's events over and goes on: under load
//! they were about a third of its work (docs/notes/performance.md). Every
//! read first waits until the appends handed over before it are done, so a
//! search that starts after a batch was committed sees its events, as when
//! the appends were made in place. An append that fails is the error of
//! the next [`EventStore::append_later`] (the next batch with events) or
//! [`EventStore::sync`] (at the latest the next snapshot, which then does
//! not truncate the journal), and that stops the processing. The thread
//! appends nothing after a failure, so the replay at the next start
//! stores the failed batch and every one after it.
//!
//! Retention drops whole closed segments whose newest event is past it,
//! and every search also filters by the cutoff, since a segment can
//! straddle it.
//!
//! This module must not decide what an event means: keys come from the
//! runtime, and a search answers from stored data only.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use mon_compiler::ir::{self, Program, Value};
use mon_runtime::engine::{display, item_keys};
use mon_runtime::Event;
use serde::{Deserialize, Serialize};

use crate::error::{Domain, Error};
use crate::store::DeadLetter;

mod segments;

use segments::{item_hash, Narrowest, Segments};

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

/// A position in the time order: (event time, arrival sequence).
pub type Position = (i64, u64);

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

/// The event store: its segments behind a lock (appends take it for
/// writing, searches for reading), and the retention cutoff searches apply.
/// Cheap to clone; an `EventStore::off` answers every search with nothing.
#[derive(Clone)]
pub struct EventStore {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    segments: RwLock<Segments>,
    /// Events older than this (event time, ms) are past retention;
    /// `i64::MIN` until the purge first runs.
    cutoff: AtomicI64,
    /// The appending thread's queue, started by the first `append_later`.
    queue: Mutex<Option<SyncSender<Handed>>>,
    progress: Mutex<Progress>,
    /// Signalled each time the appending thread finishes an append.
    appended: Condvar,
}

/// A batch's events with its journal entry, for the appending thread.
type Handed = (u64, Vec<StoredEvent>);

/// Appends handed to the appending thread, and how far it got.
#[derive(Default)]
struct Progress {
    handed: u64,
    done: u64,
    /// The first append that failed, as its error said (or that the
    /// thread ended with appends outstanding). After it the thread appends
    /// nothing more, so nobody need wait for it.
    failed: Option<String>,
}

/// Batches queued for the appending thread (besides the one it is
/// appending) before `append_later` waits: enough to ride out a slow
/// write, few enough to bound the memory.
const APPENDS_AHEAD: usize = 4;

/// How long a read waits for the appends before it; only a stuck disk
/// takes that long, and then a read of what is there beats no answer.
const READ_WAITS_AT_MOST: Duration = Duration::from_secs(10);

fn poisoned() -> Error {
    Error::damaged(Domain::Store, "the event store's lock is poisoned (a thread panicked holding it)")
}

impl EventStore {
    /// Opens (or creates) the event store in `dir` (`<state_dir>/events`),
    /// cutting a torn tail left by a crash (`segments.rs`).
    pub fn open(dir: &Path) -> Result<EventStore, Error> {
        let segments = Segments::open(dir)?;
        Ok(EventStore {
            shared: Some(Arc::new(Shared {
                segments: RwLock::new(segments),
                cutoff: AtomicI64::new(i64::MIN),
                queue: Mutex::new(None),
                progress: Mutex::new(Progress::default()),
                appended: Condvar::new(),
            })),
        })
    }

    /// The store when the configuration turns it off.
    pub fn off() -> EventStore {
        EventStore { shared: None }
    }

    /// The last journal entry whose events are all stored; `None` for an
    /// empty or absent store.
    pub fn last_journal(&self) -> Result<Option<u64>, Error> {
        let Some(shared) = &self.shared else { return Ok(None) };
        Ok(read(shared)?.last_journal())
    }

    /// Whether events are kept at all (`[events]` on).
    pub fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// Hands the events of journal entry `journal` to the appending
    /// thread (started on the first call), which appends them unless they
    /// are stored already. Waits only when [`APPENDS_AHEAD`] batches are
    /// still queued. An earlier append that failed is this call's error.
    pub fn append_later(&self, journal: u64, events: Vec<StoredEvent>) -> Result<(), Error> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let mut queue = shared.queue.lock().map_err(|_| poisoned())?;
        if queue.is_none() {
            *queue = Some(start_appending(Arc::downgrade(shared))?);
        }
        {
            let mut progress = shared.progress.lock().map_err(|_| poisoned())?;
            if let Some(failed) = &progress.failed {
                return Err(append_failed(failed));
            }
            progress.handed += 1;
        }
        let sent = queue.as_ref().is_some_and(|queue| queue.send((journal, events)).is_ok());
        if !sent {
            let mut progress = shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
            progress.handed -= 1;
            let failed = progress.failed.get_or_insert_with(|| THREAD_STOPPED.into());
            return Err(append_failed(failed));
        }
        Ok(())
    }

    /// Fsyncs what was appended, once every append handed over is done
    /// (however long that takes: the journal is truncated after this, and
    /// must not lose an entry whose events are not yet stored). An append
    /// that failed, or an appending thread that stopped, is the error.
    pub fn sync(&self) -> Result<(), Error> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let progress = wait_for_appends(shared, None)?;
        if let Some(failed) = &progress.failed {
            return Err(append_failed(failed));
        }
        drop(progress);
        shared.segments.read().map_err(|_| poisoned())?.sync()
    }

    /// Appends in place, bypassing the appending thread: for benchmarks
    /// and tests of the segments, never mixed with [`append_later`](Self::append_later).
    pub fn append(&self, journal: u64, events: &[StoredEvent]) -> Result<(), Error> {
        let Some(shared) = &self.shared else { return Ok(()) };
        shared.segments.write().map_err(|_| poisoned())?.append(journal, events)
    }

    /// Whether no event is stored (or the store is off).
    pub fn is_empty(&self) -> Result<bool, Error> {
        let Some(shared) = &self.shared else { return Ok(true) };
        Ok(shared.segments.read().map_err(|_| poisoned())?.is_empty())
    }

    /// Numbers the events stored from now on from `first` at least: the
    /// numbers below are a refill's ([`Refilling`]).
    pub fn number_from(&self, first: u64) -> Result<(), Error> {
        let Some(shared) = &self.shared else { return Ok(()) };
        shared.segments.write().map_err(|_| poisoned())?.number_from(first)
    }

    /// Deletes the events numbered below `first` (an interrupted refill's);
    /// returns how many went.
    pub fn drop_numbered_below(&self, first: u64) -> Result<u64, Error> {
        let Some(shared) = &self.shared else { return Ok(0) };
        shared.segments.write().map_err(|_| poisoned())?.drop_numbered_below(first)
    }

    /// Takes in a finished refill: its events sort before every event
    /// stored since the store was numbered from [`number_from`](Self::number_from).
    /// Returns how many events it brought.
    pub fn adopt(&self, mut refilled: Refilling) -> Result<u64, Error> {
        let Some(shared) = &self.shared else { return Ok(0) };
        refilled.segments.finish()?;
        let count = shared.segments.write().map_err(|_| poisoned())?.adopt(refilled.segments)?;
        let _ = std::fs::remove_dir(&refilled.dir);
        Ok(count)
    }

    fn cutoff(&self) -> i64 {
        self.shared.as_ref().map_or(i64::MIN, |s| s.cutoff.load(Ordering::Relaxed))
    }

    /// Events matching `search`, newest first (by event time, then arrival).
    /// It walks the narrowest index the search names (the item's, the
    /// type's, the rejected ones', or else the whole log) in each segment
    /// whose times meet the range, never past retention.
    pub fn search(&self, program: &Program, search: &Search) -> Result<Found, Error> {
        let mut found = Found { events: Vec::new(), next: None };
        let Some(shared) = &self.shared else { return Ok(found) };
        let narrowest = match (search.workflow.as_ref().zip(search.key.as_ref()), &search.type_name, search.rejected) {
            (Some((workflow, key)), _, _) => Narrowest::Item(item_hash(workflow, key)),
            (None, Some(type_name), _) => Narrowest::Type(type_name.clone()),
            (None, None, Some(true)) => Narrowest::Rejected,
            (None, None, _) => Narrowest::All,
        };
        let low = (search.from.unwrap_or(i64::MIN).max(self.cutoff()), 0);
        let mut high = (search.to.unwrap_or(i64::MAX), u64::MAX);
        // Strictly before the cursor: its own event was on the last page.
        if let Some((time, seq)) = search.before {
            let before = match seq.checked_sub(1) {
                Some(seq) => Some((time, seq)),
                None => time.checked_sub(1).map(|time| (time, u64::MAX)),
            };
            match before {
                Some(before) => high = high.min(before),
                None => return Ok(found),
            }
        }
        if low > high {
            return Ok(found);
        }
        let segments = read(shared)?;
        segments.walk(&narrowest, low, high, |position, event| {
            // The index narrowed; this decides (a hash may collide).
            if !matches(program, search, &event) {
                return true;
            }
            if found.events.len() == search.limit {
                found.next = found.events.last().map(|(p, _)| *p);
                return false;
            }
            found.events.push((position, event));
            true
        })?;
        Ok(found)
    }

    /// Every stored event of one item within retention, in arrival order:
    /// what a replay of its lifecycle feeds the engine.
    pub fn of_item(&self, workflow: &str, key: &str) -> Result<Vec<StoredEvent>, Error> {
        let Some(shared) = &self.shared else { return Ok(Vec::new()) };
        let mut events = Vec::new();
        let segments = read(shared)?;
        let named = |event: &StoredEvent| event.items.iter().any(|(w, k)| w == workflow && k == key);
        segments.walk(
            &Narrowest::Item(item_hash(workflow, key)),
            (self.cutoff(), 0),
            (i64::MAX, u64::MAX),
            |(_, seq), event| {
                if named(&event) {
                    events.push((seq, event));
                }
                true
            },
        )?;
        // Why by sequence: the live engine saw them in arrival order, which
        // is not time order when an event comes late.
        events.sort_by_key(|(seq, _)| *seq);
        Ok(events.into_iter().map(|(_, e)| e).collect())
    }

    /// The accepted events with times in `from..=to` (within retention),
    /// in arrival order: the newest `limit` of them, and `true` when older
    /// ones were left out. What a dry-run over the history replays.
    pub fn history(&self, from: Option<i64>, to: Option<i64>, limit: usize) -> Result<(Vec<StoredEvent>, bool), Error> {
        let Some(shared) = &self.shared else { return Ok((Vec::new(), false)) };
        let mut events = Vec::new();
        let mut more = false;
        let low = (from.unwrap_or(i64::MIN).max(self.cutoff()), 0);
        let segments = read(shared)?;
        // The walk goes newest first: it stops once the newest `limit` are in.
        segments.walk(&Narrowest::All, low, (to.unwrap_or(i64::MAX), u64::MAX), |(_, seq), event| {
            if event.rejected.is_some() {
                return true;
            }
            if events.len() == limit {
                more = true;
                return false;
            }
            events.push((seq, event));
            true
        })?;
        events.sort_by_key(|(seq, _)| *seq);
        Ok((events.into_iter().map(|(_, e)| e).collect(), more))
    }

    /// Hides the events older than `cutoff` (event time, ms) from every
    /// search at once, then deletes the closed segments that hold only
    /// such events; returns how many events were deleted. A segment that
    /// straddles the cutoff stays until all of it is old.
    pub fn purge(&self, cutoff: i64) -> Result<u64, Error> {
        let Some(shared) = &self.shared else { return Ok(0) };
        shared.cutoff.fetch_max(cutoff, Ordering::Relaxed);
        shared.segments.write().map_err(|_| poisoned())?.drop_older_than(cutoff)
    }
}

/// Events read again after a restore (`refill.rs`), appended to segments
/// of their own, numbered from 0, in a directory beside the store's until
/// [`EventStore::adopt`] takes them in.
pub struct Refilling {
    segments: Segments,
    dir: std::path::PathBuf,
    /// The journal entry every frame is filed under: the last one the
    /// restored snapshot covers, which holds them all.
    journal: u64,
}

impl Refilling {
    /// Starts a refill in `dir`, which must hold nothing yet.
    pub fn create(dir: &Path, journal: u64) -> Result<Refilling, Error> {
        let segments = Segments::open(dir)?;
        if !segments.is_empty() {
            return Err(Error::damaged(Domain::Store, format!("{}: a refill found events there", dir.display())));
        }
        Ok(Refilling { segments, dir: dir.to_path_buf(), journal })
    }

    pub fn append(&mut self, events: &[StoredEvent]) -> Result<(), Error> {
        self.segments.append_refilled(self.journal, events)
    }
}

/// The segments for reading, once the appends handed over before this call
/// are done (or [`READ_WAITS_AT_MOST`] has passed): a read after a commit
/// sees that commit's events.
fn read(shared: &Shared) -> Result<RwLockReadGuard<'_, Segments>, Error> {
    drop(wait_for_appends(shared, Some(READ_WAITS_AT_MOST))?);
    shared.segments.read().map_err(|_| poisoned())
}

/// Waits until the appends handed over before the call are done, one has
/// failed (nothing more will be appended), or `limit` has passed.
fn wait_for_appends(shared: &Shared, limit: Option<Duration>) -> Result<MutexGuard<'_, Progress>, Error> {
    let give_up = limit.map(|limit| Instant::now() + limit);
    let mut progress = shared.progress.lock().map_err(|_| poisoned())?;
    let target = progress.handed;
    while progress.done < target && progress.failed.is_none() {
        let Some(give_up) = give_up else {
            progress = shared.appended.wait(progress).map_err(|_| poisoned())?;
            continue;
        };
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                behind = target - progress.done,
                "the event store's appends are late; reading without the newest events"
            );
            break;
        }
        progress = shared.appended.wait_timeout(progress, left).map_err(|_| poisoned())?.0;
    }
    Ok(progress)
}

/// Starts the thread that appends what `append_later` hands over. It holds
/// the store weakly: when the last handle is dropped the queue's sender
/// goes with it, and the thread ends. After a failed append it appends
/// nothing more: a later batch stored after a missing one would make the
/// replay skip the missing one (it resumes after the last entry held).
fn start_appending(shared: Weak<Shared>) -> Result<SyncSender<Handed>, Error> {
    let (queue, handed) = sync_channel::<Handed>(APPENDS_AHEAD);
    std::thread::Builder::new()
        .name("mon-events".into())
        .spawn(move || {
            let _stops = MarksStopped(shared.clone());
            while let Ok((journal, events)) = handed.recv() {
                let Some(shared) = shared.upgrade() else { return };
                let failed_before = shared.progress.lock().unwrap_or_else(PoisonError::into_inner).failed.is_some();
                let outcome = if failed_before {
                    Ok(())
                } else {
                    match shared.segments.write() {
                        Ok(mut segments) => segments.append(journal, &events),
                        Err(_) => Err(poisoned()),
                    }
                };
                let mut progress = shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
                progress.done += 1;
                if let Err(e) = outcome {
                    tracing::error!(error = %e, journal, "the event store could not append a batch's events");
                    progress.failed.get_or_insert_with(|| e.to_string());
                }
                drop(progress);
                shared.appended.notify_all();
            }
        })
        .map_err(|e| Error::damaged(Domain::Store, "cannot start the event store's appending thread").caused_by(e))?;
    Ok(queue)
}

const THREAD_STOPPED: &str = "the appending thread stopped";

/// When the appending thread ends, however (a panic included), with
/// appends outstanding: marks them failed, so that nobody waits for them.
struct MarksStopped(Weak<Shared>);

impl Drop for MarksStopped {
    fn drop(&mut self) {
        let Some(shared) = self.0.upgrade() else { return };
        let mut progress = shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.done < progress.handed {
            progress.failed.get_or_insert_with(|| THREAD_STOPPED.into());
        }
        drop(progress);
        shared.appended.notify_all();
    }
}

fn append_failed(failed: &str) -> Error {
    Error::damaged(Domain::Store, format!("the event store could not append a batch's events: {failed}"))
}

/// Runs until `stop`: about four times per retention (at least every 100
/// ms, at most every minute), forgets the events older than `retention_ms`
/// before `clock()` (the service's clock; `None` before it has one). On a
/// blocking thread: deleting files never holds an async worker.
pub async fn purge_old(
    store: EventStore,
    retention_ms: u64,
    clock: impl Fn() -> Option<i64> + Send + Sync + 'static,
    stop: Arc<AtomicBool>,
) {
    let period = Duration::from_millis((retention_ms / 4).clamp(100, 60_000));
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(period).await;
        let Some(now) = clock() else { continue };
        let cutoff = now.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX));
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.purge(cutoff)).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => tracing::info!(events = n, "old event segments deleted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "purging old events failed; trying again later"),
        }
    }
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
    use segments::tests::event;

    #[test]
    fn retention_reads_durations_and_zero_means_off() {
        let retention = |text: &str| RetentionConfig { events: text.into(), ..RetentionConfig::default() }.events_ms();
        assert_eq!(retention("14d"), Ok(Some(14 * 86_400_000)));
        assert_eq!(retention("90m"), Ok(Some(5_400_000)));
        assert_eq!(retention("0"), Ok(None));
        assert!(retention("two weeks").is_err());
    }

    /// Appends are made on another thread; a read right after handing them
    /// over must still see every one, as when they were made in place.
    #[test]
    fn a_read_after_append_later_sees_every_event_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&dir.path().join("events")).unwrap();
        for journal in 1..=40u64 {
            let batch = (0..100).map(|i| event(&format!("{journal}-{i}"), "K1", (journal * 100 + i) as i64)).collect();
            store.append_later(journal, batch).unwrap();
        }
        assert_eq!(store.last_journal().unwrap(), Some(40));
        let of_item = store.of_item("orders", "K1").unwrap();
        assert_eq!(of_item.len(), 4_000);
        assert_eq!(of_item.last().map(|e| e.id.as_str()), Some("40-99"));
        // An entry handed over again (a replay) is not stored twice.
        store.append_later(40, vec![event("again", "K1", 1)]).unwrap();
        store.sync().unwrap();
        drop(store);
        let reopened = EventStore::open(&dir.path().join("events")).unwrap();
        assert_eq!(reopened.of_item("orders", "K1").unwrap().len(), 4_000);
    }

    /// An append that fails on the appending thread stops the caller at
    /// its next call, as a failed write in place did.
    #[test]
    fn an_append_that_failed_is_the_error_of_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        let store = EventStore::open(&events).unwrap();
        // No directory for the first segment file.
        std::fs::remove_dir_all(&events).unwrap();
        store.append_later(1, vec![event("a", "K1", 1)]).unwrap();
        let error = store.sync().unwrap_err().to_string();
        assert!(error.contains("could not append"), "{error}");
        let next = store.append_later(2, vec![event("b", "K1", 2)]).unwrap_err().to_string();
        assert!(next.contains("could not append"), "{next}");
    }

    /// Batches queued behind one that failed are not appended: were a
    /// later one stored, the replay would resume after it and never store
    /// the failed one.
    #[test]
    fn nothing_queued_behind_a_failed_append_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        let store = EventStore::open(&events).unwrap();
        store.append_later(1, vec![event("a", "K1", 1)]).unwrap();
        store.sync().unwrap();
        let shared = store.shared.clone().unwrap();
        // Hold the appends up while 2 and 3 queue, then record a failure
        // the way the thread does. 2's append is usually under way by
        // then (and goes on); 3 must be skipped either way.
        let held = shared.segments.write().unwrap();
        store.append_later(2, vec![event("b", "K1", 2)]).unwrap();
        store.append_later(3, vec![event("c", "K1", 3)]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        shared.progress.lock().unwrap().failed = Some("injected".into());
        drop(held);
        assert!(store.sync().unwrap_err().to_string().contains("injected"));
        drop((shared, store));
        let reopened = EventStore::open(&events).unwrap();
        let last = reopened.last_journal().unwrap();
        assert!(matches!(last, Some(1 | 2)), "3 came after a failure and is not stored: {last:?}");
    }

    /// A refill's events (numbered below the live ones) join the store
    /// whole, list as older than the events stored meanwhile, and leave
    /// the live journal position alone; an adoption a stop interrupted is
    /// deleted at the next start.
    #[test]
    fn a_refill_joins_below_the_live_events_and_an_interrupted_one_is_deleted() {
        const FIRST_LIVE: u64 = 1 << 40;
        let dir = tempfile::tempdir().unwrap();
        let (events, refill_dir) = (dir.path().join("events"), dir.path().join("events.refill"));
        let store = EventStore::open(&events).unwrap();
        store.number_from(FIRST_LIVE).unwrap();
        // The replay and live batches, journal 8 on.
        store.append_later(8, vec![event("live-1", "K1", 5_000)]).unwrap();
        let mut refill = Refilling::create(&refill_dir, 7).unwrap();
        // Chunks filed under the same entry, spread over two hours.
        refill.append(&[event("old-1", "K1", 1_000), event("old-2", "K2", 1_100)]).unwrap();
        refill.append(&[event("old-3", "K1", 3_600_000 + 1)]).unwrap();
        assert_eq!(store.of_item("orders", "K1").unwrap().len(), 1, "nothing refilled shows before the end");
        assert_eq!(store.adopt(refill).unwrap(), 3);
        store.append_later(9, vec![event("live-2", "K1", 6_000)]).unwrap();
        let of_k1: Vec<String> = store.of_item("orders", "K1").unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(of_k1, ["old-1", "old-3", "live-1", "live-2"], "refilled ones first, in arrival order");
        assert_eq!(store.last_journal().unwrap(), Some(9));
        assert!(!refill_dir.exists(), "the refill's directory is gone");
        store.sync().unwrap();
        drop(store);
        let reopened = EventStore::open(&events).unwrap();
        assert_eq!(reopened.of_item("orders", "K1").unwrap().len(), 4);
        assert_eq!(reopened.last_journal().unwrap(), Some(9), "the live position, not the refill's entry");
        // Were the adoption cut short, what it moved is deleted whole.
        assert_eq!(reopened.drop_numbered_below(FIRST_LIVE).unwrap(), 3);
        let left: Vec<String> = reopened.of_item("orders", "K1").unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(left, ["live-1", "live-2"]);
        assert_eq!(reopened.last_journal().unwrap(), Some(9));
    }
}
