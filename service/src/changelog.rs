//! The state changelog: the journal and the snapshots of `mon run`, also
//! kept in a compacted Kafka topic, so that the local state directory is a
//! cache that a process started on an empty, missing or stale directory
//! rebuilds from Kafka (issue 14, first slice: one process per group).
//!
//! What is written, and when (docs/notes/durability.md, "The changelog"):
//! - `j/<seq>`: each journal entry, its frame exactly as `journal.rs`
//!   wrote it, produced right after the journal's fsync; the processing
//!   thread waits for the broker's acknowledgement before the batch's sled
//!   write, so nothing of the batch leaves the process (records, replies,
//!   offset commits) before the changelog holds it. A frame larger than a
//!   chunk goes in parts, `j/<seq>/<part>` after the first.
//! - `s/<covered>/<n>` and `s`: a snapshot in chunks, then its header
//!   naming the first journal sequence it does not cover, the chunk count,
//!   the length and a CRC-32. The chunks of each snapshot have keys of
//!   their own (the covered sequence is in the key), so a crash while a new
//!   one is written never damages the one the header still names. Once
//!   the header is acknowledged, tombstones delete the entries it covers
//!   and the previous snapshot's chunks, so compaction bounds the topic.
//!   A snapshot also carries the stored Kafka offsets, the outbox and the
//!   pending notifications: their batches are covered, so a restore would
//!   not make them again.
//! - `n/<notification id>`: a notification's delivery mark, produced by
//!   the delivery task after its receiver answered (`delivery.rs`); a
//!   restore writes those as sent or failed, never pending.
//!
//! Everything goes to partition [`PARTITION`]: today one engine consumes
//! every input partition, so there is one changelog stream; the topic is
//! created with the input's partition count for the per-partition
//! ownership to come.
//!
//! At start ([`open`]), before the ordinary recovery: if the changelog is
//! ahead of the local journal, it is read from the beginning to its end and
//! the latest complete snapshot and the entries after it are written as
//! the local `snapshot.bin` and `journal.log`; the recovery then replays
//! them. If the local state is ahead (the topic is new or was deleted, or
//! a crash came between the fsync and the acknowledgement), the missing
//! entries are sent, or a snapshot is taken.
//!
//! What it must not do: start on a changelog it cannot read whole. A
//! record it does not understand stops the start with its topic,
//! partition and offset, rather than run on a state that silently lost
//! part of itself.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::journal::{self, Journal};
use crate::kafka::{client_config, client_error, Context};
use crate::metrics::Metrics;
use crate::store::{Offsets, Settled, Store};

/// The one partition the single engine writes and reads.
pub const PARTITION: i32 = 0;

/// The most bytes in one record's value: well below Kafka's default
/// `message.max.bytes` (about 1 MB), with room for the key and headers.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The version of the encodings below; a reader refuses any other.
const FORMAT: u8 = 1;

const HEADER_KEY: &str = "s";

/// How long the read of the whole changelog at start may take.
const READ_LIMIT: Duration = Duration::from_secs(600);

/// How long one produce may wait for the broker (librdkafka retries inside
/// it) before the changelog counts as behind (see [`Changelog::append`]).
const PRODUCE_TIMEOUT_MS: &str = "10000";

/// While the changelog is behind, a snapshot to make it whole again is
/// tried this often.
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// How long the broker may take to answer the metadata request at start
/// before the run goes on without the changelog.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// The key of part `part` of journal entry `seq`.
pub fn entry_key(seq: u64, part: u16) -> String {
    match part {
        0 => format!("j/{seq:020}"),
        _ => format!("j/{seq:020}/{part}"),
    }
}

/// The key of chunk `n` of the snapshot that covers entries below `covered`.
pub fn chunk_key(covered: u64, n: u32) -> String {
    format!("s/{covered:020}/{n}")
}

pub fn mark_key(notification: &str) -> String {
    format!("n/{notification}")
}

/// The records of one journal entry: each value is the format byte, the
/// part number and the part count (u16, big-endian), then that part of the
/// frame.
pub fn entry_records(seq: u64, frame: &[u8]) -> Vec<(String, Vec<u8>)> {
    let parts: Vec<&[u8]> = if frame.is_empty() { vec![frame] } else { frame.chunks(CHUNK_BYTES).collect() };
    let count = parts.len() as u16;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut value = Vec::with_capacity(part.len() + 5);
            value.push(FORMAT);
            value.extend_from_slice(&(i as u16).to_be_bytes());
            value.extend_from_slice(&count.to_be_bytes());
            value.extend_from_slice(part);
            (entry_key(seq, i as u16), value)
        })
        .collect()
}

/// The header record of a snapshot (JSON, so a person can read it with
/// any Kafka client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub v: u8,
    /// The first journal sequence the snapshot does not cover.
    pub covered: u64,
    pub chunks: u32,
    pub bytes: u64,
    pub crc32: u32,
}

