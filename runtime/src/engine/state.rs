//! What the engine keeps per item.

use mon_compiler::ir::{Outcome, Value};
use serde::{Deserialize, Serialize};

/// One item of one workflow: a trade, a file batch, a day's occurrence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The instance's date: a scheduled occurrence's date, or the local
    /// date of the event that started it (for `by` deadlines).
    pub date: i32,
    /// The stage it is in; `None` for an occurrence whose start has not
    /// happened yet.
    pub stage: Option<u32>,
    /// When it entered that stage (for an unstarted occurrence: its opening).
    pub entered_at: i64,
    pub opened_at: i64,
    /// Bumped on every move, which cancels the timers of the stage it left.
    pub generation: u32,
    pub visits: Vec<Visit>,
    /// Fields later steps read: (step, slot, value).
    pub kept: Vec<(u32, u32, Value)>,
    /// Group-by values, from the first event that carried them.
    pub group: Vec<String>,
    pub closed: Option<(Outcome, i64)>,
    /// Steps with a `missing` record that have not happened since.
    pub missing: Vec<u32>,
    /// Steps with an `at_risk` record that have not happened since.
    pub at_risk: Vec<u32>,
    /// Some step happened after its deadline.
    pub late: bool,
    /// Lifecycle entries, when this key is traced.
    pub trace: Vec<TraceEntry>,
}

impl Instance {
    pub fn new(date: i32, opened_at: i64, group: Vec<String>) -> Self {
        Instance {
            date,
            stage: None,
            entered_at: opened_at,
            opened_at,
            generation: 0,
            visits: Vec::new(),
            kept: Vec::new(),
            group,
            closed: None,
            missing: Vec::new(),
            at_risk: Vec::new(),
            late: false,
            trace: Vec::new(),
        }
    }

    pub fn visit(&self, step: u32) -> Option<&Visit> {
        self.visits.iter().find(|v| v.step == step)
    }

    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }
}

/// A step of the instance: taken (with its time), or skipped by an
/// out-of-order event (and perhaps filled in later).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub step: u32,
    pub time: Option<i64>,
    pub deadline: Option<i64>,
    pub late_ms: Option<i64>,
    pub skipped: bool,
    pub event_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEntry {
    pub at: i64,
    pub what: TraceWhat,
    pub event_id: Option<String>,
}

/// What happened, in words the trace can print.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TraceWhat {
    Took {
        step: u32,
        skipped: Option<Vec<u32>>,
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
    Missing {
        step: u32,
        deadline: i64,
    },
    AtRisk {
        step: u32,
        deadline: i64,
    },
}
