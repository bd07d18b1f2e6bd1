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
//! a crash came between the fsync and the acknowledgement), a snapshot is
//! written to the changelog.
//!
//! With Kafka away, the service stays up, as it does without the
//! changelog: a start that cannot reach the broker goes on without it, and
//! an entry the broker does not acknowledge leaves the changelog behind
//! until a snapshot reaches it (the window is in docs/notes/durability.md).
//!
//! `records.rs` holds the encodings and the checks of what is read back;
//! `read.rs` reads it back (at start, and a standby's following of it);
//! this module produces and decides.
//!
//! What it must not do: start on a changelog it cannot read whole. A
//! record it does not understand stops the start with its topic,
//! partition and offset, rather than run on a state that silently lost
//! part of itself.

mod fence;
mod read;
mod records;

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
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::Offset;

use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::journal::{self, Journal};
use crate::kafka::{client_config, client_error, Context};
use crate::metrics::Metrics;
use crate::store::{Settled, Store};
use fence::Fence;
pub use read::Follower;
use read::{read, read_into, writers_between};
use records::{
    claim_key, claim_value, entry_records, mark_key, mark_value, must_restore, rules_key, rules_records,
    snapshot_records, tombstones_after_snapshot, writer_value, HEADER_KEY, WRITER_HEADER,
};
pub use records::{encode_snapshot, Contents, Restored, SnapshotHeader, CHUNK_BYTES};

/// The one partition the single engine writes and reads.
pub const PARTITION: i32 = 0;

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
    /// This process's claim (`fence.rs`): the epoch every record carries,
    /// and the check of each write's offsets.
    fence: Arc<Fence>,
    /// To read a gap the fence finds.
    kafka: KafkaConfig,
}

/// A newer process claimed the changelog (`fence.rs`).
fn overtaken_error(topic: &str) -> Error {
    Error::new(
        Domain::Kafka,
        Retry::Later,
        format!("a newer process claimed the changelog {topic}; this one writes nothing more to it"),
    )
}

/// With fail-over, a journal entry the changelog did not take.
fn unwritten_error(topic: &str) -> Error {
    Error::new(
        Domain::Kafka,
        Retry::Later,
        format!(
            "the changelog {topic} did not take a journal entry; with fail-over this process stops rather than run \
             ahead of what a standby would take over from"
        ),
    )
}

/// A record for partition [`PARTITION`] of `topic`, carrying writer epoch
/// `epoch` (`fence.rs`).
fn epoch_record<'a>(topic: &'a str, key: &'a str, epoch: u64) -> FutureRecord<'a, str, [u8]> {
    let epoch = writer_value(epoch);
    let headers = OwnedHeaders::new().insert(Header { key: WRITER_HEADER, value: Some(epoch.as_str()) });
    FutureRecord::to(topic).partition(PARTITION).key(key).headers(headers)
}