/// What a snapshot in the changelog holds besides the engine's state.
#[derive(Debug, Default, PartialEq)]
pub struct SnapshotPayload {
    /// The stored Kafka offsets when it was taken.
    pub offsets: Offsets,
    /// Outbox items, as `store.rs` stores them.
    pub outbox: Vec<Vec<u8>>,
    /// Pending notifications, as `store.rs` stores them.
    pub notifications: Vec<Vec<u8>>,
    /// `Live::snapshot_bytes`.
    pub engine: Vec<u8>,
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let value = rest.get(..len)?;
    *bytes = &rest[len..];
    Some(value)
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    let (n, rest) = bytes.split_first_chunk::<4>()?;
    *bytes = rest;
    Some(u32::from_le_bytes(*n))
}

/// Format byte; offsets (count, then topic, partition, next offset); the
/// outbox items and notifications (count, then each length-prefixed); the
/// engine's bytes to the end.
pub fn encode_snapshot(offsets: &Offsets, outbox: &[Vec<u8>], notifications: &[Vec<u8>], engine: &[u8]) -> Vec<u8> {
    let extra: usize = outbox.iter().chain(notifications).map(|b| b.len() + 4).sum();
    let mut out = Vec::with_capacity(engine.len() + extra + 64);
    out.push(FORMAT);
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for ((topic, partition), next) in offsets {
        put(&mut out, topic.as_bytes());
        out.extend_from_slice(&partition.to_le_bytes());
        out.extend_from_slice(&next.to_le_bytes());
    }
    for list in [outbox, notifications] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for item in list {
            put(&mut out, item);
        }
    }
    out.extend_from_slice(engine);
    out
}

pub fn decode_snapshot(bytes: &[u8]) -> Option<SnapshotPayload> {
    let (&format, mut rest) = bytes.split_first()?;
    if format != FORMAT {
        return None;
    }
    let mut payload = SnapshotPayload::default();
    for _ in 0..take_u32(&mut rest)? {
        let topic = std::str::from_utf8(take(&mut rest)?).ok()?.to_string();
        let (partition, r) = rest.split_first_chunk::<4>()?;
        let (next, r) = r.split_first_chunk::<8>()?;
        payload.offsets.insert((topic, i32::from_le_bytes(*partition)), i64::from_le_bytes(*next));
        rest = r;
    }
    for list in [&mut payload.outbox, &mut payload.notifications] {
        for _ in 0..take_u32(&mut rest)? {
            list.push(take(&mut rest)?.to_vec());
        }
    }
    payload.engine = rest.to_vec();
    Some(payload)
}

/// The chunk records and the header of a snapshot of `bytes` covering the
/// entries below `covered`.
pub fn snapshot_records(covered: u64, bytes: &[u8]) -> (Vec<(String, Vec<u8>)>, SnapshotHeader) {
    let chunks: Vec<(String, Vec<u8>)> = bytes
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(n, chunk)| (chunk_key(covered, n as u32), chunk.to_vec()))
        .collect();
    let header = SnapshotHeader {
        v: FORMAT,
        covered,
        chunks: chunks.len() as u32,
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
    };
    (chunks, header)
}

/// The keys to delete once snapshot `new`'s header is acknowledged: the
/// parts of every entry it covers and the chunks of the snapshot it
/// replaces (unless that one had the same keys, being of the same point).
pub fn tombstones_after_snapshot(
    entries: &BTreeMap<u64, u16>,
    previous: Option<&SnapshotHeader>,
    new: &SnapshotHeader,
) -> Vec<String> {
    let mut keys: Vec<String> = entries
        .range(..new.covered)
        .flat_map(|(seq, parts)| (0..*parts).map(move |part| entry_key(*seq, part)))
        .collect();
    if let Some(previous) = previous {
        let first_stale = if previous.covered == new.covered { new.chunks } else { 0 };
        keys.extend((first_stale..previous.chunks).map(|n| chunk_key(previous.covered, n)));
    }
    keys
}

/// A delivery mark's value.
#[derive(Debug, Serialize, Deserialize)]
struct Mark {
    v: u8,
    sent: bool,
    at: i64,
}

/// Whether the local state must be rebuilt from the changelog: only when
/// the changelog holds entries the local journal does not. A local state
/// ahead of it or equal to it is kept (and the changelog is caught up).
pub fn must_restore(local_next: u64, changelog_next: u64) -> bool {
    changelog_next > local_next
}

/// The changelog as read back: the latest value of each key.
#[derive(Debug, Default)]
pub struct Contents {
    /// Key → (offset, value); a tombstone removes its key.
    values: BTreeMap<String, (i64, Vec<u8>)>,
    pub bytes: u64,
}

/// What a changelog record's problem is, where it is.
#[derive(Debug, PartialEq)]
pub struct Damaged {
    pub offset: i64,
    pub why: String,
}

fn damaged(offset: i64, why: impl Into<String>) -> Damaged {
    Damaged { offset, why: why.into() }
}

/// The state the changelog holds, checked and in order.
#[derive(Debug, Default)]
pub struct Restored {
    /// The latest complete snapshot.
    pub snapshot: Option<(SnapshotHeader, SnapshotPayload)>,
    /// Whole frames of the entries from the snapshot on, in order.
    pub frames: Vec<Vec<u8>>,
    /// Delivery marks by notification id.
    pub marks: HashMap<String, Settled>,
    /// Every entry still in the topic and its part count (tombstones to come).
    pub entries: BTreeMap<u64, u16>,
}

