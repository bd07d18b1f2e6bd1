//! Refilling a restored state's local logs from Kafka.
//!
//! The changelog rebuilds the engine, the alert book, the outbox, the
//! delivery marks and the trend rollups (`changelog/`), not the logs kept
//! for looking back: the event store (`events/`), which item lookups and
//! event searches read, and the record and dead-letter logs (`store.rs`).
//! A state restored where it never ran (a scale-out task assigned to
//! another process, a standby taking over, a lost disk) would hold there
//! only what came since. Kafka still holds what came before, within its
//! retention:
//! - each input partition the state covers is read from its beginning to
//!   the offset the restored snapshot stored, and each message made what
//!   the intake and the processing thread made of it: an accepted event,
//!   or a rejected message with its reason (a dead letter, and a rejected
//!   entry in the event store);
//! - the records topic is read whole, and the records this state
//!   published (the `mon_state` header, [`state_name`]) are taken once
//!   each, but for those the live state has written since the restore.
//!
//! It runs on a thread of its own while the state processes: a take-over
//! must not wait for it (fail-over takes seconds; a refill takes as long
//! as the retained input is). So the live logs number their entries from
//! [`FIRST_LIVE`] on and the refill numbers its own below: what it
//! refills lists as older than every live entry. The refilled events go
//! to segments of their own and join the store once all are read: a
//! search sees them all or none. Records and dead letters are written as
//! they come.
//!
//! A stop before the end leaves the plan (`events-refill.json`) in the
//! state directory; the next start deletes what the refill had written
//! and starts it again. A failure (Kafka away) is tried again every 30 s.
//!
//! What it does not bring back, and why:
//! - events that came over HTTP, and messages Kafka no longer retains;
//! - events already past the event store's retention;
//! - records published before the `mon_state` header was (an earlier
//!   release), or by a state of another name (another group, or a lone
//!   process's records for a scale-out task).
//!
//! It decodes with the rules the restored snapshot was made under, as
//! every event before the snapshot was decoded by those rules or earlier
//! ones; an event that earlier rules read otherwise is stored as these
//! read it.
//!
//! It must not touch the engine, the journal or the offsets, nor write to
//! Kafka: everything it reads was processed, published and dead-lettered
//! before.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mon_compiler::ir::Program;
use mon_runtime::event::{Decoded, Decoder};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers as _, Message as _, OwnedMessage};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::envelope::Envelopes;
use crate::error::{Domain, Error, Retry};
use crate::events::{Refilling, StoredEvent};
use crate::kafka::{client_config, client_error};
use crate::metrics::Metrics;
use crate::store::{DeadLetter, Log, Store, StoreHandle, Target};

/// The first number of a live event, record or dead letter in a refilled
/// state; a refill's are below it. 2^40: no retained input comes near it,
/// and live numbers stay far from the end of a u64.
pub const FIRST_LIVE: u64 = 1 << 40;

/// The header on every published record naming the state that made it.
pub const STATE_HEADER: &str = "mon_state";

const PLAN_FILE: &str = "events-refill.json";
const REFILL_DIR: &str = "events.refill";

/// Events appended (and records or dead letters written) at once.
const CHUNK: usize = 2000;

/// How long a partition may give nothing before its end is reached:
/// the offsets below the state's end were all there when it read them.
const STALLED_AFTER: Duration = Duration::from_secs(30);

/// How long the records topic's metadata may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The name a state's records carry in [`STATE_HEADER`]: its group, and
/// for a scale-out task its partition (`<group>/<partition>`).
pub fn state_name(kafka: &KafkaConfig) -> String {
    match kafka.task {
        Some(task) => format!("{}/{}", kafka.group, task.partition),
        None => kafka.group.clone(),
    }
}

/// A refill to do, kept in `events-refill.json` until it is done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// (topic, partition, the first offset the restored state had not
    /// processed): each is read from its beginning to there.
    pub partitions: Vec<(String, i32, i64)>,
    /// The journal entry the refilled events are filed under: the last one
    /// the restored snapshots cover, which holds every event before them.
    pub journal: u64,
    /// Whether the event store is on (else it is not refilled).
    pub events: bool,
    /// The records topic, and the state name its records carry.
    pub records: (String, String),
}

