//! The processing thread: the only owner of the engine and the only writer
//! of the state.
//!
//! Each turn gathers one batch (a wall-clock tick if a timer is due, HTTP
//! ingest requests, Kafka messages), applies it to the engine as it comes,
//! then writes everything the batch did to sled in one atomic, flushed
//! write. Only after that does anything leave: HTTP replies, the outbox's
//! records, Kafka's offset commit. A failed write stops the service, since
//! memory is then ahead of disk; the next start replays the journal.

mod activation;
pub mod handing;
pub mod intake;
mod partitions;
mod tasks;

pub use activation::compile_version;
use intake::{Original, Polled, Read};
pub use partitions::{RecentKey, RecentKeys, SharedRecentKeys, SplitKeyView, SplitKeysView, RECENT_KEYS_KEPT};
pub use tasks::Task;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mon_compiler::ir::Program;
use mon_compiler::Functions;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::clock::wall_now;
use super::config::Config;
use super::envelope::Envelopes;
use super::error::{Domain, Error};
use super::journal::{Entry, Journal};
use super::kafka::Consumer;
use super::metrics::{EventLabels, KindLabels, Metrics, WorkflowLabels};
use super::rules::versions::Versions;
use super::store::NotificationEntry;
use super::store::{BatchWrite, DeadLetter, Offsets, OutboxItem, Store, Target};
use mon_runtime::aggregates::{self, Slice};
use mon_runtime::alerts::{Action, Alert, CommandError};
use mon_runtime::event::Decoded;
use mon_runtime::live::{Fed, Input, Migration};
use mon_runtime::record::{Kind, Record};
use mon_runtime::Event;

/// What the HTTP side asks of the processing thread.
pub enum Request {
    Events(IngestRequest),
    Command(CommandRequest),
    Rules(RulesRequest),
    /// A read of one stage's items: never journaled (it changes nothing),
    /// answered between two batches from durable state only.
    StageItems(StageItemsRequest),
    /// Which of these items the state holds (a scale-out group's
    /// split-key check): a read, answered at once.
    KeysHeld(KeysHeldRequest),
}

/// `POST /api/v1/keys/held`: the (workflow, key) pairs asked about that the
/// state holds an item of.
pub struct KeysHeldRequest {
    pub keys: Vec<(String, String)>,
    pub reply: tokio::sync::oneshot::Sender<Vec<(String, String)>>,
}

/// `GET .../stages/{stage}/items`: the stage's oldest items, as the engine
/// holds them now.
pub struct StageItemsRequest {
    pub ask: crate::stage_items::Ask,
    pub reply: tokio::sync::oneshot::Sender<Result<crate::stage_items::StageItems, crate::stage_items::Unknown>>,
}

/// A change to what runs: activate a stored rule version, or enable or
/// disable one workflow. Journaled like an event; the reply goes once the
/// batch is durable.
pub struct RulesRequest {
    pub change: RulesChange,
    pub by: String,
    /// A scale-out group's change: its offset in `<group>.rules`
    /// (`rules/group.rs`), journaled with the change among the input
    /// offsets; a change below the offset the state holds is not applied.
    pub group_offset: Option<i64>,
    pub reply: tokio::sync::oneshot::Sender<RulesReply>,
}

pub enum RulesChange {
    Activate {
        version: u64,
    },
    SetEnabled {
        workflow: String,
        enabled: bool,
    },
    /// Nothing to apply (a version stored, a change that is not applied):
    /// only the group offset moves.
    Skip,
}

/// What a rules change did, or why it did nothing.
pub type RulesReply = Result<RulesDone, String>;

pub enum RulesDone {
    /// `at`: when it took effect, on the engine's clock (ms).
    Activated {
        migration: Migration,
        previous: Option<u64>,
        at: i64,
    },
    /// `known`: false when no workflow has that name (nothing changed).
    SetEnabled {
        known: bool,
    },
    /// That version runs already: nothing changed.
    AlreadyRunning {
        version: u64,
    },
    Skipped,
}

/// A person's command to an alert (`POST /api/v1/alerts/{id}/ACTION`). The
/// processor stamps it with the clock and journals it as an
/// [`Input::Command`]; the reply goes once the batch is durable.
pub struct CommandRequest {
    pub alert: String,
    pub action: Action,
    pub by: String,
    pub reason: Option<String>,
    pub reply: tokio::sync::oneshot::Sender<CommandReply>,
}

/// The alert as the command left it, or why it did nothing.
pub type CommandReply = Result<Box<Alert>, CommandError>;

/// A reply held until its batch is durable.
pub enum Reply {
    Events(tokio::sync::oneshot::Sender<IngestReply>, IngestReply),
    Command(tokio::sync::oneshot::Sender<CommandReply>, CommandReply),
    Rules(tokio::sync::oneshot::Sender<RulesReply>, RulesReply),
    /// A read that came while the batch had inputs: answered after the
    /// commit, so that it shows nothing that is not durable yet.
    StageItems(StageItemsRequest),
}

/// The alert book as the API shows it, refreshed by the processing thread
/// after a batch that may have changed it (at once after a command).
#[derive(Clone, Debug, Default)]
pub struct AlertsView {
    /// Every alert the book holds, newest first (by `opened_at`, then id).
    pub alerts: Vec<Alert>,
    /// Alerting is on.
    pub enabled: bool,
    /// The engine's clock (ms) on the event clock; `None` on the wall clock,
    /// where "now" is the wall clock.
    pub event_clock: Option<i64>,
}

/// Events posted over HTTP, with where to send the outcome.
pub struct IngestRequest {
    pub lines: Vec<String>,
    pub reply: tokio::sync::oneshot::Sender<IngestReply>,
}

/// What became of the events of one `POST /api/v1/events`.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct IngestReply {
    pub accepted: usize,
    /// Well-formed events of types no rule uses.
    pub ignored: usize,
    pub rejected: Vec<RejectedLine>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RejectedLine {
    /// Position in the request, from 0.
    pub index: usize,
    pub reason: String,
}

/// What the API shows, refreshed by the processing thread about once a second.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    /// The engine's clock (RFC 3339), or none before the first event.
    pub clock: Option<String>,
    pub workflows: Vec<WorkflowView>,
    pub events_accepted: u64,
    pub events_ignored: u64,
    pub events_rejected: u64,
    /// Records made, by kind.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub records: BTreeMap<&'static str, u64>,
    /// Events of an item that came from another input partition than the
    /// one that started it, since this process started; none when there
    /// have been none.
    pub split_keys: Option<SplitKeysView>,
    /// With state per partition: each partition's engine, so that one
    /// whose clock lags (on the event clock) or that holds most of the
    /// items shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PartitionView>>,
}