impl Restored {
    /// The sequence the next entry gets after this state.
    pub fn next_seq(&self) -> u64 {
        let covered = self.snapshot.as_ref().map_or(0, |(h, _)| h.covered);
        covered + self.frames.len() as u64
    }
}

impl Contents {
    /// Takes one record (in offset order); `None` is a tombstone.
    pub fn add(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), Damaged> {
        let key = key.ok_or_else(|| damaged(offset, "a record without a key"))?;
        let key = std::str::from_utf8(key).map_err(|_| damaged(offset, "a key that is not UTF-8"))?;
        match value {
            Some(value) => {
                self.bytes += value.len() as u64;
                self.values.insert(key.to_string(), (offset, value.to_vec()));
            }
            None => {
                self.values.remove(key);
            }
        }
        Ok(())
    }

    /// Checks every record and puts the state together.
    pub fn restore(self) -> Result<Restored, Damaged> {
        let mut restored = Restored::default();
        let mut parts: BTreeMap<u64, Vec<(u16, u16, i64, Vec<u8>)>> = BTreeMap::new();
        let mut header: Option<(i64, SnapshotHeader)> = None;
        let mut chunks: HashMap<(u64, u32), (i64, Vec<u8>)> = HashMap::new();
        for (key, (offset, value)) in self.values {
            if let Some(rest) = key.strip_prefix("j/") {
                let (seq, part) = match rest.split_once('/') {
                    Some((seq, part)) => (seq, Some(part)),
                    None => (rest, None),
                };
                let seq: u64 = seq.parse().map_err(|_| damaged(offset, format!("an unknown key `{key}`")))?;
                let key_part: u16 =
                    part.map_or(Ok(0), str::parse).map_err(|_| damaged(offset, format!("an unknown key `{key}`")))?;
                let (&format, rest) = value.split_first().ok_or_else(|| damaged(offset, "an empty journal entry"))?;
                let (part, rest) =
                    rest.split_first_chunk::<2>().ok_or_else(|| damaged(offset, "a short journal entry"))?;
                let (count, rest) =
                    rest.split_first_chunk::<2>().ok_or_else(|| damaged(offset, "a short journal entry"))?;
                let (part, count) = (u16::from_be_bytes(*part), u16::from_be_bytes(*count));
                if format != FORMAT || part != key_part || part >= count {
                    return Err(damaged(
                        offset,
                        format!("journal entry {seq}: format {format}, part {part} of {count}"),
                    ));
                }
                parts.entry(seq).or_default().push((part, count, offset, rest.to_vec()));
            } else if key == HEADER_KEY {
                let parsed: SnapshotHeader = serde_json::from_slice(&value)
                    .map_err(|e| damaged(offset, format!("the snapshot header is not readable: {e}")))?;
                if parsed.v != FORMAT {
                    return Err(damaged(offset, format!("a snapshot header of format {}", parsed.v)));
                }
                header = Some((offset, parsed));
            } else if let Some(rest) = key.strip_prefix("s/") {
                let unknown = || damaged(offset, format!("an unknown key `{key}`"));
                let (covered, n) = rest.split_once('/').ok_or_else(unknown)?;
                let covered: u64 = covered.parse().map_err(|_| unknown())?;
                let n: u32 = n.parse().map_err(|_| unknown())?;
                chunks.insert((covered, n), (offset, value));
            } else if let Some(id) = key.strip_prefix("n/") {
                let mark: Mark = serde_json::from_slice(&value)
                    .map_err(|e| damaged(offset, format!("delivery mark of {id} is not readable: {e}")))?;
                restored.marks.insert(id.to_string(), Settled { sent: mark.sent, at: mark.at });
            } else {
                return Err(damaged(offset, format!("an unknown key `{key}`")));
            }
        }
        let covered = match header {
            Some((offset, header)) => {
                let mut bytes = Vec::with_capacity(header.bytes as usize);
                for n in 0..header.chunks {
                    let (_, chunk) = chunks.remove(&(header.covered, n)).ok_or_else(|| {
                        damaged(
                            offset,
                            format!("snapshot {}: chunk {n} of {} is missing", header.covered, header.chunks),
                        )
                    })?;
                    bytes.extend_from_slice(&chunk);
                }
                if bytes.len() as u64 != header.bytes || crc32fast::hash(&bytes) != header.crc32 {
                    return Err(damaged(
                        offset,
                        format!("snapshot {}: its chunks do not match its header", header.covered),
                    ));
                }
                let payload = decode_snapshot(&bytes)
                    .ok_or_else(|| damaged(offset, format!("snapshot {}: not readable", header.covered)))?;
                let covered = header.covered;
                restored.snapshot = Some((header, payload));
                covered
            }
            None => 0,
        };
        for (seq, mut pieces) in parts {
            let count = pieces[0].1;
            restored.entries.insert(seq, count);
            if seq < covered {
                continue;
            }
            let offset = pieces[0].2;
            let expected = covered + restored.frames.len() as u64;
            if seq != expected {
                return Err(damaged(offset, format!("journal entry {expected} is missing (the next one is {seq})")));
            }
            pieces.sort_by_key(|p| p.0);
            if pieces.len() != count as usize || pieces.iter().any(|p| p.1 != count) {
                return Err(damaged(offset, format!("journal entry {seq}: {} of its {count} parts", pieces.len())));
            }
            let frame: Vec<u8> = pieces.into_iter().flat_map(|p| p.3).collect();
            if journal::decode_frame(&frame).is_none_or(|entry| entry.seq != seq) {
                return Err(damaged(offset, format!("journal entry {seq} is damaged (length, CRC or sequence)")));
            }
            restored.frames.push(frame);
        }
        Ok(restored)
    }
}