impl Sender {
    fn enqueue(&self, key: &str, value: Option<&[u8]>) -> Result<DeliveryFuture, Error> {
        loop {
            let record = epoch_record(&self.topic, key, self.fence.epoch());
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

    /// Produces `records` and returns once the broker has acknowledged all,
    /// and the fence found no newer process's record before them (an
    /// error otherwise, [`overtaken_error`]).
    fn send_all(&self, records: &[(String, Option<&[u8]>)]) -> Result<(), Error> {
        if self.fence.overtaken() {
            return Err(overtaken_error(&self.topic));
        }
        let deliveries = records
            .iter()
            .map(|(key, value)| Ok((key, self.enqueue(key, *value)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let mut last = None;
        for (key, delivery) in deliveries {
            let offset = self.acknowledged(key, delivery)?;
            last = last.max(Some(offset));
        }
        match last {
            Some(last) => self.check(last),
            None => Ok(()),
        }
    }

    /// Claims epoch `epoch` again (after [`Fence::reclaim`]): the claim's
    /// offset is known before the check, which would otherwise take this
    /// process's own claim for another's.
    fn claim(&self, epoch: u64) -> Result<(), Error> {
        let key = claim_key(epoch);
        let delivery = self.enqueue(&key, Some(&claim_value(epoch)))?;
        let offset = self.acknowledged(&key, delivery)?;
        self.fence.claimed_at(offset);
        self.check(offset)
    }

    /// Waits for the broker's acknowledgement of `key` and tells the fence
    /// its offset.
    fn acknowledged(&self, key: &str, delivery: DeliveryFuture) -> Result<i64, Error> {
        match self.runtime.block_on(delivery) {
            Ok(Ok(delivery)) => {
                self.fence.acked(delivery.offset);
                Ok(delivery.offset)
            }
            Ok(Err((e, _))) => Err(self.failed(key, e)),
            Err(_) => Err(Error::new(Domain::Kafka, Retry::Later, format!("{key}: the producer was dropped"))),
        }
    }

    /// The fence's check of every offset up to `through` (`fence.rs`).
    fn check(&self, through: i64) -> Result<(), Error> {
        let read = |from, through| writers_between(&self.kafka, &self.topic, from, through);
        match self.fence.check(through, read)? {
            true => Ok(()),
            false => Err(overtaken_error(&self.topic)),
        }
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
    /// Another process shares the consumer group (`kafka::Context`'s
    /// `partitions_elsewhere`): nothing is written while it does, or its
    /// entries and this one's would mix under the same keys.
    fenced: bool,
    /// With fail-over, the lease's say on every write (`lease.rs`): once
    /// it is lost another process runs the state, and this one writes
    /// nothing more, not even its last snapshot.
    lease: Option<crate::lease::Guard>,
    pub marks: Arc<Marks>,
    metrics: Arc<Metrics>,
    /// The rules store's entries in the topic: a hash of each value and
    /// its part count, so that only what changed is sent again.
    rules: HashMap<Vec<u8>, (u32, u16)>,
}

impl Changelog {
    /// Sends what changed in the rules store (`rules/versions.rs`) since
    /// the last call, and deletes what it no longer holds; returns once
    /// the broker has it. Called before a journal entry that activates a
    /// version and before a snapshot, so a state rebuilt from Kafka can
    /// resolve every version its journal and snapshot name. A failure
    /// leaves the changelog behind, as a lost entry does.
    pub fn mirror_rules(&mut self, entries: Vec<crate::rules::versions::Entry>) {
        // Even when behind: the snapshot that makes the changelog whole
        // again comes right after, and must find its program here.
        if self.must_not_write() {
            return;
        }
        let mut records: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut now: HashMap<Vec<u8>, (u32, u16)> = HashMap::new();
        for (key, value) in &entries {
            let crc = crc32fast::hash(value);
            let parts = rules_records(key, value);
            let count = parts.len() as u16;
            let before = self.rules.get(key).copied();
            if before.map(|(c, _)| c) != Some(crc) {
                records.extend(parts.into_iter().map(|(k, v)| (k, Some(v))));
            }
            if let Some((_, old_count)) = before {
                records.extend((count..old_count).map(|part| (rules_key(key, part), None)));
            }
            now.insert(key.clone(), (crc, count));
        }
        for (key, (_, count)) in &self.rules {
            if !now.contains_key(key) {
                records.extend((0..*count).map(|part| (rules_key(key, part), None)));
            }
        }
        if records.is_empty() {
            return;
        }
        let refs: Vec<(String, Option<&[u8]>)> = records.iter().map(|(k, v)| (k.clone(), v.as_deref())).collect();
        match self.sender.send_all(&refs) {
            Ok(()) => self.rules = now,
            Err(e) => {
                tracing::error!(error = %e, "changelog: cannot write the rule versions; it is behind");
                self.fell_behind();
            }
        }
    }

    /// Sends journal entry `seq` (its frame as written) and returns once
    /// the broker has it. Why block here: the sled write after it is what
    /// lets the batch's outputs out, and each must be in the changelog
    /// first.
    ///
    /// When the broker does not acknowledge it within the producer's
    /// timeout, the changelog is behind: later entries are not sent, and a
    /// snapshot that makes it whole again is tried every [`RETRY_EVERY`]
    /// ([`wants_snapshot`](Self::wants_snapshot)). Without fail-over the
    /// service stays up meanwhile, as it does without Kafka, and a lost
    /// disk loses what the changelog lacks (docs/notes/durability.md).
    ///
    /// An error with fail-over when the changelog is behind (a standby
    /// takes over from the changelog: a process running ahead of it would
    /// let out what a take-over makes again, unchecked by the fence), and
    /// when this process lost its lease, before the entry was sent or
    /// while its acknowledgement was awaited: another process runs the
    /// state, and the batch's outputs must not leave.
    pub fn append(&mut self, seq: u64, frame: &[u8]) -> Result<(), Error> {
        if self.lost_lease() {
            return Err(crate::lease::lost_error());
        }
        // Sharing the group: the changelog is behind until the process is
        // alone again, and the service goes on, as without Kafka.
        if self.shares_group() {
            return Ok(());
        }
        if self.behind.is_none() {
            self.send_entry(seq, frame);
        }
        // A pause while the acknowledgement was awaited may have cost the
        // lease, and the fence may have found a newer claim: asked again
        // before the outputs leave.
        if self.lost_lease() {
            return Err(crate::lease::lost_error());
        }
        if self.lease.is_some() && self.behind.is_some() {
            return Err(unwritten_error(&self.sender.topic));
        }
        Ok(())
    }

    /// Sends one journal entry; the changelog is behind if it fails.
    fn send_entry(&mut self, seq: u64, frame: &[u8]) {
        let started = Instant::now();
        let records = entry_records(seq, frame);
        let refs: Vec<(String, Option<&[u8]>)> = records.iter().map(|(k, v)| (k.clone(), Some(v.as_slice()))).collect();
        match self.sender.send_all(&refs) {
            Ok(()) => {
                self.entries.insert(seq, records.len() as u16);
                self.next_seq = seq + 1;
                self.metrics.changelog.produce_seconds.observe(started.elapsed().as_secs_f64());
            }
            // Overtaken (`fence.rs`): the fence has said so; with the
            // lease, the check below stops the batch, and without it the
            // service goes on without the changelog, as when it shares
            // the group.
            Err(_) if self.sender.fence.overtaken() => self.fell_behind(),
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
        if self.metrics.partitions_elsewhere.get() > 0 || self.lost_lease() {
            return false;
        }
        // Alone again after sharing the group: whole again at once. After
        // an older writer's records: a snapshot's records come after
        // theirs, so compaction cannot keep theirs over this one's.
        self.fenced
            || self.behind.is_some_and(|since| since.elapsed() >= RETRY_EVERY)
            || (self.behind.is_none() && self.sender.fence.stale_found())
    }

    /// True when this process must not write: it lost its fail-over lease
    /// (for good), or another process shares the consumer group
    /// (docs/notes/durability.md, "Two writers"; said once when it begins,
    /// and a snapshot makes the changelog whole once the process is alone
    /// again, [`wants_snapshot`](Self::wants_snapshot)).
    fn must_not_write(&mut self) -> bool {
        self.lost_lease() || self.sender.fence.overtaken() || self.shares_group()
    }

    /// True while another process shares the consumer group; says so and
    /// leaves the changelog behind when it begins.
    fn shares_group(&mut self) -> bool {
        let shared = self.metrics.partitions_elsewhere.get() > 0;
        if shared && !self.fenced {
            tracing::error!(
                "changelog: another process shares this consumer group; nothing is written to the changelog until \
                 this process reads every partition again, so that the two never mix"
            );
            self.fenced = true;
            self.fell_behind();
        }
        shared
    }

    /// Asks `guard` before every write, and writes nothing more once the
    /// lease is lost (`lease.rs`).
    pub fn fence_on_lost_lease(&mut self, guard: crate::lease::Guard) {
        self.lease = Some(guard);
    }

    /// True once the lease is lost, or once a newer process claimed the
    /// changelog (which loses the lease too: the coordinator may not have
    /// said so yet, `fence.rs`).
    fn lost_lease(&self) -> bool {
        let Some(guard) = &self.lease else { return false };
        if self.sender.fence.overtaken() {
            guard.lose();
        }
        !guard.may_write()
    }

    /// Sends a snapshot that covers every entry below `covered`, then
    /// deletes what it makes useless. `settled` are the delivery marks
    /// acknowledged before `payload`'s notifications were read: those
    /// notifications are out of the pending list the snapshot carries, and
    /// their batches are covered, so no restore makes them again.
    /// A failure leaves (or makes) the changelog behind, to be tried again.
    pub fn snapshot(&mut self, covered: u64, payload: &[u8], settled: Vec<String>) {
        // Overtaken by a process that shared the group, and alone again:
        // a claim of its own first, so readers take what follows. Why
        // only after sharing the group: two processes of different groups
        // on one changelog topic would take it from each other at every
        // batch; overtaken otherwise, a process writes it no more.
        if self.lease.is_none() && self.fenced && self.sender.fence.overtaken() && !self.shares_group() {
            let Some(epoch) = self.sender.fence.reclaim() else {
                tracing::error!("changelog: no writer epoch left to claim it again; it stays behind");
                return;
            };
            if let Err(e) = self.sender.claim(epoch) {
                tracing::error!(error = %e, epoch, "changelog: cannot claim it again; it stays behind");
                self.fell_behind();
                return;
            }
            tracing::info!(epoch, "changelog claimed again (alone in the group)");
        }
        if self.must_not_write() {
            return;
        }
        match self.try_snapshot(covered, payload, settled) {
            Ok(()) => {
                self.fenced = false;
                self.sender.fence.snapshot_written();
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
        // Overtaken: the process that claimed the changelog after this one
        // keeps its own marks; this one may have sent the notification,
        // which at worst goes out once more (at least once).
        if self.sender.fence.overtaken() {
            return;
        }
        let value = mark_value(settled);
        let key = mark_key(id);
        let delivery = match self.sender.enqueue(&key, Some(&value)) {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, id, "changelog: cannot mark a notification delivered");
                return;
            }
        };
        match delivery.await {
            Ok(Ok(delivery)) => {
                let offset = delivery.offset;
                self.sender.fence.acked(offset);
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
/// Called before the journal is opened for recovery. A standby that takes
/// over passes what it `followed`: only the rest is read then.
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
    followed: Option<Follower>,
) -> Result<Option<Opened>, Error> {
    let taking_over = followed.is_some();
    match open_reachable(kafka, topic, context, runtime, state_dir, store, followed) {
        // Why not for a take-over: going on without the changelog would
        // run a standby's stale or empty state as the group's. The error
        // stops this process, which gives the lease to another standby.
        Err(e) if e.is_retryable() && !taking_over => {
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
    followed: Option<Follower>,
) -> Result<Opened, Error> {
    let started = Instant::now();
    let metrics = context.metrics.clone();
    let taking_over = followed.is_some();
    let (mut contents, next) = match followed {
        Some(follower) => follower.finish()?,
        None => {
            ensure_topic(kafka, topic, &context, runtime)?;
            read(kafka, topic)?
        }
    };
    let (fence, producer) = claim(kafka, topic, &context, runtime, &mut contents, next)?;
    let (bytes, stale) = (contents.bytes, contents.stale);
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
    let (local_next, behind) = local_is_behind(state_dir, &restored)?;
    // A standby taking over rebuilds from the changelog whatever its own
    // directory holds: that is from an earlier turn of this process as the
    // active one, and may have split from the changelog since (an entry
    // journaled but never acknowledged, whose number another process then
    // wrote), even when the two end at the same number.
    let restore = behind || (taking_over && restored.next_seq() > 0);
    let changelog_next = restored.next_seq();
    let snapshot_header = restored.snapshot.as_ref().map(|(h, _)| h.clone());
    let mut restored_entries = 0;
    if restore {
        let covered = snapshot_header.as_ref().map(|h| h.covered);
        restored_entries = restored.frames.len() as u64;
        store.settle_by_marks(restored.marks);
        let snapshot = restored.snapshot.map(|(header, payload)| (header.covered, payload));
        // Why sled before the files: once the files are in place the local
        // state is no longer behind and no later start would restore again,
        // so what the snapshot carried must be in sled by then. A crash
        // between the two restores again, and the outputs are written once
        // more (records with the same ids; notifications by id only once).
        if let Some((_, payload)) = &snapshot {
            let mut stored = store.offsets()?;
            store.restore_outputs(&payload.outbox, &payload.notifications, payload.offsets.clone(), &mut stored)?;
        }
        // The versions the journal activates and the snapshot was made
        // under; without them the recovery would run the rules directory's.
        if !restored.rules.is_empty() {
            let entries = restored.rules.iter().map(|(k, (v, _))| (k.clone(), v.clone()));
            crate::rules::versions::Versions::open(&store.handle())?.import(entries)?;
        }
        journal::install(
            state_dir,
            snapshot.as_ref().map(|(covered, p)| (*covered, p.engine.as_slice())),
            &restored.frames,
        )?;
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
            stale,
            ms = (seconds * 1000.0) as u64,
            "state restored from the changelog"
        );
    } else {
        tracing::info!(topic, local_next, changelog_next, bytes, stale, "changelog read; the local state is kept");
    }
    let sender = |producer| Sender {
        producer,
        topic: topic.to_string(),
        runtime: runtime.handle().clone(),
        fence: fence.clone(),
        kafka: kafka.clone(),
    };
    let marks = Marks { sender: sender(self::producer(kafka, context)?), acknowledged: Mutex::new(Vec::new()) };
    let changelog = Changelog {
        sender: sender(producer),
        entries: restored.entries,
        snapshot: snapshot_header,
        next_seq: changelog_next,
        behind: None,
        fenced: false,
        lease: None,
        marks: Arc::new(marks),
        metrics,
        rules: restored.rules.iter().map(|(k, (v, parts))| (k.clone(), (crc32fast::hash(v), *parts))).collect(),
    };
    Ok(Opened { changelog, restored_entries })
}

/// Claims the changelog for the epoch after the newest one in `contents`
/// (read up to `next`), then reads on through the claim, so that
/// `contents` holds every record written before it (`fence.rs`). Another
/// process may claim at the same moment: the first claim of an epoch in
/// the log holds it, and the one that finds itself second (or a newer
/// epoch before it) claims the next epoch. Returns the fence and the
/// producer that wrote the claim (the journal's).
fn claim(
    kafka: &KafkaConfig,
    topic: &str,
    context: &Context,
    runtime: &tokio::runtime::Runtime,
    contents: &mut Contents,
    mut next: Offset,
) -> Result<(Arc<Fence>, Producer), Error> {
    const ATTEMPTS: u32 = 3;
    let producer = producer(kafka, context.clone())?;
    for _ in 0..ATTEMPTS {
        let epoch = contents.epoch.checked_add(1).ok_or_else(|| {
            Error::new(Domain::Kafka, Retry::Never, format!("the changelog {topic} has no writer epoch left to claim"))
        })?;
        let (key, value) = (claim_key(epoch), claim_value(epoch));
        let record = epoch_record(topic, &key, epoch).payload(&value);
        let timeout = Duration::from_millis(PRODUCE_TIMEOUT_MS.parse().unwrap_or(10_000));
        let offset = runtime
            .block_on(producer.send(record, timeout))
            .map_err(|(e, _)| {
                Error::new(Domain::Kafka, Retry::Later, format!("cannot claim the changelog {topic}")).caused_by(e)
            })?
            .offset;
        next = read_into(kafka, topic, contents, next, Some(offset))?;
        if contents.epoch == epoch && contents.claimed_at == offset {
            tracing::info!(topic, epoch, offset, "changelog claimed");
            return Ok((Arc::new(Fence::new(epoch, offset)), producer));
        }
        tracing::warn!(
            topic,
            epoch,
            offset,
            newest = contents.epoch,
            "changelog: another process claimed it at the same time; claiming the next epoch"
        );
    }
    Err(Error::new(
        Domain::Kafka,
        Retry::Later,
        format!("the changelog {topic}: other processes claimed it {ATTEMPTS} times while this one tried"),
    ))
}

/// The local journal's next sequence, and whether the changelog holds
/// entries beyond it (then the state directory is rebuilt from it). Opening
/// the journal cuts off a torn last entry, as the recovery would.
fn local_is_behind(state_dir: &Path, restored: &Restored) -> Result<(u64, bool), Error> {
    let (journal, _) = Journal::open(state_dir)?;
    let local_next = journal.next_seq();
    Ok((local_next, must_restore(local_next, restored.next_seq())))
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
    let remedy = "or set `changelog = false` in [kafka]";
    let create = crate::kafka::topics::create_compacted(kafka, context.clone(), topic, count, "changelog", remedy);
    if runtime.block_on(create)? {
        tracing::info!(topic, partitions = count, "changelog topic created");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Offsets;
    use mon_runtime::live::Input;

    /// What reading a changelog with entries `0..count` gives.
    fn changelog_of(count: u64) -> Restored {
        let mut contents = Contents::default();
        for seq in 0..count {
            let frame = journal::encode_frame(seq, &[Input::Tick(seq as i64)], &Offsets::new());
            for (offset, (key, value)) in entry_records(seq, &frame).into_iter().enumerate() {
                contents.add(offset as i64, Some(key.as_bytes()), Some(&value), 0).unwrap();
            }
        }
        contents.restore().unwrap()
    }

    #[test]
    fn a_local_journal_ahead_of_or_equal_to_the_changelog_is_kept_and_a_shorter_one_restored() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // A missing state directory is behind any changelog with an entry,
        // and not behind an empty one.
        assert_eq!(local_is_behind(&state, &changelog_of(1)).unwrap(), (0, true));
        assert_eq!(local_is_behind(&state, &changelog_of(0)).unwrap(), (0, false));
        {
            let (mut journal, _) = Journal::open(&state).unwrap();
            for tick in 0..3 {
                journal.append(&[Input::Tick(tick)], &Offsets::new()).unwrap();
            }
        }
        assert_eq!(local_is_behind(&state, &changelog_of(3)).unwrap(), (3, false), "equal");
        assert_eq!(local_is_behind(&state, &changelog_of(2)).unwrap(), (3, false), "ahead");
        assert_eq!(local_is_behind(&state, &changelog_of(4)).unwrap(), (3, true), "stale");
        // A snapshot counts as the entries it covers.
        {
            let (mut journal, _) = Journal::open(&state).unwrap();
            journal.snapshot(b"state").unwrap();
        }
        assert_eq!(local_is_behind(&state, &changelog_of(3)).unwrap(), (3, false), "covered by the snapshot");
    }
}