/// One partition's engine, with state per partition.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PartitionView {
    pub partition: u16,
    /// Its engine's clock (RFC 3339); none before its engine started.
    pub clock: Option<String>,
    /// The items it holds, over every workflow.
    pub items: u64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    pub name: String,
    #[schema(value_type = crate::http::schema::StatusWord)]
    pub status: &'static str,
    #[schema(value_type = crate::http::schema::WorkflowMetrics)]
    pub metrics: aggregates::Metrics,
}

/// What a batch has done so far, before it is written.
#[derive(Default)]
pub struct Pending {
    /// Each input with the task whose journal it goes to.
    pub inputs: Vec<(usize, Input)>,
    pub outbox: Vec<OutboxItem>,
    pub dead_letters: Vec<DeadLetter>,
    /// Offsets moved by this batch.
    pub offsets: Offsets,
    /// Per task, the input partition last said to it in this batch
    /// ([`Input::Partition`]); a task not in it has been told none.
    pub said: Vec<(usize, Option<u16>)>,
    /// An event this batch could not hand to its scheduled workflow's
    /// owner (`handing.rs`): the batch must not be kept.
    pub unhanded: Option<Error>,
}

pub struct Processor<'p> {
    /// The program the engine runs: the active rule version's.
    pub program: &'p Program,
    pub functions: &'p dyn Functions,
    /// The same program, for the HTTP side (event search, lifecycles).
    pub shared_program: crate::http::ActiveProgram,
    pub versions: Versions,
    /// The active rule version.
    pub active: Option<u64>,
    /// Rule versions compiled so far. A program lives as long as the
    /// process (`Box::leak`): an engine's state borrows its program, and
    /// activations are rare, human-made events.
    pub compiled: HashMap<u64, &'p Program>,
    /// What the last activation applied did (taken by its request).
    pub migrated: Option<Result<Migration, String>>,
    /// Who asked for the activation being applied.
    pub activating_by: Option<String>,
    /// The state: one task, or one per input partition (`tasks.rs`).
    pub tasks: Vec<Task<'p>>,
    /// Every task's inputs, one entry per batch.
    pub journal: Journal,
    /// With state per partition: the owners of the scheduled workflows.
    pub owners: mon_runtime::engine::Owners,
    /// Partitions beyond the tasks already said to be (`poll`).
    pub beyond_tasks_warned: std::collections::HashSet<i32>,
    /// Split keys found across tasks (an item started on one partition's
    /// task while another's holds it), and how many events were.
    pub split_across: mon_runtime::engine::SplitKeys,
    /// The journal and snapshots mirrored to Kafka (`changelog.rs`), when
    /// on: one per task, each writing its partition of the topic.
    pub changelogs: Vec<crate::changelog::Changelog>,
    /// A scale-out task's events for scheduled workflows owned by other
    /// partitions' tasks (`handing.rs`).
    pub handing: Option<handing::Handing>,
    pub store: Store,
    pub stored_offsets: Offsets,
    pub config: Config,
    pub envelopes: Envelopes,
    /// For committing offsets; the intake thread polls it.
    pub consumer: Option<Arc<Consumer>>,
    /// The intake thread's chunks of read messages (none without Kafka).
    pub intake: Option<Receiver<Vec<Polled<'p>>>>,
    /// What is left of the last chunk.
    pub intake_queue: std::collections::VecDeque<Polled<'p>>,
    /// The program the intake thread decodes for: set at each activation.
    pub intake_program: intake::Running<'p>,
    pub ingest: Receiver<Request>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<RwLock<StatusView>>,
    pub publisher_wake: Arc<tokio::sync::Notify>,
    /// Outbox items below this sequence are flushed and may be published.
    pub outbox_flushed: Arc<std::sync::atomic::AtomicU64>,
    pub stop: Arc<AtomicBool>,
    /// Inputs journaled, over all tasks, since they last snapshotted.
    pub journaled_since_snapshot: u64,
    pub totals: StatusView,
    /// Pending notifications below this sequence are flushed and may be sent.
    pub notifications_flushed: Arc<std::sync::atomic::AtomicU64>,
    pub delivery_wake: Arc<tokio::sync::Notify>,
    pub alerts_view: Arc<RwLock<AlertsView>>,
    /// The book may have changed since `alerts_view` was refreshed.
    pub alerts_dirty: bool,
    /// Undeclared event types that have their own metric label.
    pub ignored_types: std::collections::HashSet<String>,
    /// The workflow views and the stream's changes (`views.rs`).
    pub board: crate::views::Board,
    /// The engine's clock after the last durable batch, for the HTTP side.
    pub engine_now: Arc<std::sync::atomic::AtomicI64>,
    /// The engine-clock hour of the last rollup compaction.
    pub compacted_hour: Option<i64>,
    /// Rollup rows of this batch made before an activation renumbered the
    /// workflows: named by the program that counted them.
    pub rollups_before_activation: Vec<(Vec<u8>, mon_runtime::aggregates::Movement)>,
    /// When the last split-key warning was logged.
    pub split_key_warned: Option<Instant>,
    /// This batch took a group rule change (`rules/group.rs`): it is
    /// committed even if the change applied nothing, since the topic's
    /// offset moved, and the rules store goes to the changelog with it
    /// (the change may have stored a version).
    pub group_offset_moved: bool,
    /// A scale-out task's keys another task may hold (`partitions.rs`).
    pub recent_keys: Option<SharedRecentKeys>,
    /// A scale-out task's key, among its offsets, of its group's rules
    /// topic (`rules/group.rs`): made once, not at every batch.
    pub group_rules_key: Option<(String, i32)>,
}

/// [`Processor::engine_now`] before the engine has a clock.
pub const NO_CLOCK: i64 = i64::MIN;

/// The most of a rejected message's bytes sent to the dead-letter topic.
const MAX_DEAD_LETTER_BYTES: usize = 900_000;

/// The alert view is copied at most this often, except after a command:
/// with thousands of alerts, a copy per 20 ms batch would cost more than
/// the batch.
const ALERTS_VIEW_EVERY: Duration = Duration::from_millis(200);

/// While messages flow, the batch's time budget is checked every this many.
const CLOCK_READ_EVERY: u32 = 64;

/// How many undeclared event types get a metric label of their own.
const MAX_IGNORED_TYPE_LABELS: usize = 100;