/// At start, once the changelog is read and before the replay appends
/// anything: the refill this state needs, if any, with the live logs
/// numbered from [`FIRST_LIVE`] on.
///
/// `restored_up_to` is the first journal entry after the snapshots when
/// this start rebuilt the state from the changelog. A refill is planned
/// then, when the logs are empty (a state directory that held entries,
/// say a standby's own from an earlier turn, keeps what it has), the
/// snapshots cover something and the state consumed an input topic. A
/// plan an earlier start left unfinished is taken up again, its partial
/// output deleted first.
pub fn prepare(
    state_dir: &Path,
    store: &mut Store,
    kafka: Option<&KafkaConfig>,
    restored_up_to: Option<u64>,
) -> Result<Option<Plan>, Error> {
    let plan_path = state_dir.join(PLAN_FILE);
    let unfinished = match std::fs::read(&plan_path) {
        Ok(bytes) => Some(serde_json::from_slice::<Plan>(&bytes).map_err(|e| {
            Error::damaged(Domain::Store, format!("{}: not a refill plan", plan_path.display())).caused_by(e)
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(Domain::Store, "cannot read", &plan_path, e)),
    };
    if unfinished.is_some() {
        let events = store.event_store().drop_numbered_below(FIRST_LIVE)?;
        let handle = store.handle();
        let (records, letters) =
            (handle.drop_log_below(Log::Records, FIRST_LIVE)?, handle.drop_log_below(Log::DeadLetters, FIRST_LIVE)?);
        tracing::info!(events, records, dead_letters = letters, "an unfinished refill of the local logs: deleted");
    }
    let plan = match (unfinished, restored_up_to) {
        // Started again as it was planned, unless this start restored the
        // state anew: then it is planned for the state restored now.
        (Some(plan), None) => plan,
        (unfinished, restored_up_to) => {
            if unfinished.is_some() {
                std::fs::remove_file(&plan_path)
                    .map_err(|e| Error::io(Domain::Store, "cannot delete", &plan_path, e))?;
            }
            let (Some(kafka), Some(up_to)) = (kafka, restored_up_to.filter(|up_to| *up_to > 0)) else {
                return Ok(None);
            };
            let partitions: Vec<(String, i32, i64)> = store
                .offsets()?
                .into_iter()
                .filter(|((topic, _), next)| kafka.topics.contains(topic) && *next > 0)
                .map(|((topic, partition), next)| (topic, partition, next))
                .collect();
            if partitions.is_empty() {
                return Ok(None);
            }
            if !store.event_store().is_empty()? || !store.no_records_nor_dead_letters()? {
                tracing::info!(
                    "state restored from the changelog over local logs that hold entries: kept as they are, not refilled"
                );
                return Ok(None);
            }
            let records = (kafka.records_topic.clone(), state_name(kafka));
            let plan = Plan { partitions, journal: up_to - 1, events: store.event_store().is_on(), records };
            write_plan(&plan_path, &plan)?;
            plan
        }
    };
    store.event_store().number_from(FIRST_LIVE)?;
    store.number_logs_from(FIRST_LIVE);
    Ok(Some(plan))
}

fn write_plan(path: &Path, plan: &Plan) -> Result<(), Error> {
    let bytes = serde_json::to_vec(plan)
        .map_err(|e| Error::damaged(Domain::Store, "cannot encode a refill plan").caused_by(e))?;
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, bytes).map_err(|e| Error::io(Domain::Store, "cannot write", &temporary, e))?;
    std::fs::File::open(&temporary)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(Domain::Store, "cannot sync", &temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| Error::io(Domain::Store, "cannot write", path, e))
}

/// What a refill needs besides its plan.
pub struct Refill<'a> {
    pub plan: Plan,
    pub state_dir: &'a Path,
    pub kafka: &'a KafkaConfig,
    pub envelopes: &'a Envelopes,
    /// The rules the restored snapshots were made under.
    pub program: &'a Program,
    pub store: StoreHandle,
    /// Events older than this (event time, ms) are not kept: the service's
    /// clock less the event retention, once the clock is known.
    pub cutoff: &'a (dyn Fn() -> Option<i64> + Sync),
    pub metrics: &'a Metrics,
    pub stop: &'a AtomicBool,
}

