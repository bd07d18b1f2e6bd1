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
//! Which partition: the topic is created with the input's partition
//! count. With one state, everything goes to partition
//! [`PROCESS_PARTITION`]. With state per partition (`processor/tasks.rs`),
//! partition *p* is task *p*'s: its journal frames and its snapshots.
//! Every batch writes a frame to every task's partition, an empty one
//! ([`Input::Task`] alone) when the task took nothing, so each partition's
//! entries stay dense, and a crash between two partitions'
//! acknowledgements shows as one partition ending a batch before another:
//! a restore stops every task at the earliest end (`merge_task_frames`),
//! since after a crash that batch's outputs never left (when the broker
//! stops acknowledging instead, the changelog is behind, as with one
//! state), and deletes what a partition holds past it. What is the
//! process's stays on partition 0: the rule versions, the delivery marks,
//! and in partition 0's snapshot the outbox and the pending
//! notifications; so a task is not yet rebuilt from its partition alone.
//! Each partition is claimed and fenced on its own (`fence.rs`), and one
//! overtaken stops the process writing any. A snapshot header names the
//! task count, and each entry its task: a topic written under another
//! split is refused at start.
//!
//! [`Input::Task`]: mon_runtime::live::Input::Task
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
//! `open.rs` claims it at start and rebuilds the local state from it;
//! this module produces and decides.
//!
//! What it must not do: start on a changelog it cannot read whole. A
//! record it does not understand stops the start with its topic,
//! partition and offset, rather than run on a state that silently lost
//! part of itself.

mod fence;
mod open;
mod read;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::kafka::Context;
use crate::metrics::Metrics;
use crate::store::Settled;
use fence::Fence;
pub use open::{open, Opening};
use read::writers_between;
pub use read::Follower;
use records::{
    claim_key, claim_value, entry_key, entry_records, mark_key, mark_value, rules_key, rules_records, snapshot_records,
    tombstones_after_snapshot, writer_value, HEADER_KEY, WRITER_HEADER,
};
pub use records::{encode_snapshot, Contents, Restored, SnapshotHeader, SnapshotPayload, CHUNK_BYTES, SNAPSHOT_FORMAT};

/// The partition of the one state (and of a whole-process standby's
/// following); with state per partition, task 0's, which also holds what
/// is the process's (the rule versions, the delivery marks).
pub const PROCESS_PARTITION: i32 = 0;

/// How long the read of the whole changelog at start may take.
const READ_LIMIT: Duration = Duration::from_secs(600);

/// How long one produce may wait for the broker (librdkafka retries inside
/// it) before the changelog counts as behind (see [`Changelog::append`]).
const PRODUCE_TIMEOUT_MS: &str = "10000";

/// While the changelog is behind, a snapshot to make it whole again is
/// tried this often.
const RETRY_EVERY: Duration = Duration::from_secs(30);

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

/// Produces to one partition and waits for each acknowledgement.
struct Sender {
    producer: Producer,
    topic: String,
    partition: i32,
    runtime: tokio::runtime::Handle,
    /// This process's claim (`fence.rs`): the epoch every record carries,
    /// and the check of each write's offsets.
    fence: Arc<Fence>,
    /// To read a gap the fence finds.
    kafka: KafkaConfig,
}

/// A newer process claimed the changelog (`fence.rs`).
fn overtaken_error(topic: &str) -> Error {
    Error::new(Domain::Kafka, Retry::Later, format!("{OVERTAKEN} {topic}; this one writes nothing more to it"))
}

const OVERTAKEN: &str = "a newer process claimed the changelog";

/// Whether `error` says a newer process claimed the changelog: the group
/// gave the state to another process, whatever this one has heard yet.
pub fn is_overtaken(error: &Error) -> bool {
    error.to_string().contains(OVERTAKEN)
}

/// With fail-over or as a scale-out task, a journal entry the changelog
/// did not take.
fn unwritten_error(topic: &str) -> Error {
    Error::new(
        Domain::Kafka,
        Retry::Later,
        format!(
            "the changelog {topic} did not take a journal entry; this state stops rather than run ahead of what \
             another process would take over from"
        ),
    )
}

