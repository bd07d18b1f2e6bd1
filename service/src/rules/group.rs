//! A scale-out group's rule changes, through the topic `<group>.rules`
//! (docs/service.md, "Scale-out"): a version stored, a version run, a
//! workflow switched off or on reaches every task of the group, in the
//! same order, whichever process's API was asked.
//!
//! - A task's API publishes the change ([`GroupRules::publish`]) and
//!   waits for its own task to apply it; the process's front then waits
//!   for every other task (`scale_out/group_rules.rs`). So does a task
//!   whose process starts with rules it never ran (a deployment,
//!   [`deploy`]): whichever change comes last in the topic is what the
//!   group runs.
//! - Every task follows the topic ([`follow`]) from the offset its state
//!   holds and hands each change to its processing thread as a
//!   [`RulesRequest`] carrying that offset. The processing thread journals
//!   the change with the offset among its input offsets, so the change
//!   takes effect at a recorded place in the partition's journal: a
//!   replay makes it there again, and a task restored from its changelog
//!   reads the topic on from there, never applying a change twice.
//! - A change carries its bundle, not a version number: each task stores
//!   the bundle (one it has already keeps its number) and runs that, so
//!   tasks whose version lists differ (one started from another rules
//!   directory during a rolling restart) still run the same rules.
//!
//! The topic keeps every change (one partition, nothing deleted): a task
//! whose state is new (a partition added, a group's state deleted) reads
//! it from the beginning and ends where the group is. Whoever may write
//! to it may change what the group runs: give only mon's processes write
//! access to it (Kafka ACLs).
//!
//! What it must not do: change what runs other than through the
//! processing thread, or stop at a message: one it cannot read still
//! moves the offset, with an outcome that says why.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Mutex;
use std::time::Duration;

use mon_runtime::live::Migration;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::versions::{Draft, Origin, VersionInfo, Versions};
use super::Bundle;
use crate::audit::{Audit, AuditEntry};
use crate::config::KafkaConfig;
use crate::error::{Domain, Error, Retry};
use crate::kafka::{client_config, client_error, Producer};
use crate::processor::{Request, RulesChange, RulesDone, RulesRequest};

/// The topic of a group's rule changes: `<group>.rules`.
pub fn topic(kafka: &KafkaConfig) -> String {
    format!("{}.rules", kafka.group)
}

/// Its one partition: one order of changes for every task.
pub const PARTITION: i32 = 0;

/// How many outcomes a task remembers for the API (`GET
/// /api/v1/rules/group-changes/{offset}`): rule changes are rare, and a
/// front asks within seconds of publishing.
const OUTCOMES_KEPT: usize = 256;

/// The message format this release writes and reads; a task refuses (and
/// moves past) a change of a later one, written by a newer release during
/// a rolling upgrade.
pub const FORMAT: u32 = 1;

/// One change, as published.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupChange {
    #[serde(default = "first_format")]
    pub format: u32,
    /// Who asked: an API token's name, an OIDC subject, `anonymous`, or
    /// `mon run` for a deployment.
    pub by: String,
    /// When it was asked for (RFC 3339, wall clock): for people reading
    /// the topic; tasks apply changes in the topic's order.
    pub requested_at: String,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Store a bundle as a version; it runs only once activated.
    Store { files: Bundle, message: String },
    /// Store a bundle if need be, and run it. `hash` is the program's as
    /// the publishing task compiled it; `rollback` names the audit action.
    Activate { files: Bundle, hash: String, message: String, rollback: bool },
    /// Switch a workflow off or on.
    SetEnabled { workflow: String, enabled: bool, reason: String },
}

fn first_format() -> u32 {
    1
}

impl GroupChange {
    pub fn new(by: &str, change: Change) -> GroupChange {
        let requested_at = mon_stdlib::time::format_rfc3339(crate::clock::wall_now());
        GroupChange { format: FORMAT, by: by.to_string(), requested_at, change }
    }
}

/// What one task made of one change.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Stored {
        version: VersionInfo,
        /// False when the task had this bundle already.
        created: bool,
    },
    Activated {
        version: u64,
        previous: Option<u64>,
        /// When it took effect, on the task's engine clock (RFC 3339).
        at: String,
        #[schema(value_type = Object)]
        migration: Migration,
        audit: Option<AuditEntry>,
    },
    /// The task ran this bundle already (as `version`): nothing changed.
    AlreadyRunning { version: u64 },
    Switched {
        workflow: String,
        enabled: bool,
        /// False when the task's rules have no workflow of that name.
        known: bool,
        audit: Option<AuditEntry>,
    },
    /// Not applied, and why (rules that do not compile with this
    /// process's release, a message this release cannot read).
    Refused { reason: String },
}

