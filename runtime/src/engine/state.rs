//! What the engine keeps per item, laid out to stay small: a million
//! in-flight trades must fit in a few hundred megabytes.
//!
//! An instance keeps one time per step (not a list of visits), as a 32-bit
//! offset beside the step's event fingerprint (`steps.rs`), per-step flags
//! as bitsets, its group as an interned id, its key inline when short, and
//! its outcome in one byte apart from its closing time. Everything that
//! only a trace needs (event ids, what happened to events that moved
//! nothing) is kept only for traced keys. 152 bytes in all; snapshots
//! still hold the fields it had at 184 (`InstanceRepr`).

use compact_str::CompactString;
use mon_compiler::ir::{Outcome, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::steps::Steps;

/// A step's time when it has not happened (in [`Steps`]), and the closing
/// time of an open instance.
pub const NOT_TAKEN: i64 = i64::MIN;

/// [`Instance::partition`] when no input partition is known.
pub const NO_PARTITION: u16 = u16::MAX;

fn no_partition() -> u16 {
    NO_PARTITION
}

fn is_no_partition(partition: &u16) -> bool {
    *partition == NO_PARTITION
}

/// One item of one workflow: a trade, a file batch, a day's occurrence.
/// Serialized through [`InstanceRepr`], in the shape snapshots have
/// always had.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "InstanceRepr")]
pub struct Instance {
    pub key: CompactString,
    /// The instance's date: a scheduled occurrence's date, or the local
    /// date of the event that started it (for `by` deadlines).
    pub date: i32,
    /// The stage it is in; `None` for an occurrence whose start has not
    /// happened yet.
    pub stage: Option<u32>,
    /// When it entered that stage (for an unstarted occurrence: its opening).
    pub entered_at: i64,
    /// Bumped on every move, which cancels the timers of the stage it left.
    pub generation: u32,
    /// Interned group-by values (see `State::group`).
    pub group: u32,
    /// How it closed, if it did; when is `closed_at`. Apart, so that the
    /// one byte fits beside the partition ([`Instance::closed`]).
    outcome: Option<Outcome>,
    closed_at: i64,
    /// Per step: when it happened and a 32-bit fingerprint of the id of
    /// the event that took it, so that a redelivered event is recognized
    /// where it landed.
    steps: Steps,
    /// Bit per step: skipped by an out-of-order jump (and not filled in).
    pub skipped: u32,
    /// Bit per step: happened after its deadline.
    pub late: u32,
    /// Bit per step: a `missing` record was made and the step has not happened.
    pub missing: u32,
    /// Bit per step: an `at_risk` record was made and the step has not happened.
    pub at_risk: u32,
    /// The input partition of the event that started it ([`NO_PARTITION`]:
    /// none known: a scheduled occurrence, an event sent over HTTP, a
    /// state saved before partitions were kept). Producers key messages by
    /// item, so every later event of the item should come from the same
    /// partition; one that does not is a [`SplitKey`](super::SplitKey).
    /// Fits in the padding after the flags: the instance does not grow.
    pub partition: u16,
    /// What few instances need: kept fields, a trace. One pointer for both.
    pub extra: Option<Box<Extra>>,
}

/// An instance as snapshots hold it: the fields it had before its steps'
/// times and ids were packed together (`steps.rs`). Read owned
/// ([`InstanceRepr`]) and written borrowed ([`InstanceRef`], so a snapshot
/// copies nothing), from this one list of fields.
#[derive(Serialize, Deserialize)]
struct Shape<Key, Times, Ids, Rare> {
    key: Key,
    date: i32,
    stage: Option<u32>,
    entered_at: i64,
    generation: u32,
    group: u32,
    closed: Option<(Outcome, i64)>,
    times: Times,
    ids: Ids,
    skipped: u32,
    late: u32,
    missing: u32,
    at_risk: u32,
    #[serde(default = "no_partition", skip_serializing_if = "is_no_partition")]
    partition: u16,
    extra: Rare,
}

type InstanceRepr = Shape<CompactString, SmallVec<[i64; 6]>, SmallVec<[u32; 6]>, Option<Box<Extra>>>;
type InstanceRef<'a> = Shape<&'a CompactString, StepTimes<'a>, StepIds<'a>, &'a Option<Box<Extra>>>;

struct StepTimes<'a>(&'a Steps);
struct StepIds<'a>(&'a Steps);

impl Serialize for StepTimes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(time, _)| time))
    }
}

impl Serialize for StepIds<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(_, id)| id))
    }
}

impl Serialize for Instance {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        InstanceRef {
            key: &self.key,
            date: self.date,
            stage: self.stage,
            entered_at: self.entered_at,
            generation: self.generation,
            group: self.group,
            closed: self.closed(),
            times: StepTimes(&self.steps),
            ids: StepIds(&self.steps),
            skipped: self.skipped,
            late: self.late,
            missing: self.missing,
            at_risk: self.at_risk,
            partition: self.partition,
            extra: &self.extra,
        }
        .serialize(serializer)
    }
}

impl From<InstanceRepr> for Instance {
    fn from(repr: InstanceRepr) -> Instance {
        let steps = Steps::from_parts(&repr.times, &repr.ids);
        Instance {
            key: repr.key,
            date: repr.date,
            stage: repr.stage,
            entered_at: repr.entered_at,
            generation: repr.generation,
            group: repr.group,
            outcome: repr.closed.map(|(outcome, _)| outcome),
            closed_at: repr.closed.map_or(NOT_TAKEN, |(_, at)| at),
            steps,
            skipped: repr.skipped,
            late: repr.late,
            missing: repr.missing,
            at_risk: repr.at_risk,
            partition: repr.partition,
            extra: repr.extra,
        }
    }
}