/// Runs the refill until it is done or `stop`; a failed attempt is tried
/// again in 30 s from the start.
pub fn run(refill: Refill<'_>) {
    refill.metrics.refill_running.set(1);
    let started = Instant::now();
    while !refill.stop.load(Ordering::Relaxed) {
        match attempt(&refill) {
            Ok(Some(done)) => {
                tracing::info!(
                    events = done.events,
                    records = done.records,
                    dead_letters = done.dead_letters,
                    messages = done.messages,
                    ms = started.elapsed().as_millis() as u64,
                    "local logs refilled from Kafka"
                );
                break;
            }
            Ok(None) => break,
            Err(e) => tracing::warn!(error = %e, "refilling the local logs from Kafka failed; again in 30 s"),
        }
        let again = Instant::now() + Duration::from_secs(30);
        while Instant::now() < again && !refill.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    refill.metrics.refill_running.set(0);
}

#[derive(Default)]
struct Done {
    /// Messages read from Kafka.
    messages: u64,
    events: u64,
    records: u64,
    dead_letters: u64,
}

/// What was read and not yet written.
#[derive(Default)]
struct Pending {
    events: Vec<StoredEvent>,
    records: Vec<Vec<u8>>,
    letters: Vec<DeadLetter>,
}

impl Pending {
    fn full(&self) -> bool {
        self.events.len() >= CHUNK || self.records.len() >= CHUNK || self.letters.len() >= CHUNK
    }
}

/// One attempt: `None` when stopped before the end.
fn attempt(refill: &Refill<'_>) -> Result<Option<Done>, Error> {
    let dir = refill.state_dir.join(REFILL_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(Domain::Store, "cannot delete", &dir, e))?;
    }
    for log in [Log::Records, Log::DeadLetters] {
        refill.store.drop_log_below(log, FIRST_LIVE)?;
    }
    // The store may have been turned off since the plan was made.
    let mut segments = match refill.plan.events && refill.store.events().is_on() {
        true => Some(Refilling::create(&dir, refill.plan.journal)?),
        false => None,
    };
    let mut done = Done::default();
    let mut pending = Pending::default();
    let decoder = Decoder::new(refill.program);
    // Topic by topic (mon's input is usually one), partitions together.
    let mut topics: Vec<&str> = refill.plan.partitions.iter().map(|(topic, ..)| topic.as_str()).collect();
    topics.dedup();
    let mut cutoff = (refill.cutoff)();
    for topic in topics {
        let of_topic = refill.plan.partitions.iter().filter(|(t, ..)| t == topic);
        let read = read_merged(refill, topic, of_topic.map(|(_, p, end)| (*p, Some(*end))).collect(), |message| {
            done.messages += 1;
            take_input(refill, &decoder, cutoff, message, &mut pending);
            if pending.full() {
                write(refill, &mut segments, &mut pending, &mut done)?;
                cutoff = (refill.cutoff)();
            }
            Ok(())
        })?;
        if !read {
            return Ok(None);
        }
    }
    let (records_topic, state) = &refill.plan.records;
    let mut records = Records { seen: HashSet::new(), live: HashSet::new(), live_next: FIRST_LIVE };
    // The restored outbox's records may go out only after the topic is
    // read: taken from the outbox as it is now (what leaves it meanwhile
    // is in the topic).
    let mut unpublished = Vec::new();
    for (_, item) in refill.store.outbox_after(None, u64::MAX, usize::MAX)? {
        let header = |name: &str| item.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
        if item.target == Target::Records && header(STATE_HEADER) == Some(state.as_bytes()) {
            if let Some(id) = header("mon_id") {
                unpublished.push((String::from_utf8_lossy(id).into_owned(), item.payload.clone()));
            }
        }
    }
    let record_partitions = partitions_of(refill.kafka, records_topic)?;
    let sources = (0..record_partitions).map(|partition| (partition, None)).collect();
    let read = read_merged(refill, records_topic, sources, |message| {
        done.messages += 1;
        let header = |name: &str| message.headers()?.iter().find(|h| h.key == name).and_then(|h| h.value);
        if let (true, Some(id), Some(payload)) =
            (header(STATE_HEADER) == Some(state.as_bytes()), header("mon_id"), message.payload())
        {
            if records.take(refill, &String::from_utf8_lossy(id))? {
                pending.records.push(payload.to_vec());
            }
        }
        if pending.full() {
            write(refill, &mut segments, &mut pending, &mut done)?;
        }
        Ok(())
    })?;
    if !read {
        return Ok(None);
    }
    for (id, payload) in unpublished {
        if records.take(refill, &id)? {
            pending.records.push(payload);
        }
    }
    write(refill, &mut segments, &mut pending, &mut done)?;
    refill.store.flush()?;
    if let Some(segments) = segments {
        refill.store.events().adopt(segments)?;
    }
    let plan_path = refill.state_dir.join(PLAN_FILE);
    std::fs::remove_file(&plan_path).map_err(|e| Error::io(Domain::Store, "cannot delete", &plan_path, e))?;
    Ok(Some(done))
}