/// A task's side of the topic: publishing for its API, and how far its
/// follower has applied, with the outcomes, for the API to answer with.
pub struct GroupRules {
    pub topic: String,
    producer: Producer,
    outcomes: Mutex<BTreeMap<i64, Outcome>>,
    /// The next offset the follower will apply: every change below it is
    /// applied (or was, before this task started).
    applied: tokio::sync::watch::Sender<i64>,
}

/// Whether a change at an offset is applied yet, and what it did when
/// this task applied it since it started.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Applied {
    pub offset: i64,
    pub applied: bool,
    /// None when not applied yet, or applied before this task started.
    pub outcome: Option<Outcome>,
}

impl GroupRules {
    /// `from`: the offset the task's state holds (none: a new state).
    pub fn new(kafka: &KafkaConfig, producer: Producer, from: Option<i64>) -> GroupRules {
        GroupRules {
            topic: topic(kafka),
            producer,
            outcomes: Mutex::new(BTreeMap::new()),
            applied: tokio::sync::watch::channel(from.unwrap_or(0)).0,
        }
    }

    /// Where the follower starts, once the task's recovery has replayed
    /// its journal (which may hold changes sled did not yet).
    pub fn resume_from(&self, next: Option<i64>) {
        self.applied.send_if_modified(|applied| {
            let moved = next.is_some_and(|next| next > *applied);
            *applied = next.unwrap_or(*applied).max(*applied);
            moved
        });
    }

    /// Publishes `change`; its offset once the broker holds it.
    pub async fn publish(&self, change: &GroupChange) -> Result<i64, Error> {
        let payload = serde_json::to_vec(change)
            .map_err(|e| Error::new(Domain::Kafka, Retry::Never, "cannot encode a rule change").caused_by(e))?;
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).partition(PARTITION).payload(&payload);
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(delivery) => Ok(delivery.offset),
            Err((e, _)) => Err(Error::new(
                Domain::Kafka,
                Retry::Later,
                format!("cannot publish the rule change to {} ({} bytes)", self.topic, payload.len()),
            )
            .caused_by(e)),
        }
    }

    /// The change at `offset` as this task has it.
    pub fn applied(&self, offset: i64) -> Applied {
        let applied = *self.applied.borrow() > offset;
        let outcome = self.outcomes.lock().ok().and_then(|outcomes| outcomes.get(&offset).cloned());
        Applied { offset, applied, outcome }
    }

    /// Waits up to `wait` for this task to apply the change at `offset`.
    pub async fn wait_for(&self, offset: i64, wait: Duration) -> Applied {
        let mut moved = self.applied.subscribe();
        let _ = tokio::time::timeout(wait, moved.wait_for(|next| *next > offset)).await;
        self.applied(offset)
    }

    fn record(&self, offset: i64, outcome: Outcome) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.insert(offset, outcome);
            while outcomes.len() > OUTCOMES_KEPT {
                outcomes.pop_first();
            }
        }
        self.applied.send_replace(offset + 1);
    }
}