/// The changelog's metrics (registered with the service's others).
pub struct ChangelogMetrics {
    /// From handing a journal entry to the producer to its acknowledgement.
    pub produce_seconds: Histogram,
    pub restored_entries: Counter,
    pub restored_bytes: Counter,
    pub restore_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 while the changelog lacks entries the local journal has.
    pub behind: Gauge,
}

impl Default for ChangelogMetrics {
    fn default() -> Self {
        ChangelogMetrics::new()
    }
}

impl ChangelogMetrics {
    pub fn new() -> Self {
        ChangelogMetrics {
            produce_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 14)),
            restored_entries: Counter::default(),
            restored_bytes: Counter::default(),
            restore_seconds: Gauge::default(),
            behind: Gauge::default(),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "changelog_produce_seconds",
            "From a journal entry handed to the changelog producer to the broker's acknowledgement",
            self.produce_seconds.clone(),
        );
        registry.register(
            "changelog_restored_entries",
            "Journal entries rebuilt from the changelog at start",
            self.restored_entries.clone(),
        );
        registry.register(
            "changelog_restored_bytes",
            "Bytes read from the changelog to rebuild the state at start",
            self.restored_bytes.clone(),
        );
        registry.register(
            "changelog_restore_seconds",
            "Time the last restore from the changelog took",
            self.restore_seconds.clone(),
        );
        registry.register(
            "changelog_behind",
            "1 while the changelog lacks journal entries (Kafka did not acknowledge them); a snapshot is retried",
            self.behind.clone(),
        );
    }
}

type Producer = FutureProducer<Context>;

/// Produces to partition [`PARTITION`] and waits for each acknowledgement.
struct Sender {
    producer: Producer,
    topic: String,
    runtime: tokio::runtime::Handle,
}