/// An input message as the intake and the processing thread took it.
fn take_input(
    refill: &Refill<'_>,
    decoder: &Decoder<'_>,
    cutoff: Option<i64>,
    message: &OwnedMessage,
    pending: &mut Pending,
) {
    let received = message.timestamp().to_millis().unwrap_or_else(crate::clock::wall_now);
    let headers: Vec<(&str, &[u8])> =
        message.headers().map(|h| h.iter().map(|h| (h.key, h.value.unwrap_or_default())).collect()).unwrap_or_default();
    let rejected = match refill.envelopes.normalize(message.payload(), &headers) {
        Err(reason) => Some(reason),
        Ok(line) => match decoder.decode(&line) {
            Decoded::Event(event) => {
                if cutoff.is_none_or(|cutoff| event.time >= cutoff) {
                    pending.events.push(StoredEvent::accepted(refill.program, &event, received));
                }
                None
            }
            Decoded::Ignored { .. } => None,
            Decoded::Rejected(rejection) => Some(rejection.reason),
        },
    };
    if let Some(reason) = rejected {
        let origin = format!("kafka:{}/{}@{}", message.topic(), message.partition(), message.offset());
        let bytes = message.payload().unwrap_or_default().to_vec();
        let letter = DeadLetter { reason, origin, received, bytes };
        // The store keeps a rejected message in the event log too, here in
        // the order of the input (the live store files a batch's rejected
        // messages after its accepted events).
        pending.events.push(StoredEvent::rejected(&letter));
        pending.letters.push(letter);
    }
}

/// The records this state published, each once, but those the live state
/// has written since the restore (it publishes what it restored in its
/// outbox, and what it makes).
struct Records {
    seen: HashSet<String>,
    live: HashSet<String>,
    /// The number of the next live record to look at.
    live_next: u64,
}

impl Records {
    /// Whether the record `id` is to be refilled: the first time it comes,
    /// unless the live state wrote it.
    fn take(&mut self, refill: &Refill<'_>, id: &str) -> Result<bool, Error> {
        if self.seen.contains(id) {
            return Ok(false);
        }
        // A record is in the live log before it is published: whichever
        // live one was read here is there by now.
        if !self.live.contains(id) {
            let (written, next) = refill.store.log_from(Log::Records, self.live_next)?;
            self.live_next = next;
            #[derive(Deserialize)]
            struct Id {
                id: String,
            }
            self.live.extend(written.iter().filter_map(|json| Some(serde_json::from_slice::<Id>(json).ok()?.id)));
        }
        if self.live.contains(id) {
            return Ok(false);
        }
        self.seen.insert(id.to_string());
        Ok(true)
    }
}

/// Writes what was read since the last call.
fn write(
    refill: &Refill<'_>,
    segments: &mut Option<Refilling>,
    pending: &mut Pending,
    done: &mut Done,
) -> Result<(), Error> {
    if let (Some(segments), false) = (segments.as_mut(), pending.events.is_empty()) {
        segments.append(&pending.events)?;
        done.events += pending.events.len() as u64;
        refill.metrics.refilled.inc_by(pending.events.len() as u64);
    }
    pending.events.clear();
    let letters: Vec<Vec<u8>> = pending
        .letters
        .drain(..)
        .map(|letter| serde_json::to_vec(&letter))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::damaged(Domain::Store, "cannot encode a dead letter").caused_by(e))?;
    for (log, entries, count) in [
        (Log::DeadLetters, letters, &mut done.dead_letters),
        (Log::Records, std::mem::take(&mut pending.records), &mut done.records),
    ] {
        if !entries.is_empty() {
            refill.store.refill_log(log, *count, &entries)?;
            refill.metrics.refilled.inc_by(entries.len() as u64);
            *count += entries.len() as u64;
        }
    }
    Ok(())
}