/// A deployment on a scale-out task (its process started with rules the
/// task never ran; `lib.rs` decides): published like any change, so that
/// every task of the group runs it, in the topic's order with the changes
/// made through the API. The task is ready once it has applied it. Kafka
/// away: the task activates nothing and stays unready until the broker
/// answers.
pub async fn deploy(
    rules: std::sync::Arc<GroupRules>,
    change: Change,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    let change = GroupChange::new("mon run", change);
    let offset = loop {
        match rules.publish(&change).await {
            Ok(offset) => break offset,
            Err(e) => {
                tracing::error!(error = %e, "cannot publish the deployed rules to the group; again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let applied = loop {
        let applied = rules.wait_for(offset, Duration::from_secs(60)).await;
        if applied.applied {
            break applied;
        }
    };
    tracing::info!(offset, outcome = ?applied.outcome, "the deployed rules, through the group's topic");
    metrics.state_open.store(true, Ordering::Relaxed);
}

/// What a task's follower needs to apply a change.
pub struct Applier {
    pub ingest: SyncSender<Request>,
    pub versions: Versions,
    pub audit: Audit,
    pub functions: &'static dyn mon_compiler::Functions,
}

/// Follows the topic until `stop`, from the offset [`GroupRules::new`]
/// was given, applying each change in order.
pub fn follow(rules: &GroupRules, kafka: &KafkaConfig, applier: &Applier, stop: &AtomicBool) -> Result<(), Error> {
    let reader_group = format!("{}.rules-reader", kafka.group);
    let consumer: BaseConsumer = client_config(
        kafka,
        &[
            // librdkafka refuses `assign` without a group id; this group is
            // never joined and nothing is committed to it: the offset is
            // the task's state's.
            ("group.id", &reader_group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // An offset the topic no longer has (it was deleted and made
            // again, or an operator's topic deleted old changes) is an
            // error to report, not a place to start over from.
            ("auto.offset.reset", "error"),
            ("fetch.wait.max.ms", "100"),
        ],
    )
    .create()
    .map_err(|e| client_error("cannot create the rules topic's reader", e))?;
    let from = *rules.applied.borrow();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&rules.topic, PARTITION, Offset::Offset(from))
        .map_err(|e| client_error("cannot assign the rules topic", e))?;
    consumer.assign(&assignment).map_err(|e| client_error("cannot assign the rules topic", e))?;
    let mut said = None::<std::time::Instant>;
    while !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => {
                // Logged once a minute: a broker away is also the input's
                // problem, said there; a lost offset is this topic's own.
                if said.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    tracing::error!(error = %e, topic = %rules.topic, from, "cannot read the group's rule changes");
                    said = Some(std::time::Instant::now());
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Some(Ok(message)) => message,
        };
        let offset = message.offset();
        if offset < *rules.applied.borrow() {
            continue;
        }
        let change = read_change(message.payload().unwrap_or_default());
        let Some(outcome) = apply(applier, offset, change) else {
            // The processing thread has gone: the task stops.
            return Ok(());
        };
        if let Outcome::Refused { reason } = &outcome {
            tracing::error!(topic = %rules.topic, offset, "rule change not applied: {reason}");
        } else {
            tracing::info!(topic = %rules.topic, offset, "group rule change applied");
        }
        rules.record(offset, outcome);
    }
    Ok(())
}

/// A message of the topic as a change this release applies, or why not.
fn read_change(payload: &[u8]) -> Result<GroupChange, String> {
    let change = serde_json::from_slice::<GroupChange>(payload)
        .map_err(|e| format!("not a rule change this release of mon can read: {e}"))?;
    match change.format {
        FORMAT => Ok(change),
        other => Err(format!("a rule change in format {other}; this release of mon reads format {FORMAT}")),
    }
}

/// Applies the change at `offset` through the processing thread; none if
/// that thread has gone.
fn apply(applier: &Applier, offset: i64, change: Result<GroupChange, String>) -> Option<Outcome> {
    let GroupChange { by, change, .. } = match change {
        Ok(change) => change,
        Err(reason) => return skip(applier, offset, "mon run", reason),
    };
    match change {
        Change::Store { files, message } => {
            let (version, created) = match store(applier, files, &by, &message) {
                Ok(stored) => stored,
                Err(reason) => return skip(applier, offset, &by, reason),
            };
            // Through the processing thread all the same: the offset is
            // journaled, and the store mirrored to the changelog with it.
            move_past(applier, offset, &by)?;
            if created {
                let details = serde_json::json!({ "version": version, "message": message, "group_offset": offset });
                audited(applier, &by, "rules.version_stored", &version.version.to_string(), details);
            }
            Some(Outcome::Stored { version, created })
        }
        Change::Activate { files, hash, message, rollback } => {
            let (version, _) = match store(applier, files, &by, &message) {
                Ok(stored) => stored,
                Err(reason) => return skip(applier, offset, &by, reason),
            };
            if version.hash != hash {
                tracing::warn!(
                    version = version.version,
                    "the rules compile to another program here than where the change was made (another mon release?)"
                );
            }
            let version = version.version;
            match send(applier, offset, RulesChange::Activate { version }, &by)? {
                Ok(RulesDone::Activated { migration, previous, at }) => {
                    let at = mon_stdlib::time::format_rfc3339(at);
                    let action = if rollback { "rules.rolled_back" } else { "rules.activated" };
                    let details = serde_json::json!({
                        "version": version, "previous": previous, "message": message, "at": at,
                        "migration": migration, "group_offset": offset,
                    });
                    let audit = audited(applier, &by, action, &version.to_string(), details);
                    Some(Outcome::Activated { version, previous, at, migration, audit })
                }
                Ok(RulesDone::AlreadyRunning { version }) => Some(Outcome::AlreadyRunning { version }),
                Ok(_) => Some(Outcome::Refused { reason: "the processor answered another change".into() }),
                Err(reason) => Some(Outcome::Refused { reason }),
            }
        }
        Change::SetEnabled { workflow, enabled, reason } => {
            match send(applier, offset, RulesChange::SetEnabled { workflow: workflow.clone(), enabled }, &by)? {
                Ok(RulesDone::SetEnabled { known }) => {
                    let action = if enabled { "workflow.enabled" } else { "workflow.disabled" };
                    let details = serde_json::json!({ "reason": reason, "group_offset": offset });
                    let audit = known.then(|| audited(applier, &by, action, &workflow, details)).flatten();
                    Some(Outcome::Switched { workflow, enabled, known, audit })
                }
                Ok(_) => Some(Outcome::Refused { reason: "the processor answered another change".into() }),
                Err(reason) => Some(Outcome::Refused { reason }),
            }
        }
    }
}

/// Moves the offset past a change that is not applied, and says why.
fn skip(applier: &Applier, offset: i64, by: &str, reason: String) -> Option<Outcome> {
    move_past(applier, offset, by)?;
    Some(Outcome::Refused { reason })
}

/// Journals the offset past `offset` with nothing else; none if the
/// processing thread has gone. Its one refusal, "applied already", says
/// the offset is past already.
fn move_past(applier: &Applier, offset: i64, by: &str) -> Option<()> {
    send(applier, offset, RulesChange::Skip, by).map(|_| ())
}

/// Stores `files` as a version (or finds the one that has them).
fn store(applier: &Applier, files: Bundle, by: &str, message: &str) -> Result<(VersionInfo, bool), String> {
    files.check()?;
    let compiled = files.compile(applier.functions);
    let Some(program) = compiled.compilation.program else {
        return Err("the rules do not compile with this process's release of mon".into());
    };
    let draft = Draft {
        hash: program.hash(),
        workflows: program.workflows.iter().map(|w| w.name.clone()).collect(),
        author: by.to_string(),
        message: message.to_string(),
        origin: Origin::Api,
        created_at: mon_stdlib::time::format_rfc3339(crate::clock::wall_now()),
    };
    applier.versions.add(files, draft).map_err(|e| format!("cannot store the rule version: {e}"))
}

/// Hands a change to the processing thread with its offset and waits
/// until its batch is durable; none if that thread has gone.
fn send(applier: &Applier, offset: i64, change: RulesChange, by: &str) -> Option<Result<RulesDone, String>> {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let request = RulesRequest { change, by: by.to_string(), group_offset: Some(offset), reply };
    applier.ingest.send(Request::Rules(request)).ok()?;
    outcome.blocking_recv().ok()
}

fn audited(applier: &Applier, by: &str, action: &str, target: &str, details: serde_json::Value) -> Option<AuditEntry> {
    match applier.audit.append(by, action, target, details) {
        Ok(entry) => Some(entry),
        Err(e) => {
            tracing::error!(error = %e, action, "cannot audit a group rule change");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_back_as_written_and_a_later_format_is_refused_with_a_reason() {
        let change =
            GroupChange::new("ann", Change::SetEnabled { workflow: "feed".into(), enabled: false, reason: "x".into() });
        let written = serde_json::to_vec(&change).unwrap();
        let read = read_change(&written).unwrap();
        assert!(matches!(read.change, Change::SetEnabled { ref workflow, enabled: false, .. } if workflow == "feed"));
        assert_eq!((read.by.as_str(), read.format), ("ann", FORMAT));

        let mut newer: serde_json::Value = serde_json::from_slice(&written).unwrap();
        newer["format"] = 2.into();
        let refused = read_change(newer.to_string().as_bytes()).unwrap_err();
        assert!(refused.contains("format 2"), "{refused}");
        let unknown = read_change(br#"{"by":"x","requested_at":"","change":"rename"}"#).unwrap_err();
        assert!(unknown.contains("unknown variant `rename`"), "{unknown}");
        assert!(read_change(b"not json").is_err());
    }
}