/// The records topic's key: the workflow and the item, so one item's
/// records stay in order on one partition.
fn record_key(record: &Record) -> Option<Vec<u8>> {
    let workflow = record.workflow.as_deref()?;
    let mut key = workflow.to_string();
    for value in record.key.iter().flat_map(|k| k.values()) {
        key.push('/');
        key.push_str(value);
    }
    Some(key.into_bytes())
}

impl<'p> Processor<'p> {
    /// Runs until `stop` is set; the error is why the state can no longer
    /// be trusted to match memory.
    pub fn run(mut self) -> Result<(), Error> {
        let mut last_status = Instant::now() - Duration::from_secs(10);
        let mut last_alerts = last_status;
        let mut records = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let mut batch = Pending::default();
            let mut replies = Vec::new();
            let mut accepted_by_type = vec![0u64; self.program.events.len()];
            self.gather(&mut batch, &mut replies, &mut records, &mut accepted_by_type);
            // A group rule change that applies nothing still moves that
            // topic's offset, which must be journaled.
            if !batch.inputs.is_empty() || self.group_offset_moved {
                let commands = replies.iter().any(|r| matches!(r, Reply::Command(..)));
                self.commit(batch, &mut records, &mut accepted_by_type)?;
                // Before the replies: a client that posted events and then
                // reads a trend sees them on a clock that includes them.
                self.publish_clock();
                // Why before the replies: a client that acknowledged an
                // alert and then reads it must see it acknowledged.
                if commands || (self.alerts_dirty && last_alerts.elapsed() >= ALERTS_VIEW_EVERY) {
                    self.refresh_alerts();
                    last_alerts = Instant::now();
                }
            }
            // After the commit, when there was one; a batch without one
            // (a rules change refused before it applied anything) has
            // nothing to wait for.
            for reply in replies {
                match reply {
                    Reply::Events(reply, outcome) => {
                        let _ = reply.send(outcome);
                    }
                    Reply::Command(reply, outcome) => {
                        let _ = reply.send(outcome);
                    }
                    Reply::Rules(reply, outcome) => {
                        let _ = reply.send(outcome);
                    }
                    Reply::StageItems(request) => self.stage_items(request),
                }
            }
            if self.alerts_dirty && last_alerts.elapsed() >= ALERTS_VIEW_EVERY {
                self.refresh_alerts();
                last_alerts = Instant::now();
            }
            if last_status.elapsed() >= Duration::from_secs(1) {
                self.refresh_status();
                // On the wall clock time alone ages items and runs down
                // countdowns; on the event clock only inputs change them.
                let wall = self.config.clock == mon_runtime::live::ClockMode::Wall;
                self.refresh_board(wall);
                last_status = Instant::now();
            }
        }
        self.shutdown()
    }

    /// Collects one batch, applying each input as it arrives.
    fn gather(
        &mut self,
        batch: &mut Pending,
        replies: &mut Vec<Reply>,
        records: &mut Vec<Record>,
        accepted_by_type: &mut Vec<u64>,
    ) {
        let now = wall_now();
        for task in 0..self.tasks.len() {
            if self.tasks[task].live.tick_due(now) {
                self.apply(task, Input::Tick(now), batch, records);
            }
        }
        let started = Instant::now();
        // Taken out for the batch, so the engine (in `self`) can be fed
        // while it is read.
        let intake = self.intake.take();
        self.poll(intake.as_ref(), batch, replies, records, accepted_by_type, started);
        self.intake = intake;
    }

    fn poll(
        &mut self,
        intake: Option<&Receiver<Vec<Polled<'p>>>>,
        batch: &mut Pending,
        replies: &mut Vec<Reply>,
        records: &mut Vec<Record>,
        accepted_by_type: &mut Vec<u64>,
        started: Instant,
    ) {
        let max_batch = self.config.engine.max_batch;
        let wait = Duration::from_millis(self.config.engine.max_batch_wait_ms.max(1));
        // On the wall clock, a batch ends when the next timer falls due, so
        // the next turn fires it at once: the batch wait is not added to
        // the delay of an alert.
        let until_due = self
            .next_due()
            .map(|due| Duration::from_millis(due.saturating_add(1).saturating_sub(wall_now()).max(0) as u64));
        let ends = started + wait.min(until_due.unwrap_or(Duration::MAX));
        let mut budget = ends.saturating_duration_since(Instant::now());
        let mut since_clock_read = 0u32;
        loop {
            // HTTP first: its callers wait on the reply.
            while batch.inputs.len() < max_batch {
                let Ok(request) = self.ingest.try_recv() else { break };
                replies.extend(self.request(request, batch, records, accepted_by_type));
            }
            // Reading the clock for every message was 6% of this thread
            // under load (a profile of `cargo bench --bench service`):
            // while messages flow, every 64th is soon enough to end a batch
            // on time (64 messages take well under a millisecond).
            since_clock_read += 1;
            if batch.inputs.is_empty() || since_clock_read >= CLOCK_READ_EVERY {
                since_clock_read = 0;
                budget = ends.saturating_duration_since(Instant::now());
            }
            if batch.inputs.len() >= max_batch || budget.is_zero() {
                return;
            }
            let Some(intake) = intake else {
                // Without Kafka, wait on the HTTP channel, but not past the
                // next tick.
                match self.ingest.recv_timeout(budget) {
                    Ok(request) => replies.extend(self.request(request, batch, records, accepted_by_type)),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
                }
                // It waited: the next turn needs the budget that is left.
                since_clock_read = CLOCK_READ_EVERY;
                continue;
            };
            let timeout = if batch.inputs.is_empty() { budget } else { Duration::ZERO };
            let Some(polled) = self.next_polled(intake, timeout) else {
                if !batch.inputs.is_empty() {
                    return;
                }
                since_clock_read = CLOCK_READ_EVERY;
                continue;
            };
            let (topic, partition, offset) = (&*polled.topic, polled.partition, polled.offset);
            // Below the next offset this batch or an earlier one took: a
            // redelivery after a restart or a rebalance, already journaled.
            // Looked up by scanning (a batch touches few partitions), so
            // the topic's name is copied once per batch, not per message.
            let this_partition = |(t, p): &&(String, i32)| t == topic && *p == partition;
            match batch.offsets.iter_mut().find(|(k, _)| this_partition(k)) {
                Some((_, next)) if offset < *next => continue,
                Some((_, next)) => *next = offset + 1,
                None => {
                    let stored = self.stored_offsets.iter().find(|(k, _)| this_partition(k));
                    if stored.is_some_and(|(_, next)| offset < *next) {
                        continue;
                    }
                    batch.offsets.insert((topic.to_string(), partition), offset + 1);
                }
            }
            // A line another task handed over: taken once per origin
            // offset, however often it was handed (`handing.rs`).
            let handed_from = polled.handed_from;
            if handed_from.as_ref().is_some_and(|origin| !self.take_handed(topic, origin, batch)) {
                continue;
            }
            // A partition added to the topic after the state was split: no
            // task holds its items, and none may take them. Its messages
            // are rejected (a record, the dead letters, with the reason),
            // through partition 0's task, which journals the rejection.
            let beyond = self.per_partition() && usize::try_from(partition).map_or(true, |p| p >= self.tasks.len());
            let read = if beyond {
                let original = match polled.read {
                    Read::Line { line, dead, .. } => {
                        dead.unwrap_or(Original { payload: line.into_bytes(), headers: Vec::new() })
                    }
                    Read::Unreadable { original, .. } => original,
                };
                let reason = format!(
                    "partition {partition} of {topic}: the state is kept per partition of {} (docs/service.md, \
                     \"State per partition\"); the topic has grown since",
                    self.tasks.len()
                );
                if self.beyond_tasks_warned.insert(partition) {
                    tracing::error!(topic, partition, tasks = self.tasks.len(), "{reason}: its messages are rejected");
                }
                Read::Unreadable { reason, original }
            } else {
                polled.read
            };
            let task = self.task_of(Some(partition));
            let from = match &handed_from {
                Some(origin) => Some(origin.partition),
                None if beyond => None,
                None => u16::try_from(partition).ok(),
            };
            self.say_partition(task, from, batch, records);
            let held_before = self.held(task);
            let (fed, original, decoded) = match read {
                // Decoded for the program running now: the usual case.
                Read::Line { line, decoded, dead } if std::ptr::eq(polled.program, self.program) => {
                    (self.apply_decoded(task, line, &decoded, batch, records), dead, Some(decoded))
                }
                // Decoded before an activation: decoded again, for the
                // program that takes it. A rejection then keeps the line
                // (the message's headers are gone).
                Read::Line { line, dead, .. } => {
                    let original =
                        dead.unwrap_or_else(|| Original { payload: line.clone().into_bytes(), headers: Vec::new() });
                    (self.apply(task, Input::Line(line), batch, records), Some(original), None)
                }
                Read::Unreadable { reason, original } => {
                    (self.apply(task, Input::Unreadable(reason), batch, records), Some(original), None)
                }
            };
            // The batch ends at an event it could not hand on, and is
            // not kept (`commit`): read again, it hands again, in order.
            if handed_from.is_none() && !self.hand_on(&fed, topic, offset, batch) {
                return;
            }
            if let (Some(event_type), Some(from)) = (tasks::event_type(&fed), from) {
                let decoded = decoded.as_ref();
                self.after_event(tasks::Taken { task, from, decoded, event_type, held_before }, batch, records);
            }
            match fed {
                // A handed event was counted where it was read.
                Fed::Event { event_type } if handed_from.is_none() => {
                    if let Some(count) = accepted_by_type.get_mut(event_type as usize) {
                        *count += 1;
                    }
                }
                Fed::Rejected { reason } => {
                    let origin = format!("kafka:{topic}/{partition}@{offset}");
                    let original = original.unwrap_or(Original { payload: Vec::new(), headers: Vec::new() });
                    self.dead_letter(batch, reason, origin, &original.payload, original.headers);
                }
                _ => {}
            }
        }
    }

    /// The next message the intake thread read, waiting up to `timeout`
    /// for it when none is queued.
    fn next_polled(&mut self, intake: &Receiver<Vec<Polled<'p>>>, timeout: Duration) -> Option<Polled<'p>> {
        if self.intake_queue.is_empty() {
            let chunk = if timeout.is_zero() { intake.try_recv().ok()? } else { intake.recv_timeout(timeout).ok()? };
            self.intake_queue.extend(chunk);
        }
        let polled = self.intake_queue.pop_front()?;
        let (tasks, program) = (&self.tasks, self.program);
        let per_partition = self.per_partition();
        let engine_of = |partition: i32| {
            let task = if per_partition { usize::try_from(partition).ok()? % tasks.len() } else { 0 };
            tasks.get(task)?.live.engine()
        };
        intake::prefetch_ahead(engine_of, self.intake_queue.make_contiguous(), program);
        Some(polled)
    }

    /// Applies a request to the batch and returns the reply to send once
    /// the batch is durable; a read into an empty batch is answered at
    /// once (`None`).
    fn request(
        &mut self,
        request: Request,
        batch: &mut Pending,
        records: &mut Vec<Record>,
        accepted_by_type: &mut Vec<u64>,
    ) -> Option<Reply> {
        Some(match request {
            Request::Events(request) => {
                let (reply, outcome) = self.ingest_request(request, batch, records, accepted_by_type);
                Reply::Events(reply, outcome)
            }
            // Why wait for the commit when the batch has inputs: the engine
            // is then ahead of disk, and nothing leaves before it is
            // durable (ARCHITECTURE.md rule 3), replies included.
            Request::StageItems(request) if !batch.inputs.is_empty() => Reply::StageItems(request),
            Request::StageItems(request) => {
                self.stage_items(request);
                return None;
            }
            // What a batch not yet durable holds may be answered: a split
            // key is a fact about the producer, not about this batch.
            Request::KeysHeld(request) => {
                let held = request.keys.into_iter().filter(|(workflow, key)| self.holds(workflow, key)).collect();
                let _ = request.reply.send(held);
                return None;
            }
            Request::Command(request) => {
                // Stamped here, with the wall clock, so that its instant is
                // journaled and in order with the ticks. On the event clock
                // the book takes its own clock instead (`Simulation::command`).
                let command = mon_runtime::alerts::Command {
                    alert: request.alert,
                    action: request.action,
                    by: request.by,
                    reason: request.reason,
                    at: wall_now(),
                };
                // The task whose book holds the alert: an alert is its item's.
                let task = self
                    .tasks
                    .iter()
                    .position(|task| task.live.book().is_some_and(|book| book.alert(&command.alert).is_some()))
                    .unwrap_or(0);
                let outcome = match self.apply(task, Input::Command(command), batch, records) {
                    Fed::Command(outcome) => outcome,
                    _ => Err(CommandError::NotFound(String::new())),
                };
                Reply::Command(request.reply, outcome)
            }
            Request::Rules(request) => {
                if let Some(offset) = request.group_offset {
                    if !self.take_group_offset(offset, batch) {
                        return Some(Reply::Rules(request.reply, Err(format!("applied already (offset {offset})"))));
                    }
                }
                let outcome = self.rules_change(request.change, request.by, batch, records, accepted_by_type);
                Reply::Rules(request.reply, outcome)
            }
        })
    }

    /// Whether any task's state holds an item of `workflow` under `key`.
    fn holds(&self, workflow: &str, key: &str) -> bool {
        let Some(w) = self.program.workflows.iter().position(|w| w.name == workflow) else { return false };
        let states = self.tasks.iter().filter_map(|task| task.live.state());
        states.into_iter().any(|state| state.workflows.get(w).is_some_and(|items| items.find(key).is_some()))
    }

    /// Answers a read of a stage's items from the engine as it is.
    fn stage_items(&self, request: StageItemsRequest) {
        // Why the engine's clock: ages and times left then agree with the
        // views and the records on either clock mode.
        let now = self.clock().unwrap_or_else(wall_now);
        let answer = crate::stage_items::list(self.program, &self.states(), &request.ask, now);
        // A caller that gave up is no error.
        let _ = request.reply.send(answer);
    }

    /// Counts the events of the batch so far into the metrics, by type name.
    fn count_accepted(&mut self, accepted_by_type: &mut [u64]) {
        for (event_type, count) in accepted_by_type.iter_mut().enumerate().filter(|(_, c)| **c > 0) {
            if let Some(event) = self.program.events.get(event_type) {
                let name = event.name.clone();
                self.metrics
                    .events
                    .get_or_create(&EventLabels { event_type: name, outcome: "accepted" })
                    .inc_by(*count);
            }
            *count = 0;
        }
    }

    fn ingest_request(
        &mut self,
        request: IngestRequest,
        batch: &mut Pending,
        records: &mut Vec<Record>,
        accepted_by_type: &mut [u64],
    ) -> (tokio::sync::oneshot::Sender<IngestReply>, IngestReply) {
        let mut reply = IngestReply::default();
        let from = self.http_partition();
        let task = self.task_of(from.map(i32::from));
        for (index, line) in request.lines.into_iter().enumerate() {
            self.say_partition(task, from, batch, records);
            let bytes = line.as_bytes().to_vec();
            let held_before = self.held(task);
            let fed = self.apply(task, Input::Line(line), batch, records);
            if let (Some(event_type), Some(from)) = (tasks::event_type(&fed), from) {
                self.after_event(tasks::Taken { task, from, decoded: None, event_type, held_before }, batch, records);
            }
            match fed {
                Fed::Event { event_type } => {
                    reply.accepted += 1;
                    if let Some(count) = accepted_by_type.get_mut(event_type as usize) {
                        *count += 1;
                    }
                }
                Fed::Ignored { .. } => reply.ignored += 1,
                Fed::Rejected { reason } => {
                    self.dead_letter(batch, reason.clone(), "http".into(), &bytes, Vec::new());
                    reply.rejected.push(RejectedLine { index, reason });
                }
                Fed::Tick | Fed::Command(_) | Fed::Activate { .. } | Fed::SetEnabled { .. } | Fed::Partition => {}
            }
        }
        (request.reply, reply)
    }

    /// Applies one input to `task` and journals it; returns what it did.
    fn apply(&mut self, task: usize, input: Input, batch: &mut Pending, records: &mut Vec<Record>) -> Fed {
        let fed = self.feed(task, &input, records);
        self.account(task, input, fed, batch)
    }

    /// [`apply`](Self::apply) for a line the intake thread has decoded.
    fn apply_decoded(
        &mut self,
        task: usize,
        line: String,
        decoded: &Decoded,
        batch: &mut Pending,
        records: &mut Vec<Record>,
    ) -> Fed {
        let fed = self.tasks[task].live.apply_decoded(decoded, records);
        self.account(task, Input::Line(line), fed, batch)
    }

    /// Counts what an input did and adds it to `task`'s journal entry.
    fn account(&mut self, task: usize, input: Input, fed: Fed, batch: &mut Pending) -> Fed {
        self.board.dirty = true;
        match &fed {
            Fed::Ignored { type_name } => {
                self.totals.events_ignored += 1;
                // Undeclared types come from the producers: the first few
                // keep their name, the rest share one label, so a producer
                // that sends random types cannot grow /metrics without end.
                let event_type = if self.ignored_types.contains(type_name) {
                    type_name.clone()
                } else if self.ignored_types.len() < MAX_IGNORED_TYPE_LABELS {
                    self.ignored_types.insert(type_name.clone());
                    type_name.clone()
                } else {
                    "(other)".to_string()
                };
                self.metrics.events.get_or_create(&EventLabels { event_type, outcome: "ignored" }).inc();
            }
            Fed::Rejected { .. } => {
                self.totals.events_rejected += 1;
                let event_type = match &input {
                    Input::Line(line) => rejected_type(self.program, line),
                    _ => String::new(),
                };
                self.metrics.events.get_or_create(&EventLabels { event_type, outcome: "rejected" }).inc();
            }
            Fed::Event { .. } => self.totals.events_accepted += 1,
            // The book's timers (escalation, the end of a suppression) and
            // commands change alerts without a record.
            Fed::Tick | Fed::Command(_) | Fed::Activate { .. } | Fed::SetEnabled { .. } => self.alerts_dirty = true,
            Fed::Partition => {}
        }
        batch.inputs.push((task, input));
        fed
    }

    fn dead_letter(
        &mut self,
        batch: &mut Pending,
        reason: String,
        origin: String,
        bytes: &[u8],
        mut headers: Vec<(String, Vec<u8>)>,
    ) {
        if self.config.kafka.is_some() {
            headers.push(("mon_reason".into(), reason.clone().into_bytes()));
            headers.push(("mon_origin".into(), origin.clone().into_bytes()));
            // Kafka refuses messages over `message.max.bytes` (1,000,000 by
            // default); the whole original stays in the local dead-letter log.
            let mut payload = bytes.to_vec();
            if payload.len() > MAX_DEAD_LETTER_BYTES {
                payload.truncate(MAX_DEAD_LETTER_BYTES);
                headers.push(("mon_truncated_from".into(), bytes.len().to_string().into_bytes()));
            }
            batch.outbox.push(OutboxItem { target: Target::DeadLetters, key: None, payload, headers });
        }
        batch.dead_letters.push(DeadLetter { reason, origin, received: wall_now(), bytes: bytes.to_vec() });
    }

    fn commit(
        &mut self,
        mut batch: Pending,
        records: &mut Vec<Record>,
        accepted_by_type: &mut [u64],
    ) -> Result<(), Error> {
        if let Some(unhanded) = batch.unhanded.take() {
            return Err(unhanded);
        }
        // Before the batch is journaled: one the changelog holds has
        // handed everything it read.
        if let Some(handing) = &mut self.handing {
            handing.await_all()?;
        }
        self.count_accepted(accepted_by_type);
        self.report_split_keys();
        let started = Instant::now();
        self.journaled_since_snapshot += batch.inputs.len() as u64;
        let seq = self.journal_batch(std::mem::take(&mut batch.inputs), &batch.offsets)?;
        self.group_offset_moved = false;
        let kafka_offsets = batch.offsets.clone();
        let has_output = self.write_outputs(batch, records, seq)?;
        self.metrics.batch_commit_seconds.observe(started.elapsed().as_secs_f64());
        if has_output {
            self.publisher_wake.notify_one();
        }
        if let (Some(consumer), false) = (&self.consumer, kafka_offsets.is_empty()) {
            let mut tpl = TopicPartitionList::new();
            // The group's rules topic is not an input: its offset is the
            // state's alone.
            let rules_topic = self.group_rules_key.as_ref().map(|(topic, _)| topic);
            let input = |t: &String| !handing::is_origin_key(t) && Some(t) != rules_topic;
            for ((topic, partition), next) in kafka_offsets.iter().filter(|((t, _), _)| input(t)) {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
            // For lag metrics only: a failed commit costs nothing but a
            // stale lag figure.
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "kafka offset commit");
            }
        }
        let changelog_behind = self.changelogs.iter().any(|c| c.wants_snapshot());
        if self.journaled_since_snapshot >= self.config.engine.snapshot_every || changelog_behind {
            self.take_snapshot()?;
        }
        self.compact_rollups()?;
        Ok(())
    }

    /// Appends the batch's inputs to the journal, each task's after an
    /// [`Input::Task`] when the state is per partition, and returns the
    /// entry's sequence number.
    fn journal_batch(&mut self, inputs: Vec<(usize, Input)>, offsets: &Offsets) -> Result<u64, Error> {
        if !self.per_partition() {
            let inputs: Vec<Input> = inputs.into_iter().map(|(_, input)| input).collect();
            if self.changelogs.is_empty() {
                return self.journal.append(&inputs, offsets);
            }
            self.mirror_rules_for(&inputs)?;
            let (seq, frame) = self.journal.append_framed(&inputs, offsets)?;
            // Why before the sled write: that write lets the batch's
            // outputs out, and a state rebuilt from the changelog must
            // hold every batch whose outputs left.
            return self.changelogs[0].append(seq, &frame).map(|()| seq);
        }
        let mut by_task: Vec<Vec<Input>> = (0..self.tasks.len()).map(|_| Vec::new()).collect();
        for (task, input) in inputs {
            by_task[task].push(input);
        }
        // Each task's run of the entry: its marker and its inputs.
        let mut grouped = Vec::new();
        let mut runs = Vec::with_capacity(by_task.len());
        for (task, inputs) in by_task.into_iter().enumerate() {
            let from = grouped.len();
            if !inputs.is_empty() {
                grouped.push(Input::Task(task as u16));
                grouped.extend(inputs);
            }
            runs.push(from..grouped.len());
        }
        if self.changelogs.is_empty() {
            return self.journal.append(&grouped, offsets);
        }
        self.mirror_rules_for(&grouped)?;
        let seq = self.journal.append(&grouped, offsets)?;
        // Every task's partition gets a frame, an empty one when the task
        // took nothing, so that a partition's entries stay dense and a
        // batch one partition lacks shows (changelog.rs); once one is
        // behind, none takes entries until a snapshot makes all whole.
        self.hold_back_changelogs();
        // Every frame is handed over before any acknowledgement is awaited:
        // one round trip per batch, whatever the partition count.
        let mut sending = Vec::with_capacity(runs.len());
        for (task, run) in runs.into_iter().enumerate() {
            let marker = [Input::Task(task as u16)];
            let inputs = if run.is_empty() { &marker[..] } else { &grouped[run] };
            let frame = crate::journal::encode_frame(seq, inputs, &self.offsets_of(task, offsets));
            sending.push(self.changelogs[task].send(seq, &frame)?);
        }
        for (changelog, sending) in self.changelogs.iter_mut().zip(sending) {
            changelog.sent(sending)?;
        }
        self.hold_back_changelogs();
        Ok(seq)
    }

    /// The version an activation in `inputs` names goes to the changelog
    /// first: a replay of the entry from the changelog must find it.
    fn mirror_rules_for(&mut self, inputs: &[Input]) -> Result<(), Error> {
        let changed = std::mem::take(&mut self.group_offset_moved);
        if changed || inputs.iter().any(|input| matches!(input, Input::Activate(_))) {
            let entries = self.versions.export()?;
            if let Some(changelog) = self.changelogs.first_mut() {
                changelog.mirror_rules(entries);
            }
        }
        Ok(())
    }

    /// When one task's changelog partition is behind, every one is; when
    /// one was overtaken by a newer process, every one is.
    fn hold_back_changelogs(&mut self) {
        if self.changelogs.iter().any(|c| c.overtaken()) {
            self.changelogs.iter_mut().for_each(|c| c.overtake());
        }
        if self.changelogs.iter().any(|c| c.is_behind()) {
            self.changelogs.iter_mut().for_each(|c| c.hold_back());
        }
    }

    /// Once per hour of the engine's clock, folds old minute rollups into
    /// hours and drops hours past retention (`rollups.rs`).
    fn compact_rollups(&mut self) -> Result<(), Error> {
        let Some(now) = self.clock() else { return Ok(()) };
        let hour = now.div_euclid(crate::rollups::HOUR_MS);
        if self.compacted_hour == Some(hour) {
            return Ok(());
        }
        self.compacted_hour = Some(hour);
        let retention = &self.config.retention;
        let before = |ms: u64| now.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
        let folded =
            self.store.compact_rollups(before(retention.rollups_minutes_ms), before(retention.rollups_hours_ms))?;
        if folded > 0 {
            tracing::info!(minute_rows = folded, "rollups compacted");
        }
        Ok(())
    }

    /// Writes what journal entry `seq` made (records, dead letters,
    /// offsets) to sled, atomically; true if there is something to publish.
    fn write_outputs(&mut self, batch: Pending, records: &mut Vec<Record>, seq: u64) -> Result<bool, Error> {
        let mut rollups = std::mem::take(&mut self.rollups_before_activation);
        for task in &mut self.tasks {
            let tally = task.live.take_tally();
            if let Some(state) = task.live.state() {
                rollups.extend(crate::rollups::rows(self.program, state, tally));
            }
        }
        let mut write = BatchWrite {
            rollups,
            applied: Some(seq),
            outbox: batch.outbox,
            dead_letters: batch.dead_letters,
            offsets: batch.offsets,
            ..BatchWrite::default()
        };
        // Which state made them: a state restored elsewhere refills its
        // record log with the records of its name (refill.rs).
        let state = self.config.kafka.as_ref().map(crate::refill::state_name);
        for record in records.drain(..) {
            let json = serde_json::to_string(&record)
                .map_err(|e| Error::damaged(Domain::Store, "cannot encode a record").caused_by(e))?;
            self.metrics.records.get_or_create(&KindLabels { kind: record.kind.name() }).inc();
            *self.totals.records.entry(record.kind.name()).or_default() += 1;
            if let Some(state) = &state {
                let mut headers = vec![
                    ("mon_id".to_string(), record.id.as_bytes().to_vec()),
                    (crate::refill::STATE_HEADER.to_string(), state.as_bytes().to_vec()),
                ];
                // When a timer made it, its due instant: the publisher
                // measures the delay from deadline to publication.
                if matches!(record.kind, Kind::Missing | Kind::AtRisk) {
                    headers.push(("mon_due".into(), record.at.to_string().into_bytes()));
                }
                write.outbox.push(OutboxItem {
                    target: Target::Records,
                    key: record_key(&record),
                    payload: json.clone().into_bytes(),
                    headers,
                });
            }
            write.records.push(json);
        }
        // Why in this write: a notification is written with the batch that
        // made it, or not at all, so a crash can neither lose it (it is
        // made again by the replay) nor write it twice (see `replay`).
        let queued_at = wall_now();
        write.notifications = self
            .tasks
            .iter_mut()
            .flat_map(|task| task.live.take_notifications())
            .map(|n| NotificationEntry::new(n, queued_at))
            .collect();
        let accepted: Vec<Event> = self.tasks.iter_mut().flat_map(|task| task.live.take_accepted()).collect();
        self.store_events(seq, &accepted, &write.dead_letters, queued_at)?;
        let notified = !write.notifications.is_empty();
        if notified || !write.records.is_empty() {
            self.alerts_dirty = true;
        }
        let has_output = !write.outbox.is_empty();
        self.store.commit(write, &mut self.stored_offsets)?;
        self.outbox_flushed.store(self.store.next_outbox_seq(), Ordering::Release);
        self.notifications_flushed.store(self.store.next_notification_seq(), Ordering::Release);
        if notified {
            self.delivery_wake.notify_one();
        }
        Ok(has_output)
    }

    /// Hands journal entry `seq`'s accepted events and rejected messages to
    /// the event store, which appends them unless it holds them already
    /// (`events/`). Why no `wants` check here: it would wait for the
    /// appends before it, and an entry already held is skipped by the
    /// append itself (only a replay offers one).
    fn store_events(&self, seq: u64, accepted: &[Event], rejected: &[DeadLetter], received: i64) -> Result<(), Error> {
        let events = self.store.event_store();
        if accepted.is_empty() && rejected.is_empty() {
            return Ok(());
        }
        let stored: Vec<crate::events::StoredEvent> = accepted
            .iter()
            .map(|event| crate::events::StoredEvent::accepted(self.program, event, received))
            .chain(rejected.iter().map(crate::events::StoredEvent::rejected))
            .collect();
        events.append_later(seq, stored)
    }

    /// Replays the journal after the snapshots (each task from the batch
    /// its own covers). Entries whose outputs never reached sled
    /// (journaled just before a crash) have them written now; the others'
    /// outputs are already there and are dropped. Returns the number of
    /// inputs replayed.
    pub fn replay(&mut self, entries: Vec<Entry>, applied: Option<u64>) -> Result<usize, Error> {
        let mut records = Vec::new();
        let mut replayed = 0;
        // The event store may lag sled (its appends are not fsynced): an
        // entry whose outputs are written may still owe its events. Read
        // once: the appends this replay hands over are of entries in order,
        // each below the next one asked about, so they cannot change the
        // answer (and asking each time would wait for each of them).
        let events_stored = self.store.event_store().last_journal()?;
        let keeps_events = self.store.event_store().is_on();
        for entry in entries {
            let redo = applied.is_none_or(|a| entry.seq > a);
            let owes_events = !redo && keeps_events && events_stored.is_none_or(|done| entry.seq > done);
            let mut batch = Pending::default();
            let mut rejected = Vec::new();
            let mut task = 0;
            for input in entry.inputs {
                if let Input::Task(partition) = input {
                    task = usize::from(partition);
                    if task >= self.tasks.len() {
                        return Err(Error::damaged(
                            Domain::Journal,
                            format!("journal entry {} names partition {partition}, of {}", entry.seq, self.tasks.len()),
                        ));
                    }
                    continue;
                }
                // A task whose snapshot covers this batch already holds it
                // (after a crash in the middle of the tasks' snapshots).
                if entry.seq < self.tasks[task].covered {
                    continue;
                }
                let fed = self.feed(task, &input, &mut records);
                replayed += 1;
                if let Fed::Rejected { reason } = fed {
                    let bytes = match &input {
                        Input::Line(line) => line.as_bytes().to_vec(),
                        _ => Vec::new(),
                    };
                    if redo {
                        self.dead_letter(&mut batch, reason, "journal".into(), &bytes, Vec::new());
                    } else if owes_events {
                        let received = wall_now();
                        rejected.push(DeadLetter { reason, origin: "journal".into(), received, bytes });
                    }
                }
            }
            if redo {
                tracing::info!(entry = entry.seq, records = records.len(), "writing the outputs of a journaled batch");
                batch.offsets = entry.offsets;
                self.write_outputs(batch, &mut records, entry.seq)?;
            } else {
                // Their notifications and rollups were written with their
                // batch too.
                records.clear();
                self.rollups_before_activation.clear();
                let mut accepted = Vec::new();
                for task in &mut self.tasks {
                    task.live.take_notifications();
                    task.live.take_tally();
                    accepted.extend(task.live.take_accepted());
                }
                if owes_events {
                    self.store_events(entry.seq, &accepted, &rejected, wall_now())?;
                }
            }
        }
        self.journaled_since_snapshot = replayed as u64;
        // Before readiness: a ready service shows the alerts and the
        // workflows it recovered.
        self.refresh_alerts();
        self.refresh_board(true);
        Ok(replayed)
    }

    /// Publishes the alert book for the API.
    fn refresh_alerts(&mut self) {
        self.alerts_dirty = false;
        let books: Vec<_> = self.tasks.iter().filter_map(|task| task.live.book()).collect();
        if books.is_empty() {
            return;
        }
        let mut alerts: Vec<Alert> = books.iter().flat_map(|book| book.alerts().cloned()).collect();
        alerts.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then_with(|| b.id.cmp(&a.id)));
        let event_clock = match self.config.clock {
            mon_runtime::live::ClockMode::Event => Some(self.clock().unwrap_or(0)),
            mon_runtime::live::ClockMode::Wall => None,
        };
        self.board.alerts(&alerts, event_clock);
        if let Ok(mut slot) = self.alerts_view.write() {
            *slot = AlertsView { alerts, enabled: true, event_clock };
        }
    }

    /// Snapshots every task, each covering the batches before the next one.
    pub(crate) fn take_snapshot(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let covered = self.journal.next_seq();
        // Before the snapshot: a start must know which program it was made under.
        if let Some(active) = self.active {
            self.versions.snapshot_made(covered, active)?;
        }
        // The journal is about to forget the entries whose events the
        // open segment holds without an fsync.
        self.store.event_store().sync()?;
        let mut size = 0;
        let mut snapshots = Vec::with_capacity(self.tasks.len());
        for task in &mut self.tasks {
            let bytes = task
                .live
                .snapshot_bytes()
                .map_err(|e| Error::damaged(Domain::Journal, format!("cannot encode a snapshot: {e}")))?;
            size += bytes.len();
            crate::journal::write_snapshot(&task.dir, covered, &bytes)?;
            task.covered = covered;
            snapshots.push(bytes);
        }
        // Emptied once every task's snapshot covers it.
        self.journal.truncate()?;
        if !self.changelogs.is_empty() {
            // Marks first: each one taken now was acknowledged before the
            // pending notifications are read, so none of them is pending.
            let mut settled = self.changelogs[0].marks.take_acknowledged();
            // With the program the snapshot was made under (`snapshot_made`).
            self.changelogs[0].mirror_rules(self.versions.export()?);
            let undelivered = self.store.undelivered()?;
            // Format 1 (a rolling upgrade from a release before it) carries none.
            let carries_rollups = self.config.kafka.as_ref().is_none_or(|k| k.snapshot_format >= 2);
            let rollups = if carries_rollups { Some(self.store.rollup_rows()?) } else { None };
            for (task, engine) in snapshots.iter().enumerate() {
                // What is the process's goes with task 0's (changelog.rs).
                let (outbox, notifications, rollups, settled) = match task {
                    0 => (
                        &undelivered.outbox[..],
                        &undelivered.notifications[..],
                        rollups.as_deref(),
                        std::mem::take(&mut settled),
                    ),
                    _ => (&[][..], &[][..], rollups.as_ref().map(|_| &[][..]), Vec::new()),
                };
                let offsets = if self.per_partition() {
                    self.offsets_of(task, &self.stored_offsets)
                } else {
                    self.stored_offsets.clone()
                };
                let payload = crate::changelog::encode_snapshot(&offsets, outbox, notifications, rollups, engine);
                self.changelogs[task].snapshot(covered, &payload, settled);
            }
            self.hold_back_changelogs();
        }
        self.store.trim(self.config.engine.keep_records)?;
        tracing::info!(
            bytes = size,
            tasks = self.tasks.len(),
            inputs = self.journaled_since_snapshot,
            ms = started.elapsed().as_millis() as u64,
            "snapshot taken"
        );
        self.journaled_since_snapshot = 0;
        Ok(())
    }

    fn refresh_status(&mut self) {
        let states = self.states();
        if states.is_empty() {
            return;
        }
        let now = self.clock().unwrap_or(0);
        let mut workflows = Vec::with_capacity(self.program.workflows.len());
        for workflow in &self.program.workflows {
            let metrics = aggregates::metrics_over(&states, workflow, &Slice::default(), now);
            let status = aggregates::status_over(&states, workflow, &Slice::default(), now);
            let held: usize = states.iter().map(|state| state.workflows[workflow.id as usize].len()).sum();
            self.metrics.instances.get_or_create(&WorkflowLabels { workflow: workflow.name.clone() }).set(held as i64);
            workflows.push(WorkflowView { name: workflow.name.clone(), status: status.name(), metrics });
        }
        let timers: usize = self.tasks.iter().filter_map(|task| task.live.engine()).map(|e| e.timers_queued()).sum();
        self.metrics.timers_pending.set(timers as i64);
        let view = StatusView {
            clock: Some(mon_stdlib::time::format_rfc3339(now)),
            workflows,
            events_accepted: self.totals.events_accepted,
            events_ignored: self.totals.events_ignored,
            events_rejected: self.totals.events_rejected,
            records: self.totals.records.clone(),
            split_keys: self.totals.split_keys.clone(),
            partitions: self.per_partition().then(|| {
                let view = |task: &Task| PartitionView {
                    partition: task.partition.unwrap_or_default(),
                    clock: task.live.clock().map(mon_stdlib::time::format_rfc3339),
                    items: task.live.engine().map_or(0, |engine| engine.held() as u64),
                };
                self.tasks.iter().map(view).collect()
            }),
        };
        if let Ok(mut slot) = self.status.write() {
            *slot = view;
        }
    }

    /// Stops consuming, then leaves a snapshot so the next start replays nothing.
    fn shutdown(mut self) -> Result<(), Error> {
        if let Some(consumer) = self.consumer.take() {
            consumer.unsubscribe();
        }
        // Answer any request that arrived too late to be processed.
        while let Ok(request) = self.ingest.try_recv() {
            drop(request);
        }
        if self.journaled_since_snapshot > 0 {
            self.take_snapshot()?;
        }
        // The last word for `mon demo`'s summary, and for a reader of
        // `/api/v1/status` while HTTP drains.
        self.refresh_status();
        self.refresh_board(true);
        self.store.flush()?;
        tracing::info!("state flushed; processing stopped");
        Ok(())
    }
}

/// The `type` of a rejected line, for the metric label: a declared type or
/// "" (any other string would let bad input grow the label set without end).
fn rejected_type(program: &Program, line: &str) -> String {
    #[derive(serde::Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        type_name: Option<String>,
    }
    serde_json::from_str::<TypeOnly>(line)
        .ok()
        .and_then(|t| t.type_name)
        .filter(|name| program.events.iter().any(|e| &e.name == name))
        .unwrap_or_default()
}