/// The rarely needed parts of an instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// Fields later steps read: (step, slot, value).
    pub kept: Vec<(u32, u32, Value)>,
    /// Lifecycle entries, only when this key is traced.
    pub trace: Vec<TraceEntry>,
}

impl Instance {
    pub fn new(key: &str, date: i32, opened_at: i64, group: u32, steps: usize) -> Self {
        Instance {
            key: CompactString::new(key),
            date,
            stage: None,
            entered_at: opened_at,
            generation: 0,
            group,
            outcome: None,
            closed_at: NOT_TAKEN,
            steps: Steps::new(steps),
            skipped: 0,
            late: 0,
            missing: 0,
            at_risk: 0,
            partition: NO_PARTITION,
            extra: None,
        }
    }

    /// When `step` happened, if it did.
    pub fn time(&self, step: u32) -> Option<i64> {
        self.steps.time(step as usize).filter(|t| *t != NOT_TAKEN)
    }

    /// The fingerprint of the event that took `step` (0: none).
    pub fn id(&self, step: u32) -> Option<u32> {
        self.steps.id(step as usize)
    }

    /// Records that `step` happened at `time`, taken by the event of id
    /// fingerprint `id`.
    pub fn take(&mut self, step: u32, time: i64, id: u32) {
        self.steps.set(step as usize, time, id);
    }

    pub fn set_steps(&mut self, steps: Steps) {
        self.steps = steps;
    }

    /// How and when it closed, if it did.
    pub fn closed(&self) -> Option<(Outcome, i64)> {
        self.outcome.map(|outcome| (outcome, self.closed_at))
    }

    pub fn close(&mut self, outcome: Outcome, at: i64) {
        self.outcome = Some(outcome);
        self.closed_at = at;
    }

    pub fn was_taken(&self, step: u32) -> bool {
        self.time(step).is_some() && !self.is_skipped(step)
    }

    pub fn is_skipped(&self, step: u32) -> bool {
        self.skipped & bit(step) != 0
    }

    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }

    pub fn kept_fields(&self) -> &[(u32, u32, Value)] {
        self.extra.as_deref().map_or(&[], |e| e.kept.as_slice())
    }

    /// The lifecycle entries, when this key is traced.
    pub fn trace(&self) -> &[TraceEntry] {
        self.extra.as_deref().map_or(&[], |e| e.trace.as_slice())
    }

    pub fn has_missing(&self) -> bool {
        self.missing != 0
    }

    pub fn has_at_risk(&self) -> bool {
        self.at_risk != 0
    }

    pub fn was_late(&self) -> bool {
        self.late != 0
    }
}

/// The flag bit of a step. The compiler allows at most
/// `mon_compiler::diagnostics::MAX_STEPS` (32) steps per workflow.
pub fn bit(step: u32) -> u32 {
    1u32 << (step & 31)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEntry {
    pub at: i64,
    pub what: TraceWhat,
    pub event_id: Option<String>,
    /// The event's fields as JSON, `pii` fields left out.
    pub excerpt: Option<String>,
}

/// What happened, in words the trace can print.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TraceWhat {
    Took {
        step: u32,
        skipped: Option<Vec<u32>>,
        deadline: Option<i64>,
    },
    FilledIn {
        step: u32,
    },
    Duplicate {
        step: u32,
    },
    OutOfOrder {
        step: u32,
        dropped: bool,
    },
    Unexpected,
    /// The event's own conditions did not hold: not for this workflow.
    Irrelevant,
    /// An event id seen before: at-least-once delivery, ignored.
    Redelivery,
    Missing {
        step: u32,
        deadline: i64,
    },
    AtRisk {
        step: u32,
        deadline: i64,
    },
    Late {
        step: u32,
        deadline: i64,
        delay_ms: i64,
    },
    Early {
        step: u32,
        earliest: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million in-flight items are a million instances: the partition
    /// an instance belongs to must fit in the padding after its flags.
    #[test]
    fn a_snapshot_holds_an_instance_as_it_always_has() {
        let mut instance = Instance::new("T1", 20_000, 1_000, 3, 3);
        instance.stage = Some(1);
        instance.take(0, 1_000, 7);
        instance.take(2, 1_000 + 40 * 86_400_000, 9);
        instance.close(Outcome::Success, 5_000);
        let json = serde_json::to_string(&instance).unwrap();
        assert_eq!(
            json,
            r#"{"key":"T1","date":20000,"stage":1,"entered_at":1000,"generation":0,"group":3,"closed":["success",5000],"times":[1000,-9223372036854775808,3456001000],"ids":[7,0,9],"skipped":0,"late":0,"missing":0,"at_risk":0,"extra":null}"#
        );
        let back: Instance = serde_json::from_str(&json).unwrap();
        assert_eq!(back, instance);
        assert_eq!(back.closed(), Some((Outcome::Success, 5_000)));
        assert_eq!((back.time(2), back.id(2), back.time(1)), (Some(3_456_001_000), Some(9), None));
    }

    #[test]
    fn an_instance_stays_152_bytes() {
        assert_eq!(std::mem::size_of::<Instance>(), 152);
        assert_eq!(std::mem::size_of::<Option<Instance>>(), 152);
    }
}