/// A record for partition `partition` of `topic`, carrying writer epoch
/// `epoch` (`fence.rs`).
fn epoch_record<'a>(topic: &'a str, partition: i32, key: &'a str, epoch: u64) -> FutureRecord<'a, str, [u8]> {
    let epoch = writer_value(epoch);
    let headers = OwnedHeaders::new().insert(Header { key: WRITER_HEADER, value: Some(epoch.as_str()) });
    FutureRecord::to(topic).partition(partition).key(key).headers(headers)
}

impl Sender {
    fn enqueue(&self, key: &str, value: Option<&[u8]>) -> Result<DeliveryFuture, Error> {
        loop {
            let record = epoch_record(&self.topic, self.partition, key, self.fence.epoch());
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
        let deliveries = self.enqueue_all(records)?;
        self.await_all(deliveries)
    }

    /// Hands `records` to the producer: the first half of
    /// [`send_all`](Self::send_all), so that several partitions' records
    /// can be in flight together.
    fn enqueue_all(&self, records: &[(String, Option<&[u8]>)]) -> Result<Vec<(String, DeliveryFuture)>, Error> {
        if self.fence.overtaken() {
            return Err(overtaken_error(&self.topic));
        }
        records.iter().map(|(key, value)| Ok((key.clone(), self.enqueue(key, *value)?))).collect()
    }

    /// The second half of [`send_all`](Self::send_all).
    fn await_all(&self, deliveries: Vec<(String, DeliveryFuture)>) -> Result<(), Error> {
        let mut last = None;
        for (key, delivery) in deliveries {
            let offset = self.acknowledged(&key, delivery)?;
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
        let read = |from, through| writers_between(&self.kafka, &self.topic, self.partition, from, through);
        match self.fence.check(through, read)? {
            true => Ok(()),
            false => Err(overtaken_error(&self.topic)),
        }
    }

    fn failed(&self, key: &str, e: KafkaError) -> Error {
        let (topic, partition) = (&self.topic, self.partition);
        Error::new(
            Domain::Kafka,
            Retry::Later,
            format!("cannot write {key} to the changelog {topic}, partition {partition}"),
        )
        .caused_by(e)
    }
}

/// A journal entry as [`Changelog::send`] left it, for [`Changelog::sent`].
pub enum Sending {
    /// Not sent: another process shares the group.
    Shared,
    /// Not sent: the changelog is behind.
    Behind,
    /// Handed to the producer (or refused by it).
    InFlight { seq: u64, started: Instant, deliveries: Result<Vec<(String, DeliveryFuture)>, Error> },
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
    /// A scale-out task's: another process takes the task over from the
    /// changelog alone, so a batch it did not take, or a newer owner's
    /// claim, stops the task before the batch's outputs leave, as a lost
    /// lease does.
    pub(crate) strict: bool,
    pub marks: Arc<Marks>,
    metrics: Arc<Metrics>,
    /// The rules store's entries in the topic: a hash of each value and
    /// its part count, so that only what changed is sent again.
    rules: HashMap<Vec<u8>, (u32, u16)>,
    /// With state per partition, the task count, in each snapshot header.
    tasks: Option<u16>,
    /// This start rebuilt the local state from the changelog: its local
    /// logs (events, dead letters) are refilled from the input (`refill.rs`).
    pub(crate) restored: bool,
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
        let sending = self.send(seq, frame)?;
        self.sent(sending)
    }

    /// The first half of [`append`](Self::append): hands the entry to the
    /// producer. With state per partition, every task's entry is handed
    /// over before any acknowledgement is awaited, so a batch costs one
    /// round trip to the broker, not one per partition.
    pub fn send(&mut self, seq: u64, frame: &[u8]) -> Result<Sending, Error> {
        if self.lost_lease() {
            return Err(crate::lease::lost_error());
        }
        if self.strict && self.sender.fence.overtaken() {
            return Err(overtaken_error(&self.sender.topic));
        }
        if self.strict && self.behind.is_some() {
            return Err(unwritten_error(&self.sender.topic));
        }
        // Sharing the group: the changelog is behind until the process is
        // alone again, and the service goes on, as without Kafka.
        if self.shares_group() {
            return Ok(Sending::Shared);
        }
        if self.behind.is_some() {
            return Ok(Sending::Behind);
        }
        let started = Instant::now();
        let records = entry_records(seq, frame);
        let refs: Vec<(String, Option<&[u8]>)> = records.iter().map(|(k, v)| (k.clone(), Some(v.as_slice()))).collect();
        Ok(Sending::InFlight { seq, started, deliveries: self.sender.enqueue_all(&refs) })
    }

    /// The second half of [`append`](Self::append): waits for the broker.
    pub fn sent(&mut self, sending: Sending) -> Result<(), Error> {
        if let Sending::Shared = sending {
            return Ok(());
        }
        if let Sending::InFlight { seq, started, deliveries } = sending {
            let parts = deliveries.as_ref().map_or(0, Vec::len) as u16;
            match deliveries.and_then(|deliveries| self.sender.await_all(deliveries)) {
                Ok(()) => {
                    self.entries.insert(seq, parts);
                    self.next_seq = seq + 1;
                    self.metrics.changelog.produce_seconds.observe(started.elapsed().as_secs_f64());
                }
                // Overtaken (`fence.rs`): the fence has said so; with the
                // lease, the check below stops the batch, and without it
                // the service goes on without the changelog, as when it
                // shares the group.
                Err(_) if self.sender.fence.overtaken() => self.fell_behind(),
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        entry = seq,
                        partition = self.sender.partition,
                        "changelog: the broker did not acknowledge a journal entry; the changelog is behind until \
                         a snapshot reaches it"
                    );
                    self.fell_behind();
                }
            }
        }
        // A pause while the acknowledgement was awaited may have cost the
        // lease, and the fence may have found a newer claim: asked again
        // before the outputs leave.
        if self.lost_lease() {
            return Err(crate::lease::lost_error());
        }
        if self.strict && self.sender.fence.overtaken() {
            return Err(overtaken_error(&self.sender.topic));
        }
        if (self.lease.is_some() || self.strict) && self.behind.is_some() {
            return Err(unwritten_error(&self.sender.topic));
        }
        Ok(())
    }

    fn fell_behind(&mut self) {
        self.behind = Some(Instant::now());
        self.metrics.changelog.behind.set(1);
    }

    /// True while the changelog lacks entries the local journal has.
    pub fn is_behind(&self) -> bool {
        self.behind.is_some()
    }

    /// With state per partition, when another task's partition fell
    /// behind: this one stops taking entries too, until the snapshot that
    /// makes them all whole again, so that no partition's entries run
    /// ahead of a batch another partition lacks (module doc).
    pub fn hold_back(&mut self) {
        if self.behind.is_none() {
            self.fell_behind();
        }
    }

    /// True once a newer process claimed this partition (`fence.rs`).
    pub fn overtaken(&self) -> bool {
        self.sender.fence.overtaken()
    }

    /// With state per partition, when another task's partition was
    /// overtaken: the state is another process's now, and this partition
    /// must not go on being written either.
    pub fn overtake(&mut self) {
        self.sender.fence.overtake();
        self.hold_back();
    }

    /// Deletes the entries from `next` on, which the local state does not
    /// hold: with state per partition, a batch one partition got and
    /// another did not (a crash between the acknowledgements), which a
    /// restore left to be read again from the input. Its number goes to
    /// the next batch, and a restore must not take the old one for it. A
    /// failure leaves the changelog behind, and the snapshot that makes it
    /// whole is taken at start.
    fn drop_entries_from(&mut self, next: u64) {
        let stale = self.entries.split_off(&next);
        self.next_seq = self.next_seq.min(next);
        if stale.is_empty() || self.must_not_write() {
            return;
        }
        let keys: Vec<(String, Option<&[u8]>)> =
            stale.iter().flat_map(|(seq, parts)| (0..*parts).map(move |part| (entry_key(*seq, part), None))).collect();
        match self.sender.send_all(&keys) {
            Ok(()) => {
                let (partition, from) = (self.sender.partition, next);
                tracing::info!(
                    partition,
                    from,
                    entries = stale.len(),
                    "changelog: entries past the local state deleted"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "changelog: cannot delete entries past the local state; it is behind");
                self.fell_behind();
            }
        }
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
        let (chunks, header) = snapshot_records(covered, payload, self.tasks);
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