impl Sender {
    fn enqueue(&self, key: &str, value: Option<&[u8]>) -> Result<DeliveryFuture, Error> {
        loop {
            let record = FutureRecord::<str, [u8]>::to(&self.topic).partition(PARTITION).key(key);
            let record = match value {
                Some(value) => record.payload(value),
                None => record,
            };
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                // Why wait: the queue empties as the broker acknowledges.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err((e, _)) => return Err(self.failed(key, e)),
            }
        }
    }

    /// Produces `records` and returns once the broker has acknowledged all.
    fn send_all(&self, records: &[(String, Option<&[u8]>)]) -> Result<(), Error> {
        let deliveries = records
            .iter()
            .map(|(key, value)| Ok((key, self.enqueue(key, *value)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        self.runtime.block_on(async {
            for (key, delivery) in deliveries {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(self.failed(key, e)),
                    Err(_) => {
                        return Err(Error::new(Domain::Kafka, Retry::Later, format!("{key}: the producer was dropped")))
                    }
                }
            }
            Ok(())
        })
    }

    fn failed(&self, key: &str, e: KafkaError) -> Error {
        Error::new(Domain::Kafka, Retry::Later, format!("cannot write {key} to the changelog {}", self.topic))
            .caused_by(e)
    }
}

/// The writing side, owned by the processing thread.
pub struct Changelog {
    sender: Sender,
    /// Entries in the topic not yet deleted, with their part counts.
    entries: BTreeMap<u64, u16>,
    /// The snapshot the header names now.
    snapshot: Option<SnapshotHeader>,
    /// The changelog holds every entry below this.
    next_seq: u64,
    /// Since when the changelog lacks entries (a produce failed, or it was
    /// behind the local state at start), and when a snapshot was last tried.
    behind: Option<Instant>,
    pub marks: Arc<Marks>,
    metrics: Arc<Metrics>,
}

impl Changelog {
    /// Sends journal entry `seq` (its frame as written) and returns once
    /// the broker has it. Why block here: the sled write after it is what
    /// lets the batch's outputs out, and each must be in the changelog
    /// first.
    ///
    /// When the broker does not acknowledge it within the producer's
    /// timeout, the changelog is behind: later entries are not sent (the
    /// service stays up, as it does without Kafka), and a snapshot that
    /// makes it whole again is tried every [`RETRY_EVERY`]
    /// ([`wants_snapshot`](Self::wants_snapshot)). Until then, a lost disk
    /// loses what the changelog lacks (docs/notes/durability.md).
    pub fn append(&mut self, seq: u64, frame: &[u8]) {
        if self.behind.is_some() {
            return;
        }
        let started = Instant::now();
        let records = entry_records(seq, frame);
        let refs: Vec<(String, Option<&[u8]>)> = records.iter().map(|(k, v)| (k.clone(), Some(v.as_slice()))).collect();
        match self.sender.send_all(&refs) {
            Ok(()) => {
                self.entries.insert(seq, records.len() as u16);
                self.next_seq = seq + 1;
                self.metrics.changelog.produce_seconds.observe(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    entry = seq,
                    "changelog: the broker did not acknowledge a journal entry; the changelog is behind until a \
                     snapshot reaches it"
                );
                self.fell_behind();
            }
        }
    }

    fn fell_behind(&mut self) {
        self.behind = Some(Instant::now());
        self.metrics.changelog.behind.set(1);
    }

    /// True when the changelog is behind and it is time to try a snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.behind.is_some_and(|since| since.elapsed() >= RETRY_EVERY)
    }

    /// Sends a snapshot that covers every entry below `covered`, then
    /// deletes what it makes useless. `settled` are the delivery marks
    /// acknowledged before `payload`'s notifications were read: those
    /// notifications are out of the pending list the snapshot carries, and
    /// their batches are covered, so no restore makes them again.
    /// A failure leaves (or makes) the changelog behind, to be tried again.
    pub fn snapshot(&mut self, covered: u64, payload: &[u8], settled: Vec<String>) {
        match self.try_snapshot(covered, payload, settled) {
            Ok(()) => {
                if self.behind.take().is_some() {
                    tracing::info!(covered, "changelog: whole again");
                }
                self.metrics.changelog.behind.set(0);
            }
            Err(e) => {
                tracing::error!(error = %e, covered, "changelog: cannot write a snapshot; it is behind");
                self.fell_behind();
            }
        }
    }

    fn try_snapshot(&mut self, covered: u64, payload: &[u8], settled: Vec<String>) -> Result<(), Error> {
        let (chunks, header) = snapshot_records(covered, payload);
        let refs: Vec<(String, Option<&[u8]>)> = chunks.iter().map(|(k, v)| (k.clone(), Some(v.as_slice()))).collect();
        self.sender.send_all(&refs)?;
        let header_json = serde_json::to_vec(&header)
            .map_err(|e| Error::damaged(Domain::Kafka, "cannot encode a snapshot header").caused_by(e))?;
        // Why after the chunks: a header names only chunks the broker has.
        self.sender.send_all(&[(HEADER_KEY.to_string(), Some(header_json.as_slice()))])?;
        let mut tombstones = tombstones_after_snapshot(&self.entries, self.snapshot.as_ref(), &header);
        tombstones.extend(settled.iter().map(|id| mark_key(id)));
        let refs: Vec<(String, Option<&[u8]>)> = tombstones.into_iter().map(|k| (k, None)).collect();
        // A lost tombstone only leaves a record that a restore skips.
        if let Err(e) = self.sender.send_all(&refs) {
            tracing::warn!(error = %e, "changelog: some records the snapshot covers were not deleted");
        }
        self.entries = self.entries.split_off(&covered);
        self.snapshot = Some(header);
        self.next_seq = self.next_seq.max(covered);
        tracing::info!(covered, chunks = chunks.len(), bytes = payload.len(), "changelog: snapshot written");
        Ok(())
    }

    /// At start: true if the local journal has entries the changelog
    /// lacks (a crash between the fsync and the acknowledgement, a new or
    /// deleted topic, a run that went on without it). Only a snapshot
    /// makes it whole then: sending the missing entries alone would be
    /// wrong if the changelog's entries came from another history of the
    /// group (a run started on an empty directory while Kafka was away).
    pub fn behind_local(&mut self, local_next: u64) -> bool {
        if self.next_seq >= local_next {
            return false;
        }
        tracing::info!(
            changelog = self.next_seq,
            local = local_next,
            "changelog: behind the local state; a snapshot will be written"
        );
        self.fell_behind();
        true
    }
}

/// The delivery marks, written by the delivery task.
pub struct Marks {
    sender: Sender,
    /// Marks acknowledged since the last snapshot took them.
    acknowledged: Mutex<Vec<String>>,
}

impl Marks {
    /// Records that notification `id` is settled. Awaited by the delivery
    /// task after the receiver's answer; a crash before the mark is
    /// acknowledged lets a restored process send it once more.
    pub async fn mark(&self, id: &str, settled: Settled) {
        let value = Mark { v: FORMAT, sent: settled.sent, at: settled.at };
        let Ok(value) = serde_json::to_vec(&value) else { return };
        let key = mark_key(id);
        let delivery = match self.sender.enqueue(&key, Some(&value)) {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, id, "changelog: cannot mark a notification delivered");
                return;
            }
        };
        match delivery.await {
            Ok(Ok(_)) => {
                if let Ok(mut acknowledged) = self.acknowledged.lock() {
                    acknowledged.push(id.to_string());
                }
            }
            Ok(Err((e, _))) => tracing::warn!(error = %e, id, "changelog: cannot mark a notification delivered"),
            Err(_) => {}
        }
    }

    /// The marks acknowledged so far, taken: a snapshot about to be made
    /// deletes them.
    pub fn take_acknowledged(&self) -> Vec<String> {
        self.acknowledged.lock().map(|mut marks| std::mem::take(&mut *marks)).unwrap_or_default()
    }
}