/// Messages held per partition while the others catch up, at most: a
/// partition with this many waiting is paused.
const HELD_PER_PARTITION: usize = 1000;

/// One partition a merged read takes.
struct Source {
    partition: i32,
    /// The offset to stop before, if any: else its end when it is reached.
    end: Option<i64>,
    held: std::collections::VecDeque<OwnedMessage>,
    paused: bool,
    /// Nothing more to read: its end was reached (the offset asked for, or
    /// the end of the partition; with `end`, the partition may end
    /// sooner, when retention deleted what the state had read).
    finished: bool,
}

/// Reads the `sources` of `topic` (partition, the offset to stop before,
/// or none for the end it has when reached) from their beginnings, handing
/// each message to `take` in the order of their Kafka timestamps, each
/// partition's own order kept: what several partitions held interleaves
/// in the logs as it came. One reader for all, a partition paused while
/// it is far ahead. Why the end of a partition is the reader's EOF event
/// and not a ListOffsets answer: on some brokers that answer lags a batch
/// behind (docs/notes/kafka-broker.md). False when stopped before the end.
fn read_merged(
    refill: &Refill<'_>,
    topic: &str,
    sources: Vec<(i32, Option<i64>)>,
    mut take: impl FnMut(&OwnedMessage) -> Result<(), Error>,
) -> Result<bool, Error> {
    if sources.is_empty() {
        return Ok(true);
    }
    let consumer = reader(refill.kafka)?;
    let mut assignment = TopicPartitionList::new();
    let mut reading = Vec::with_capacity(sources.len());
    for (partition, end) in sources {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| client_error("cannot assign a partition to the refill", e))?;
        reading.push(Source { partition, end, held: Default::default(), paused: false, finished: false });
    }
    consumer.assign(&assignment).map_err(|e| client_error("cannot assign the refill's partitions", e))?;
    let mut last_progress = Instant::now();
    loop {
        if refill.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        // The next message in time order, once every partition that may
        // still give one earlier has a message waiting.
        if !reading.iter().any(|s| s.held.is_empty() && !s.finished) {
            let head = reading
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((s.held.front()?.timestamp().to_millis().unwrap_or(0), i)))
                .min();
            let Some((_, i)) = head else { return Ok(true) };
            let source = &mut reading[i];
            let Some(message) = source.held.pop_front() else { continue };
            if source.paused && !source.finished && source.held.len() < HELD_PER_PARTITION / 2 {
                consumer.resume(&one(topic, source.partition)?).map_err(|e| client_error("cannot resume", e))?;
                source.paused = false;
            }
            take(&message)?;
            continue;
        }
        if last_progress.elapsed() > STALLED_AFTER {
            return Err(Error::new(
                Domain::Kafka,
                Retry::Later,
                format!("the refill read nothing of {topic} for {} s", STALLED_AFTER.as_secs()),
            ));
        }
        let (partition, message) = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(partition))) => (partition, None),
            // Passing trouble (a broker away): the client retries, and a
            // read that stalls is an error above.
            Some(Err(e)) => {
                tracing::debug!(error = %e, "refill reader");
                continue;
            }
            Some(Ok(message)) => (message.partition(), Some(message.detach())),
        };
        last_progress = Instant::now();
        let Some(source) = reading.iter_mut().find(|s| s.partition == partition) else { continue };
        match message {
            None => source.finished = true,
            Some(message) => {
                let next = message.offset() + 1;
                match source.end {
                    Some(end) if message.offset() >= end => source.finished = true,
                    Some(end) => {
                        source.held.push_back(message);
                        source.finished = next >= end;
                    }
                    None => source.held.push_back(message),
                }
            }
        }
        // Paused while far ahead of the others, and for good once finished.
        if (source.held.len() >= HELD_PER_PARTITION || source.finished) && !source.paused {
            consumer.pause(&one(topic, source.partition)?).map_err(|e| client_error("cannot pause", e))?;
            source.paused = true;
        }
    }
}

fn one(topic: &str, partition: i32) -> Result<TopicPartitionList, Error> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Invalid)
        .map_err(|e| client_error("cannot name a partition", e))?;
    Ok(list)
}

