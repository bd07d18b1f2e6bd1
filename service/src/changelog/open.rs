//! The changelog at start: reading every partition back, claiming it,
//! and rebuilding the local state from it when it is ahead ([`open`]).
//! The writing side is `mod.rs`'s; the records' encodings and checks are
//! `records.rs`'s.
//!
//! What it must not do: start on a changelog it cannot read whole, or on
//! one written for another split of the state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::Offset;

use super::fence::Fence;
use super::read::{read, read_into, Follower};
use super::records::{claim_key, claim_value, must_restore, Contents, Restored, SnapshotPayload};
use super::{epoch_record, Changelog, Marks, Producer, Sender, PRODUCE_TIMEOUT_MS};
use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::journal::{self, Journal};
use crate::kafka::{client_config, client_error, Context};
use crate::store::Store;

/// How long the broker may take to answer the metadata request at start
/// before the run goes on without the changelog.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

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
/// journal and snapshots in `state_dir` from it when it is ahead of them
/// (with what the snapshots carried and the delivery marks into `store`).
/// Called before the journal is opened for recovery. A standby that takes
/// over passes what it `followed`: only the rest is read then.
///
/// `None` when the broker cannot be reached: the run goes on from the local
/// state without a changelog (as a service without Kafka does; the next
/// start with Kafka reachable writes a snapshot to it). A changelog that
/// is there but cannot be read whole is an error. One changelog per task,
/// in partition order (one with one state).
pub fn open(at: Opening<'_>, store: &mut Store, followed: Option<Follower>) -> Result<Option<Vec<Changelog>>, Error> {
    let (required, topic) = (followed.is_some() || at.required, at.topic);
    match open_reachable(at, store, followed) {
        // Why not for a take-over, or a scale-out task: going on without
        // the changelog would run a standby's stale or empty state as the
        // group's. The error stops this process (or this task), which
        // gives the lease (or the task) to another.
        Err(e) if e.is_retryable() && !required => {
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

/// Which changelog [`open`] reads, for which state.
pub struct Opening<'a> {
    pub kafka: &'a KafkaConfig,
    pub topic: &'a str,
    pub context: Context,
    pub runtime: &'a tokio::runtime::Runtime,
    /// Where the local state is rebuilt.
    pub state_dir: &'a Path,
    /// With state per partition, how many tasks there are; each has its
    /// partition of the topic.
    pub tasks: Option<u16>,
    /// With one state, its partition of the topic: [`super::PROCESS_PARTITION`],
    /// or a scale-out task's own (`scale_out.rs`).
    pub home: i32,
    /// The state must come from the changelog: a start that cannot read it
    /// fails rather than run on the local state alone.
    pub required: bool,
    /// Set when the start is called off (a scale-out task revoked while it
    /// restores): it then claims no partition, which would fence the
    /// process the partition went to.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

/// One partition of the changelog as read back at start.
struct ReadBack {
    partition: i32,
    fence: Arc<Fence>,
    restored: Restored,
    /// With state per partition, its frames decoded (for the merge).
    entries: Vec<journal::Entry>,
}

fn open_reachable(at: Opening<'_>, store: &mut Store, mut followed: Option<Follower>) -> Result<Vec<Changelog>, Error> {
    let Opening { kafka, topic, context, runtime, state_dir, tasks, home, required, stop } = at;
    let started = Instant::now();
    let metrics = context.metrics.clone();
    let taking_over = followed.is_some();
    let partitions: Vec<i32> = match tasks {
        Some(0) => return Err(Error::config("state per partition of an input without partitions")),
        Some(n) => (0..i32::from(n)).collect(),
        None => vec![home],
    };
    if !taking_over {
        let has = ensure_topic(kafka, topic, &context, runtime)?;
        let needs = partitions.iter().max().map_or(0, |p| p + 1);
        if has < needs {
            return Err(Error::config(format!(
                "the changelog {topic} has {has} partitions, and the state needs {needs} (one per input \
                 partition's task). Delete the topic (it is rebuilt from the local state) or name another with \
                 `changelog_topic` in [kafka]"
            )));
        }
    }
    let producer = producer(kafka, context.clone())?;
    let (mut bytes, mut stale) = (0, 0);
    let mut read_back = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let (mut contents, next) = match followed.take() {
            Some(follower) => follower.finish()?,
            None => read(kafka, topic, partition)?,
        };
        if stop.is_some_and(|stop| stop.load(std::sync::atomic::Ordering::SeqCst)) {
            return Err(Error::new(Domain::Kafka, Retry::Later, format!("{topic}: stopped before claiming it")));
        }
        let fence = claim(kafka, topic, partition, &producer, runtime, &mut contents, next)?;
        (bytes, stale) = (bytes + contents.bytes, stale + contents.stale);
        let restored = contents.restore().map_err(|d| {
            Error::new(
                Domain::Kafka,
                Retry::Never,
                format!(
                    "the changelog {topic}, partition {partition}, offset {}: {}; the service will not start on a \
                     state it cannot read whole. To start over from the local state, delete the topic (what only it \
                     held is then lost) or set `changelog = false` in [kafka]",
                    d.offset, d.why
                ),
            )
        })?;
        if let Some(seq) = restored.torn {
            tracing::warn!(
                topic,
                partition,
                entry = seq,
                "changelog: the last entry is torn (a crash while its parts were produced; its batch's outputs \
                 never left): left out, and deleted"
            );
        }
        let entries = checked_entries(&restored, partition, tasks).map_err(|why| {
            Error::config(format!(
                "the changelog {topic}, partition {partition}: {why}. It was written by a process that kept its \
                 state otherwise ([kafka] state_per_partition, or another partition count): delete the topic (it \
                 is rebuilt from the local state) or name another with `changelog_topic`"
            ))
        })?;
        read_back.push(ReadBack { partition, fence, restored, entries });
    }
    let local_next = local_next(state_dir, tasks)?;
    let changelog_next = held_by_all(&read_back);
    // A standby taking over rebuilds from the changelog whatever its own
    // directory holds: that is from an earlier turn of this process as the
    // active one, and may have split from the changelog since (an entry
    // journaled but never acknowledged, whose number another process then
    // wrote), even when the two end at the same number.
    let restore = must_restore(local_next, changelog_next) || (taking_over && changelog_next > 0);
    if restore {
        let restored_entries = install_restored(&mut read_back, tasks, changelog_next, state_dir, store)?;
        let seconds = started.elapsed().as_secs_f64();
        metrics.changelog.restored_entries.inc_by(restored_entries);
        metrics.changelog.restored_bytes.inc_by(bytes);
        metrics.changelog.restore_seconds.set(seconds);
        let covered: Vec<Option<u64>> =
            read_back.iter().map(|r| r.restored.snapshot.as_ref().map(|_| r.restored.covered())).collect();
        tracing::info!(
            topic,
            entries = restored_entries,
            snapshots_cover = ?covered,
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
    let sender = |producer, partition, fence| Sender {
        producer,
        topic: topic.to_string(),
        partition,
        runtime: runtime.handle().clone(),
        fence,
        kafka: kafka.clone(),
    };
    let process_fence = read_back[0].fence.clone();
    let marks = Marks {
        sender: sender(self::producer(kafka, context)?, read_back[0].partition, process_fence),
        acknowledged: Mutex::new(Vec::new()),
    };
    let marks = Arc::new(marks);
    let mut changelogs: Vec<Changelog> = read_back
        .into_iter()
        .map(|ReadBack { partition, fence, restored, .. }| Changelog {
            sender: sender(producer.clone(), partition, fence),
            next_seq: restored.next_seq(),
            snapshot: restored.snapshot.map(|(header, _)| header),
            entries: restored.entries,
            behind: None,
            fenced: false,
            lease: None,
            strict: required,
            marks: marks.clone(),
            metrics: metrics.clone(),
            rules: restored.rules.iter().map(|(k, (v, parts))| (k.clone(), (crc32fast::hash(v), *parts))).collect(),
            tasks,
            restored: restore,
        })
        .collect();
    // The local state goes on from here; nothing past it may stay.
    let local = if restore { changelog_next } else { local_next };
    changelogs.iter_mut().for_each(|changelog| changelog.drop_entries_from(local));
    Ok(changelogs)
}

/// Makes the local state what the changelog holds up to batch `end`:
/// what the snapshots carried and the delivery marks into `store`, then
/// each snapshot and the entries after them as the files the recovery
/// reads. Returns how many entries were installed.
fn install_restored(
    read_back: &mut [ReadBack],
    tasks: Option<u16>,
    end: u64,
    state_dir: &Path,
    store: &mut Store,
) -> Result<u64, Error> {
    let frames = match tasks {
        Some(_) => merge_task_frames(read_back, end),
        None => std::mem::take(&mut read_back[0].restored.frames),
    };
    let process = &read_back[0].restored;
    store.settle_by_marks(process.marks.clone());
    // Why sled before the files: once the files are in place the local
    // state is no longer behind and no later start would restore again,
    // so what the snapshots carried must be in sled by then. A crash
    // between the two restores again, and the outputs are written once
    // more (records with the same ids; notifications by id only once).
    let payloads: Vec<&SnapshotPayload> =
        read_back.iter().filter_map(|r| r.restored.snapshot.as_ref().map(|(_, payload)| payload)).collect();
    if !payloads.is_empty() {
        let offsets: crate::store::Offsets = payloads.iter().flat_map(|p| p.offsets.clone()).collect();
        let (outbox, notifications) = match &process.snapshot {
            Some((header, payload)) => {
                // The trends are the process's too (rollups.rs). Rows the
                // local state holds for every batch the snapshot covers
                // (a standby's own, from an earlier turn) stay: the replay
                // adds only what comes after the local state's last batch.
                let local_covers = store.applied()?.is_some_and(|applied| applied + 1 >= header.covered);
                if let (Some(rows), false) = (&payload.rollups, local_covers) {
                    store.replace_rollups(rows)?;
                }
                (payload.outbox.as_slice(), payload.notifications.as_slice())
            }
            None => (&[][..], &[][..]),
        };
        let mut stored = store.offsets()?;
        store.restore_outputs(outbox, notifications, offsets, &mut stored)?;
    }
    // The versions the journal activates and the snapshot was made
    // under; without them the recovery would run the rules directory's.
    if !process.rules.is_empty() {
        let entries = process.rules.iter().map(|(k, (v, _))| (k.clone(), v.clone()));
        crate::rules::versions::Versions::open(&store.handle())?.import(entries)?;
    }
    let snapshots: Vec<journal::SnapshotFile> = read_back
        .iter()
        .map(|r| {
            let dir = match tasks {
                Some(_) => journal::task_dir(state_dir, r.partition as u16),
                None => state_dir.to_path_buf(),
            };
            (dir, r.restored.snapshot.as_ref().map(|(header, payload)| (header.covered, payload.engine.as_slice())))
        })
        .collect();
    journal::install(state_dir, &snapshots, &frames)?;
    Ok(frames.len() as u64)
}

/// Partition `partition`'s entries, decoded, once checked to be written
/// for the state kept as `tasks` says: its snapshot header names the same
/// task count, and each entry carries the partition's task marker alone
/// (none with one state, whose entries are not kept: they are installed
/// as read). Why: a topic written under another split would restore a
/// state that mixes or drops tasks.
fn checked_entries(restored: &Restored, partition: i32, tasks: Option<u16>) -> Result<Vec<journal::Entry>, String> {
    if let Some((header, _)) = &restored.snapshot {
        if header.tasks != tasks {
            return Err(format!("its snapshot is of a state split into {:?} tasks, not {tasks:?}", header.tasks));
        }
    }
    let mut entries = Vec::new();
    for (seq, frame) in (restored.covered()..).zip(&restored.frames) {
        // `Contents::restore` has decoded each one already.
        let Some(entry) = journal::decode_frame(frame) else { continue };
        let markers: Vec<u16> = entry
            .inputs
            .iter()
            .filter_map(|input| match input {
                mon_runtime::live::Input::Task(task) => Some(*task),
                _ => None,
            })
            .collect();
        let first_is_its_own =
            matches!(entry.inputs.first(), Some(mon_runtime::live::Input::Task(t)) if i32::from(*t) == partition);
        let right = match tasks {
            Some(_) => markers.len() == 1 && first_is_its_own,
            None => markers.is_empty(),
        };
        if !right {
            return Err(format!("entry {seq} carries the task markers {markers:?}"));
        }
        if tasks.is_some() {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// The first batch not every partition holds. A batch past it (a crash
/// between two partitions' acknowledgements) never let its outputs out,
/// and is read again from the input.
fn held_by_all(read_back: &[ReadBack]) -> u64 {
    read_back.iter().map(|r| r.restored.next_seq()).min().unwrap_or(0)
}

/// The tasks' partitions put together as the local journal holds them:
/// for each batch, every task's inputs behind its [`mon_runtime::live::Input::Task`],
/// from the oldest snapshot on, up to `end` (every partition holds the
/// batches below it). A partition whose snapshot covers batches past
/// `end` keeps it: that happens only when a snapshot reached one
/// partition and not another, which is said (an event handed from it to a
/// scheduled workflow's owner in those batches is lost).
fn merge_task_frames(read_back: &mut [ReadBack], end: u64) -> Vec<Vec<u8>> {
    let mut batches: BTreeMap<u64, (Vec<mon_runtime::live::Input>, crate::store::Offsets)> = BTreeMap::new();
    for ReadBack { partition, restored, entries, .. } in read_back {
        let covered = restored.covered();
        if covered > end {
            tracing::error!(
                partition,
                covered,
                end,
                "changelog: this task's snapshot covers batches another task's partition lacks (a snapshot reached \
                 one partition and not the other); events handed between them in those batches may be lost"
            );
        }
        for entry in std::mem::take(entries).into_iter().take_while(|entry| entry.seq < end) {
            let batch = batches.entry(entry.seq).or_default();
            batch.0.extend(entry.inputs);
            batch.1.extend(entry.offsets);
        }
    }
    batches.into_iter().map(|(seq, (inputs, offsets))| journal::encode_frame(seq, &inputs, &offsets)).collect()
}

/// Claims partition `partition` of the changelog for the epoch after the
/// newest one in `contents` (read up to `next`), then reads on through the
/// claim, so that `contents` holds every record written before it
/// (`fence.rs`). Another process may claim at the same moment: the first
/// claim of an epoch in the log holds it, and the one that finds itself
/// second (or a newer epoch before it) claims the next epoch.
fn claim(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    producer: &Producer,
    runtime: &tokio::runtime::Runtime,
    contents: &mut Contents,
    mut next: Offset,
) -> Result<Arc<Fence>, Error> {
    const ATTEMPTS: u32 = 3;
    for _ in 0..ATTEMPTS {
        let epoch = contents.epoch.checked_add(1).ok_or_else(|| {
            Error::new(Domain::Kafka, Retry::Never, format!("the changelog {topic} has no writer epoch left to claim"))
        })?;
        let (key, value) = (claim_key(epoch), claim_value(epoch));
        let record = epoch_record(topic, partition, &key, epoch).payload(&value);
        let timeout = Duration::from_millis(PRODUCE_TIMEOUT_MS.parse().unwrap_or(10_000));
        let offset = runtime
            .block_on(producer.send(record, timeout))
            .map_err(|(e, _)| {
                Error::new(Domain::Kafka, Retry::Later, format!("cannot claim the changelog {topic}")).caused_by(e)
            })?
            .offset;
        next = read_into(kafka, topic, partition, contents, next, Some(offset))?;
        if contents.epoch == epoch && contents.claimed_at == offset {
            tracing::info!(topic, partition, epoch, offset, "changelog claimed");
            return Ok(Arc::new(Fence::new(epoch, offset)));
        }
        tracing::warn!(
            topic,
            partition,
            epoch,
            offset,
            newest = contents.epoch,
            "changelog: another process claimed it at the same time; claiming the next epoch"
        );
    }
    Err(Error::new(
        Domain::Kafka,
        Retry::Later,
        format!("the changelog {topic}, partition {partition}: other processes claimed it {ATTEMPTS} times while this one tried"),
    ))
}

/// The first batch the local state does not hold: the journal's next
/// entry, or with state per partition and an empty journal, the oldest
/// task snapshot's cover (they differ only when a crash came while they
/// were written or restored, and then the oldest is what is whole).
/// Opening the journal cuts off a torn last entry, as the recovery would.
fn local_next(state_dir: &Path, tasks: Option<u16>) -> Result<u64, Error> {
    let (journal, recovered) = Journal::open(state_dir)?;
    let Some(tasks) = tasks else { return Ok(journal.next_seq()) };
    if !recovered.entries.is_empty() {
        return Ok(journal.next_seq());
    }
    let mut oldest = u64::MAX;
    for partition in 0..tasks {
        let snapshot = journal::read_snapshot(&journal::task_dir(state_dir, partition))?;
        oldest = oldest.min(snapshot.map_or(0, |(covered, _)| covered));
    }
    Ok(oldest)
}

/// Creates the topic when it is missing, with the first input topic's
/// partition count (or `create_topics.partitions` if that is unknown);
/// returns its partition count.
pub(super) fn ensure_topic(
    kafka: &KafkaConfig,
    topic: &str,
    context: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<i32, Error> {
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
    if let Some(count) = partitions(topic)? {
        return Ok(count);
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
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::records::entry_records;
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

    /// The local state's next batch, and whether `restored` is ahead of it.
    fn local_is_behind(state: &Path, restored: &Restored) -> Result<(u64, bool), Error> {
        let next = local_next(state, None)?;
        Ok((next, must_restore(next, restored.next_seq())))
    }

    /// Partition `partition` of a changelog as read back: whole entries
    /// from 0, each with its inputs and the partition's offset.
    fn partition_read_back(partition: i32, entries: &[Vec<Input>]) -> ReadBack {
        let mut contents = Contents::default();
        let mut offset = 0;
        for (seq, inputs) in entries.iter().enumerate() {
            let offsets = Offsets::from([(("in".to_string(), partition), seq as i64 + 1)]);
            let frame = journal::encode_frame(seq as u64, inputs, &offsets);
            for (key, value) in entry_records(seq as u64, &frame) {
                contents.add(offset, Some(key.as_bytes()), Some(&value), 1).unwrap();
                offset += 1;
            }
        }
        let restored = contents.restore().unwrap();
        let entries = checked_entries(&restored, partition, Some(3)).unwrap_or_default();
        ReadBack { partition, fence: Arc::new(Fence::new(1, 0)), restored, entries }
    }

    #[test]
    fn the_tasks_partitions_merge_into_one_journal_up_to_the_batch_every_partition_holds() {
        let task = |partition: u16, ticks: &[i64]| -> Vec<Input> {
            std::iter::once(Input::Task(partition)).chain(ticks.iter().map(|t| Input::Tick(*t))).collect()
        };
        // Batch 2 reached partition 0 and not partition 1 (a crash between
        // the acknowledgements): it is left to be read again.
        let zero = partition_read_back(0, &[task(0, &[1]), task(0, &[]), task(0, &[3])]);
        let one = partition_read_back(1, &[task(1, &[10]), task(1, &[11])]);
        let mut read_back = [zero, one];
        assert_eq!(held_by_all(&read_back), 2);
        let end = held_by_all(&read_back);
        let merged = merge_task_frames(&mut read_back, end);
        let entries: Vec<journal::Entry> = merged.iter().map(|f| journal::decode_frame(f).unwrap()).collect();
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(entries[0].inputs, [Input::Task(0), Input::Tick(1), Input::Task(1), Input::Tick(10)]);
        assert_eq!(entries[1].inputs, [Input::Task(0), Input::Task(1), Input::Tick(11)]);
        let both = Offsets::from([(("in".to_string(), 0), 2), (("in".to_string(), 1), 2)]);
        assert_eq!(entries[1].offsets, both, "each partition's offsets");
    }

    #[test]
    fn entries_written_under_another_split_are_refused() {
        let own = partition_read_back(0, &[vec![Input::Task(0), Input::Tick(1)], vec![Input::Task(0)]]);
        assert!(checked_entries(&own.restored, 0, Some(3)).is_ok());
        assert!(checked_entries(&own.restored, 1, Some(3)).is_err(), "another task's entries");
        assert!(checked_entries(&own.restored, 0, None).is_err(), "the tasks' entries for one state");
        let one_state = partition_read_back(0, &[vec![Input::Tick(1)]]);
        assert!(checked_entries(&one_state.restored, 0, None).is_ok());
        assert!(checked_entries(&one_state.restored, 0, Some(3)).is_err(), "one state's entries for a task");
        let two = partition_read_back(0, &[vec![Input::Task(0), Input::Tick(1), Input::Task(1)]]);
        assert!(checked_entries(&two.restored, 0, Some(3)).is_err(), "two tasks' inputs in one partition");
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