/// What [`open`] did.
pub struct Opened {
    pub changelog: Changelog,
    /// Entries rebuilt from the changelog (0: the local state was kept).
    pub restored_entries: u64,
}

fn producer(kafka: &KafkaConfig, context: Context) -> Result<Producer, Error> {
    client_config(
        kafka,
        &[
            ("enable.idempotence", "true"),
            // Why no linger: the processing thread waits for each entry.
            ("linger.ms", "0"),
            ("message.timeout.ms", PRODUCE_TIMEOUT_MS),
        ],
    )
    .create_with_context(context)
    .map_err(|e| client_error("cannot create the changelog producer", e))
}

/// Makes sure the changelog topic exists, reads it, and rebuilds the local
/// journal and snapshot in `state_dir` from it when it is ahead of them
/// (with what the snapshot carried and the delivery marks into `store`).
/// Called before the journal is opened for recovery.
///
/// `None` when the broker cannot be reached: the run goes on from the local
/// state without a changelog (as a service without Kafka does; the next
/// start with Kafka reachable writes a snapshot to it). A changelog that
/// is there but cannot be read whole is an error.
pub fn open(
    kafka: &KafkaConfig,
    topic: &str,
    context: Context,
    runtime: &tokio::runtime::Runtime,
    state_dir: &Path,
    store: &mut Store,
    metrics: Arc<Metrics>,
) -> Result<Option<Opened>, Error> {
    match open_reachable(kafka, topic, context, runtime, state_dir, store, metrics) {
        Err(e) if e.is_retryable() => {
            tracing::warn!(
                error = %e,
                topic,
                "changelog: Kafka cannot be reached; this run starts from the local state and does not mirror it"
            );
            Ok(None)
        }
        other => other.map(Some),
    }
}