/// The refill's reader, in no group.
fn reader(kafka: &KafkaConfig) -> Result<BaseConsumer, Error> {
    let group = format!("{}.refill-reader", kafka.group);
    let mut config = client_config(
        kafka,
        &[
            // librdkafka refuses `assign` without a group id; this group is
            // never joined and nothing is committed to it.
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
        ],
    );
    // After the user's properties: the end of a partition is how a read
    // knows it is done.
    config.set("enable.partition.eof", "true");
    config.create().map_err(|e| client_error("cannot create the refill's reader", e))
}

/// How many partitions the records topic has: none when it does not exist.
fn partitions_of(kafka: &KafkaConfig, topic: &str) -> Result<i32, Error> {
    let consumer = reader(kafka)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| client_error("cannot read the records topic's metadata", e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(0) };
    match found.error() {
        None => Ok(found.partitions().len() as i32),
        Some(
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC | RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        ) => Ok(0),
        Some(code) => Err(Error::new(
            Domain::Kafka,
            Retry::Later,
            format!("the records topic {topic}: {}", RDKafkaErrorCode::from(code)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BatchWrite;

    fn letter(reason: &str) -> DeadLetter {
        DeadLetter { reason: reason.into(), origin: "kafka:in/0@1".into(), received: 1, bytes: b"x".to_vec() }
    }

    fn store_consumed(dir: &Path, offsets: &[(&str, i32, i64)]) -> Store {
        let mut store = Store::open(dir).unwrap();
        store.keep_events(true).unwrap();
        let offsets = offsets.iter().map(|(t, p, o)| ((t.to_string(), *p), *o)).collect();
        let mut stored = Default::default();
        store.commit(BatchWrite { offsets, ..BatchWrite::default() }, &mut stored).unwrap();
        store
    }

    /// A restored state with empty logs plans a refill of the input topics
    /// it consumed (not of mon's own topics), filed under the last entry
    /// its snapshots cover; the live logs number from `FIRST_LIVE` on.
    #[test]
    fn a_restore_plans_a_refill_of_the_consumed_input_only() {
        let dir = tempfile::tempdir().unwrap();
        let kafka = KafkaConfig { topics: vec!["trades".into()], ..KafkaConfig::default() };
        let consumed = [("trades", 2, 500), ("trades", 3, 0), ("mon.group.rules", 0, 4)];
        let mut store = store_consumed(dir.path(), &consumed);
        assert_eq!(prepare(dir.path(), &mut store, Some(&kafka), None).unwrap(), None, "no restore, no refill");
        assert_eq!(prepare(dir.path(), &mut store, Some(&kafka), Some(0)).unwrap(), None, "no snapshot");
        let plan = prepare(dir.path(), &mut store, Some(&kafka), Some(12)).unwrap().unwrap();
        let records = ("mon.records".to_string(), "mon".to_string());
        assert_eq!(plan, Plan { partitions: vec![("trades".into(), 2, 500)], journal: 11, events: true, records });
        assert!(dir.path().join(PLAN_FILE).exists(), "kept until done");
        store
            .commit(BatchWrite { dead_letters: vec![letter("live")], ..BatchWrite::default() }, &mut Default::default())
            .unwrap();
        let listed = store.handle().dead_letters(None, 10).unwrap();
        assert_eq!(listed.items.len(), 1);
        assert!(listed.items[0].0 >= FIRST_LIVE, "a live dead letter numbered above a refill's");
    }

    /// Logs that hold entries are kept as they are: a refill would list
    /// their events twice.
    #[test]
    fn a_restore_over_logs_that_hold_entries_refills_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let kafka = KafkaConfig { topics: vec!["trades".into()], ..KafkaConfig::default() };
        let mut store = store_consumed(dir.path(), &[("trades", 0, 10)]);
        store
            .commit(BatchWrite { dead_letters: vec![letter("old")], ..BatchWrite::default() }, &mut Default::default())
            .unwrap();
        assert_eq!(prepare(dir.path(), &mut store, Some(&kafka), Some(3)).unwrap(), None);
    }

    /// A refill a stop cut short is started again at the next start, after
    /// what it had written is deleted; live dead letters stay.
    #[test]
    fn an_unfinished_refill_is_taken_up_again_from_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let kafka = KafkaConfig { topics: vec!["trades".into()], ..KafkaConfig::default() };
        let mut store = store_consumed(dir.path(), &[("trades", 0, 10)]);
        let plan = prepare(dir.path(), &mut store, Some(&kafka), Some(3)).unwrap().unwrap();
        let refilled = [letter("refilled 1"), letter("refilled 2")].map(|l| serde_json::to_vec(&l).unwrap());
        store.handle().refill_log(Log::DeadLetters, 0, &refilled).unwrap();
        store.handle().refill_log(Log::Records, 0, &[br#"{"id":"r-1"}"#.to_vec()]).unwrap();
        store
            .commit(BatchWrite { dead_letters: vec![letter("live")], ..BatchWrite::default() }, &mut Default::default())
            .unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        store.keep_events(true).unwrap();
        // Whatever this start was: the plan on disk is what is done.
        assert_eq!(prepare(dir.path(), &mut store, Some(&kafka), None).unwrap(), Some(plan));
        let reasons: Vec<String> =
            store.handle().dead_letters(None, 10).unwrap().items.into_iter().map(|(_, l)| l.reason).collect();
        assert_eq!(reasons, ["live"]);
        let records = store.handle().records(None, 10, |json| Some(json.to_string())).unwrap();
        assert!(records.items.is_empty(), "{:?}", records.items);
    }

    /// A start that restores the state anew plans the refill anew: the
    /// unfinished one was for a state that is gone.
    #[test]
    fn a_new_restore_replaces_an_unfinished_plan() {
        let dir = tempfile::tempdir().unwrap();
        let kafka = KafkaConfig { topics: vec!["trades".into()], ..KafkaConfig::default() };
        let mut store = store_consumed(dir.path(), &[("trades", 0, 10)]);
        prepare(dir.path(), &mut store, Some(&kafka), Some(3)).unwrap().unwrap();
        store.handle().refill_log(Log::Records, 0, &[br#"{"id":"r-1"}"#.to_vec()]).unwrap();
        let mut stored = store.offsets().unwrap();
        let moved = [(("trades".to_string(), 0), 25)].into_iter().collect();
        store.commit(BatchWrite { offsets: moved, ..BatchWrite::default() }, &mut stored).unwrap();
        let plan = prepare(dir.path(), &mut store, Some(&kafka), Some(9)).unwrap().unwrap();
        assert_eq!((plan.partitions, plan.journal), (vec![("trades".into(), 0, 25)], 8));
        assert!(store.handle().records(None, 10, |json| Some(json.to_string())).unwrap().items.is_empty());
    }

    /// Trimming keeps the newest entries across the gap between a refill's
    /// numbers and the live ones.
    #[test]
    fn trimming_keeps_the_newest_refilled_entries_below_the_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let kafka = KafkaConfig { topics: vec!["trades".into()], ..KafkaConfig::default() };
        let mut store = store_consumed(dir.path(), &[("trades", 0, 10)]);
        prepare(dir.path(), &mut store, Some(&kafka), Some(3)).unwrap().unwrap();
        let record = |id: &str| format!(r#"{{"id":"{id}"}}"#);
        let refilled: Vec<Vec<u8>> = (0..5).map(|i| record(&format!("old-{i}")).into_bytes()).collect();
        store.handle().refill_log(Log::Records, 0, &refilled).unwrap();
        let live = (0..3).map(|i| record(&format!("new-{i}"))).collect();
        store.commit(BatchWrite { records: live, ..BatchWrite::default() }, &mut Default::default()).unwrap();
        let ids = |store: &Store| -> Vec<String> {
            let page = store.handle().records(None, 100, |json| Some(json.to_string())).unwrap();
            page.items.into_iter().map(|(_, json)| json).collect()
        };
        store.trim(5).unwrap();
        let expected: Vec<String> = ["new-2", "new-1", "new-0", "old-4", "old-3"].iter().map(|id| record(id)).collect();
        assert_eq!(ids(&store), expected, "the newest five, across the gap");
        store.trim(2).unwrap();
        assert_eq!(ids(&store), expected[..2], "live ones only once they are enough");
    }

    /// A scale-out task's records are named by its partition, so that the
    /// task's next owner takes its records and no other task's.
    #[test]
    fn a_state_is_named_by_its_group_and_a_task_by_its_partition_too() {
        let mut kafka = KafkaConfig { group: "desk".into(), ..KafkaConfig::default() };
        assert_eq!(state_name(&kafka), "desk");
        kafka.task = Some(crate::config::TaskOf { partition: 4, partitions: 6 });
        assert_eq!(state_name(&kafka), "desk/4");
    }
}
