//! What the engine keeps per item, laid out to stay small: a million
//! in-flight trades must fit in a few hundred megabytes.
//!
//! An instance keeps one time per step (not a list of visits), per-step
//! flags as bitsets, its group as an interned id, and its key inline when
//! short. Everything that only a trace needs (event ids, what happened to
//! events that moved nothing) is kept only for traced keys.

use compact_str::CompactString;
use mon_compiler::ir::{Outcome, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::times::Times;

/// `times[step]` when the step has not happened.
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    pub closed: Option<(Outcome, i64)>,
    /// Per step: when it happened, or [`NOT_TAKEN`].
    pub times: Times,
    /// Per step: a 32-bit fingerprint of the id of the event that took it
    /// (0: none), so that a redelivered event is recognized where it landed.
    pub ids: SmallVec<[u32; 6]>,
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
    #[serde(default = "no_partition", skip_serializing_if = "is_no_partition")]
    pub partition: u16,
    /// What few instances need: kept fields, a trace. One pointer for both.
    pub extra: Option<Box<Extra>>,
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
            closed: None,
            times: Times::new(steps),
            ids: SmallVec::from_elem(0, steps),
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
        self.times.get(step as usize).filter(|t| *t != NOT_TAKEN)
    }

    pub fn was_taken(&self, step: u32) -> bool {
        self.time(step).is_some() && !self.is_skipped(step)
    }

    pub fn is_skipped(&self, step: u32) -> bool {
        self.skipped & bit(step) != 0
    }

    pub fn is_open(&self) -> bool {
        self.closed.is_none()
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
    fn an_instance_stays_168_bytes() {
        assert_eq!(std::mem::size_of::<Instance>(), 168);
        assert_eq!(std::mem::size_of::<Option<Instance>>(), 168);
    }
}