fn open_reachable(
    kafka: &KafkaConfig,
    topic: &str,
    context: Context,
    runtime: &tokio::runtime::Runtime,
    state_dir: &Path,
    store: &mut Store,
    metrics: Arc<Metrics>,
) -> Result<Opened, Error> {
    let started = Instant::now();
    ensure_topic(kafka, topic, &context, runtime)?;
    let contents = read(kafka, topic)?;
    let bytes = contents.bytes;
    let restored = contents.restore().map_err(|d| {
        Error::new(
            Domain::Kafka,
            Retry::Never,
            format!(
                "the changelog {topic}, partition {PARTITION}, offset {}: {}; the service will not start on a state \
                 it cannot read whole. To start over from the local state, delete the topic (what only it held is \
                 then lost) or set `changelog = false` in [kafka]",
                d.offset, d.why
            ),
        )
    })?;
    let local_next = {
        let (journal, _) = Journal::open(state_dir)?;
        journal.next_seq()
    };
    let changelog_next = restored.next_seq();
    let snapshot_header = restored.snapshot.as_ref().map(|(h, _)| h.clone());
    let mut restored_entries = 0;
    if must_restore(local_next, changelog_next) {
        let covered = snapshot_header.as_ref().map(|h| h.covered);
        restored_entries = restored.frames.len() as u64;
        store.settle_by_marks(restored.marks);
        let snapshot = restored.snapshot.map(|(header, payload)| (header.covered, payload));
        journal::install(
            state_dir,
            snapshot.as_ref().map(|(covered, p)| (*covered, p.engine.as_slice())),
            &restored.frames,
        )?;
        if let Some((_, payload)) = snapshot {
            let mut stored = store.offsets()?;
            store.restore_outputs(&payload.outbox, &payload.notifications, payload.offsets, &mut stored)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        metrics.changelog.restored_entries.inc_by(restored_entries);
        metrics.changelog.restored_bytes.inc_by(bytes);
        metrics.changelog.restore_seconds.set(seconds);
        tracing::info!(
            topic,
            entries = restored_entries,
            snapshot_covers = covered,
            bytes,
            local_next,
            changelog_next,
            ms = (seconds * 1000.0) as u64,
            "state restored from the changelog"
        );
    } else {
        tracing::info!(topic, local_next, changelog_next, bytes, "changelog read; the local state is kept");
    }
    let marks = Marks {
        sender: Sender {
            producer: producer(kafka, context.clone())?,
            topic: topic.to_string(),
            runtime: runtime.handle().clone(),
        },
        acknowledged: Mutex::new(Vec::new()),
    };
    let changelog = Changelog {
        sender: Sender {
            producer: producer(kafka, context)?,
            topic: topic.to_string(),
            runtime: runtime.handle().clone(),
        },
        entries: restored.entries,
        snapshot: snapshot_header,
        next_seq: changelog_next,
        behind: None,
        marks: Arc::new(marks),
        metrics,
    };
    Ok(Opened { changelog, restored_entries })
}

/// Creates the topic when it is missing, with the first input topic's
/// partition count (or `create_topics.partitions` if that is unknown).
fn ensure_topic(
    kafka: &KafkaConfig,
    topic: &str,
    context: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Error> {
    let probe: BaseConsumer<Context> = client_config(kafka, &[])
        .create_with_context(context.clone())
        .map_err(|e| client_error("cannot create a Kafka client to read the changelog", e))?;
    let partitions = |name: &str| -> Result<Option<i32>, Error> {
        let metadata = probe.fetch_metadata(Some(name), METADATA_TIMEOUT).map_err(|e| {
            Error::new(Domain::Kafka, Retry::Later, format!("cannot read the metadata of {name} at {}", kafka.brokers))
                .caused_by(e)
        })?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    };
    if partitions(topic)?.is_some() {
        return Ok(());
    }
    let input = match kafka.topics.first() {
        Some(first) => partitions(first)?,
        None => None,
    };
    let count = input.unwrap_or(kafka.create_topics.partitions);
    if runtime.block_on(crate::kafka::topics::create_changelog(kafka, context.clone(), topic, count))? {
        tracing::info!(topic, partitions = count, "changelog topic created");
    }
    Ok(())
}

/// Reads partition [`PARTITION`] of `topic` from its beginning to its end
/// (a short-lived consumer with a manual assignment, in no group).
fn read(kafka: &KafkaConfig, topic: &str) -> Result<Contents, Error> {
    let reader_group = format!("{}.changelog-reader", kafka.group);
    let consumer: BaseConsumer = client_config(
        kafka,
        &[
            // librdkafka refuses `assign` without a group id; this group
            // is never joined (no subscribe) and nothing is committed to it.
            ("group.id", &reader_group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            // Why EOF events and not the high watermark: the end is known
            // from the fetch itself (a ListOffsets answer may lag one batch
            // behind on some brokers, docs/notes/kafka-broker.md).
            ("enable.partition.eof", "true"),
            ("fetch.wait.max.ms", "50"),
        ],
    )
    .create()
    .map_err(|e| client_error("cannot create the changelog reader", e))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, PARTITION, Offset::Beginning)
        .map_err(|e| client_error("cannot assign the changelog partition", e))?;
    consumer.assign(&assignment).map_err(|e| client_error("cannot assign the changelog partition", e))?;
    let mut contents = Contents::default();
    let started = Instant::now();
    loop {
        if started.elapsed() > READ_LIMIT {
            return Err(Error::new(
                Domain::Kafka,
                Retry::Later,
                format!("reading the changelog {topic} took more than {} s", READ_LIMIT.as_secs()),
            ));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(contents),
            Some(Err(e)) => {
                return Err(
                    Error::new(Domain::Kafka, Retry::Later, format!("cannot read the changelog {topic}")).caused_by(e)
                )
            }
            Some(Ok(message)) => {
                contents.add(message.offset(), message.key(), message.payload()).map_err(|d| {
                    Error::new(
                        Domain::Kafka,
                        Retry::Never,
                        format!(
                            "the changelog {topic}, partition {PARTITION}, offset {}: {}; delete the topic to start \
                             over from the local state",
                            d.offset, d.why
                        ),
                    )
                })?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mon_runtime::live::Input;

    fn frame(seq: u64, lines: usize) -> Vec<u8> {
        let inputs: Vec<Input> = (0..lines).map(|i| Input::Line(format!("{{\"n\":{i}}}"))).collect();
        journal::encode_frame(seq, &inputs, &Offsets::new())
    }

    fn contents(records: &[(String, Option<Vec<u8>>)]) -> Contents {
        let mut contents = Contents::default();
        for (offset, (key, value)) in records.iter().enumerate() {
            contents.add(offset as i64, Some(key.as_bytes()), value.as_deref()).unwrap();
        }
        contents
    }

    fn produced(records: Vec<(String, Vec<u8>)>) -> Vec<(String, Option<Vec<u8>>)> {
        records.into_iter().map(|(k, v)| (k, Some(v))).collect()
    }

    #[test]
    fn a_large_entry_goes_in_parts_and_comes_back_whole() {
        let big = frame(1, 100_000);
        assert!(big.len() > 2 * CHUNK_BYTES, "{} bytes", big.len());
        let records = entry_records(1, &big);
        assert_eq!(records.len(), big.len().div_ceil(CHUNK_BYTES));
        assert_eq!(records[0].0, "j/00000000000000000001");
        assert_eq!(records[1].0, "j/00000000000000000001/1");
        assert!(records.iter().all(|(_, v)| v.len() <= CHUNK_BYTES + 5));
        let mut all = produced(entry_records(0, &frame(0, 2)));
        all.extend(produced(records.clone()));
        let restored = contents(&all).restore().unwrap();
        assert_eq!(restored.frames, vec![frame(0, 2), big]);
        assert_eq!(restored.next_seq(), 2);
        assert_eq!(restored.entries.get(&1), Some(&(records.len() as u16)));
        // A part that never arrived makes the entry unreadable, not shorter.
        let mut all = produced(entry_records(0, &frame(0, 2)));
        all.extend(produced(records.into_iter().take(2).collect()));
        assert!(contents(&all).restore().unwrap_err().why.contains("journal entry 1: 2 of its"));
    }

    #[test]
    fn a_snapshot_is_chunked_named_by_its_header_and_replaces_what_it_covers() {
        let offsets: Offsets = [(("events".to_string(), 0), 42)].into_iter().collect();
        let engine: Vec<u8> = (0..1_300_000u32).map(|i| (i % 251) as u8).collect();
        let payload = encode_snapshot(&offsets, &[b"outbox item".to_vec()], &[b"{}".to_vec()], &engine);
        let (chunks, header) = snapshot_records(3, &payload);
        assert_eq!(header.chunks, 3, "1.3 MB in 512 KB chunks");
        assert_eq!(chunks[2].0, "s/00000000000000000003/2");
        assert_eq!(header.crc32, crc32fast::hash(&payload));

        // Entries 0..3 and an older snapshot of 2 chunks are in the topic.
        let entries: BTreeMap<u64, u16> = [(1, 1), (2, 2), (3, 1)].into_iter().collect();
        let previous = SnapshotHeader { v: FORMAT, covered: 1, chunks: 2, bytes: 10, crc32: 0 };
        let tombstones = tombstones_after_snapshot(&entries, Some(&previous), &header);
        assert_eq!(
            tombstones,
            vec![
                "j/00000000000000000001",
                "j/00000000000000000002",
                "j/00000000000000000002/1",
                "s/00000000000000000001/0",
                "s/00000000000000000001/1"
            ]
        );
        // A snapshot again at the same point keeps the keys it rewrote.
        let again = SnapshotHeader { chunks: 1, ..header.clone() };
        assert_eq!(
            tombstones_after_snapshot(&BTreeMap::new(), Some(&header), &again),
            vec!["s/00000000000000000003/1", "s/00000000000000000003/2"]
        );

        // Read back in the order they were produced: the header after its
        // chunks, then tombstones; entry 3 stays.
        let mut log = produced(entry_records(2, &frame(2, 1)));
        log.extend(produced(chunks));
        log.push((HEADER_KEY.into(), Some(serde_json::to_vec(&header).unwrap())));
        log.extend(produced(entry_records(3, &frame(3, 1))));
        log.extend(tombstones.into_iter().map(|k| (k, None)));
        log.push((mark_key("n-1"), Some(br#"{"v":1,"sent":true,"at":5}"#.to_vec())));
        let restored = contents(&log).restore().unwrap();
        let (got_header, got) = restored.snapshot.as_ref().unwrap();
        assert_eq!(got_header, &header);
        assert_eq!(got.engine, engine);
        assert_eq!(got.offsets, offsets);
        assert_eq!(got.outbox, vec![b"outbox item".to_vec()]);
        assert_eq!(restored.frames, vec![frame(3, 1)]);
        assert_eq!(restored.next_seq(), 4);
        assert_eq!(restored.marks.get("n-1"), Some(&Settled { sent: true, at: 5 }));
    }

    #[test]
    fn a_damaged_or_unknown_record_is_an_error_at_its_offset() {
        let mut log = produced(entry_records(0, &frame(0, 1)));
        let mut bad = entry_records(1, &frame(1, 1));
        let last = bad[0].1.len() - 1;
        bad[0].1[last] ^= 0xff;
        log.extend(produced(bad));
        assert_eq!(contents(&log).restore().unwrap_err().offset, 1);

        let log = vec![("x/1".to_string(), Some(b"?".to_vec()))];
        let error = contents(&log).restore().unwrap_err();
        assert!(error.why.contains("unknown key `x/1`"), "{error:?}");

        // A gap after the snapshot: entry 1 never arrived.
        let mut log = produced(entry_records(0, &frame(0, 1)));
        log.extend(produced(entry_records(2, &frame(2, 1))));
        let error = contents(&log).restore().unwrap_err();
        assert!(error.why.contains("journal entry 1 is missing"), "{error:?}");

        // A header whose chunk was lost.
        let (_, header) = snapshot_records(1, b"state");
        let log = vec![(HEADER_KEY.to_string(), Some(serde_json::to_vec(&header).unwrap()))];
        assert!(contents(&log).restore().unwrap_err().why.contains("chunk 0 of 1 is missing"));
    }

    #[test]
    fn a_local_state_ahead_of_or_equal_to_the_changelog_is_kept() {
        assert!(!must_restore(10, 10));
        assert!(!must_restore(11, 10));
        assert!(!must_restore(0, 0), "an empty changelog restores nothing");
        assert!(must_restore(0, 1), "an empty state directory");
        assert!(must_restore(9, 10), "a stale one");
        // The changelog's position is the snapshot's plus the entries after it.
        let mut log = produced(snapshot_records(5, &encode_snapshot(&Offsets::new(), &[], &[], b"s")).0);
        let (_, header) = snapshot_records(5, &encode_snapshot(&Offsets::new(), &[], &[], b"s"));
        log.push((HEADER_KEY.into(), Some(serde_json::to_vec(&header).unwrap())));
        log.extend(produced(entry_records(5, &frame(5, 1))));
        assert_eq!(contents(&log).restore().unwrap().next_seq(), 6);
    }
}
