//! The `Program`: what the compiler hands the engine.
//!
//! Everything the engine would otherwise work out per event is decided here:
//! event types have dense ids and fields have slots, each workflow is a state
//! machine whose stages know their outgoing steps and the timers they arm,
//! and every event type lists the (workflow, step) pairs it can move. The
//! program holds no source positions, so reformatting a rule file does not
//! change its hash; it is versioned and serialisable so that a rule version
//! is "source text + program hash".

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Declares words of the language as an enum, written once: each variant is
/// serialised as its word, `ALL` lists (word, variant) pairs in declaration
/// order for the checker's choices, and `name` and `Display` give the word
/// back. Matching on the enum is exhaustive, so a new word is a compile
/// error wherever it is not handled. Exported for the words the runtime
/// adds (alert states, notification events); the user needs `serde`.
#[macro_export]
macro_rules! vocabulary {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every word with its variant, in declaration order.
            pub const ALL: &'static [(&'static str, $name)] = &[$(($word, $name::$variant)),+];

            /// The word as rules and output write it.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Bumped whenever the shape of the IR changes incompatibly.
pub const IR_VERSION: u32 = 1;

pub type EventTypeId = u32;
pub type WorkflowId = u32;
pub type StepId = u32;
pub type Slot = u32;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub ir_version: u32,
    pub events: Vec<EventType>,
    pub workflows: Vec<Workflow>,
    pub channels: Vec<Channel>,
    pub calendars: Vec<Calendar>,
    pub maintenance: Vec<Maintenance>,
    /// Indexed by event type id: the steps an event of that type may take.
    pub candidates: Vec<Vec<Candidate>>,
}

impl Program {
    /// A stable content hash (hex SHA-256 of the canonical JSON form).
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a Program always serialises");
        let digest = Sha256::digest(&bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn event_id(&self, name: &str) -> Option<EventTypeId> {
        self.events.iter().position(|e| e.name == name).map(|i| i as EventTypeId)
    }

    pub fn workflow(&self, name: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventType {
    pub id: EventTypeId,
    pub name: String,
    /// In slot order.
    pub fields: Vec<Field>,
}

impl EventType {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub slot: Slot,
    pub ty: FieldType,
    pub optional: bool,
    /// Never persisted or displayed; may be hashed for equality.
    pub pii: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Duration,
    Enum(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub workflow: WorkflowId,
    pub step: StepId,
}

vocabulary! {
    /// How urgent an alert is; ordered, for `when severity >= LEVEL`.
    pub enum Severity {
        Info = "info",
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
}

vocabulary! {
    /// How an instance closed: by a step (`-> success`, `-> failure`), or
    /// `superseded` when a new rules version was activated and its stage
    /// or workflow no longer exists. Only the runtime closes an instance
    /// that way: rules write one of [`Outcome::WRITTEN`].
    pub enum Outcome {
        Success = "success",
        Failure = "failure",
        Superseded = "superseded",
    }
}

impl Outcome {
    /// The outcomes a step's `->` may name; `superseded` is the runtime's.
    pub const WRITTEN: &'static [(&'static str, Outcome)] =
        &[("success", Outcome::Success), ("failure", Outcome::Failure)];
}

vocabulary! {
    /// What `on out_of_order|duplicate|unexpected` does with such an event.
    pub enum Handling {
        Flag = "flag",
        Drop = "drop",
        Alert = "alert",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: WorkflowId,
    pub name: String,
    /// Empty for a scheduled workflow, whose occurrences are keyed by date.
    pub key: Vec<KeyField>,
    pub group_by: Vec<GroupField>,
    pub schedule: Option<Schedule>,
    /// Zone for `by` and `warn at` without their own zone.
    pub timezone: String,
    pub alerting: Alerting,
    pub grace_ms: u64,
    pub retain_ms: u64,
    pub aging_ms: Vec<u64>,
    pub status: StatusRules,
    pub on_out_of_order: Handling,
    pub on_duplicate: Handling,
    pub on_unexpected: Handling,
    pub depends_on: Vec<WorkflowId>,
    /// Stage `i` is the stage step `i` leads into.
    pub steps: Vec<Step>,
    pub stages: Vec<Stage>,
    /// Fields that later steps read by `step.field`, kept on the instance.
    pub kept: Vec<KeptField>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyField {
    pub name: String,
    pub ty: FieldType,
    /// For each event type the workflow uses, the slot holding this key.
    pub slots: Vec<(EventTypeId, Slot)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupField {
    pub name: String,
    /// The event types that carry the field, with its slot.
    pub slots: Vec<(EventTypeId, Slot)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Bit `n` set: the workflow runs on weekday `n` (0 = Monday).
    pub weekdays: u8,
    pub except: Vec<u32>,
    /// Seconds after local midnight at which an occurrence starts expecting.
    pub open_seconds: u32,
    /// The date field that names an event's occurrence, per event type;
    /// events without one belong to their local event-time date.
    pub cohort: Vec<(EventTypeId, Slot)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alerting {
    pub severity: Severity,
    pub runbook: Option<String>,
    pub notify: Vec<Notify>,
    pub renotify_ms: Option<u64>,
    /// `escalate after D to CHANNEL`: an alert still open and
    /// unacknowledged `after_ms` after it opened also goes to `channel`.
    /// Left out of the serialised form when empty, so programs without
    /// escalation keep the hash they had before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate: Vec<Escalation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub after_ms: u64,
    pub channel: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    pub channel: u32,
    pub min_severity: Option<Severity>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusRules {
    pub red: Vec<Expr>,
    pub amber: Vec<Expr>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: StepId,
    pub name: String,
    pub event: EventTypeId,
    /// The conjuncts of `where` that read only the event: they decide
    /// whether the event is relevant to the workflow at all.
    pub relevance: Option<Expr>,
    /// The conjuncts that read fields kept from earlier steps.
    pub guard: Option<Expr>,
    /// Stages this step leaves; empty for a start step.
    pub sources: Vec<StepId>,
    pub optional: bool,
    pub timing: Timing,
    /// `Some` when taking this step closes the instance.
    pub outcome: Option<Outcome>,
    pub alerting: Alerting,
    pub grace_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub within_ms: Option<u64>,
    pub by: Option<ClockDeadline>,
    pub warn: Option<Warn>,
    pub not_before: Option<NotBefore>,
}

impl Timing {
    pub fn has_deadline(&self) -> bool {
        self.within_ms.is_some() || self.by.is_some()
    }
}

/// A local clock time on the instance's date (plus `day_offset` days).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockDeadline {
    pub seconds: u32,
    pub zone: String,
    pub day_offset: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warn {
    /// This long after the timing starts (entering the source stage), as
    /// `within` counts: `within 5m warn 3m` turns amber after 3 minutes.
    After(u64),
    At(ClockDeadline),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotBefore {
    /// This long after entering the source stage.
    After(u64),
    At(ClockDeadline),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub id: StepId,
    pub name: String,
    /// Steps that leave this stage; the alternatives.
    pub outgoing: Vec<StepId>,
    /// Outgoing steps (and, for optional ones, the steps after them) with a
    /// timing rule: the timers entering this stage arms.
    pub timers: Vec<StepId>,
    /// `Some` when entering this stage closes the instance.
    pub closes: Option<Outcome>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptField {
    pub step: StepId,
    pub slot: Slot,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: u32,
    pub name: String,
    pub kind: ChannelKind,
    pub targets: Vec<ChannelTarget>,
}

vocabulary! {
    pub enum ChannelKind {
        Email = "email",
        Webhook = "webhook",
        Slack = "slack",
        Pagerduty = "pagerduty",
        Alertmanager = "alertmanager",
        Sms = "sms",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelTarget {
    Literal(String),
    /// The name of a secret the runtime resolves; its value never enters the program.
    Secret(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calendar {
    pub id: u32,
    pub name: String,
    /// Days since 1970-01-01, sorted.
    pub dates: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    pub name: String,
    pub window: MaintenanceWindow,
    /// Empty: all workflows.
    pub workflows: Vec<WorkflowId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceWindow {
    /// Weekday 0 = Monday; `None` means every day.
    Weekly { from_day: Option<u8>, from_seconds: u32, to_day: Option<u8>, to_seconds: u32, zone: String },
    /// Milliseconds since the Unix epoch, UTC.
    Fixed { from_ms: i64, to_ms: i64 },
}

// ---------------------------------------------------------------- outputs

// The engine's records and statuses are not part of the `Program`; their
// words live here so that `test` blocks (below) and the runtime share them.

vocabulary! {
    /// The kind of an output record (LANGUAGE.md §7).
    pub enum RecordKind {
        Missing = "missing",
        Late = "late",
        Early = "early",
        AtRisk = "at_risk",
        OutOfOrder = "out_of_order",
        Duplicate = "duplicate",
        Unexpected = "unexpected",
        Rejected = "rejected",
        /// An open item closed by the activation of a rules version in
        /// which its stage or its workflow no longer exists.
        Superseded = "superseded",
    }
}

impl RecordKind {
    /// The kinds a `test` block may expect: a `mon test` run never
    /// activates other rules, so it never makes a `superseded` record.
    pub const IN_TESTS: &'static [(&'static str, RecordKind)] = &[
        ("missing", RecordKind::Missing),
        ("late", RecordKind::Late),
        ("early", RecordKind::Early),
        ("at_risk", RecordKind::AtRisk),
        ("out_of_order", RecordKind::OutOfOrder),
        ("duplicate", RecordKind::Duplicate),
        ("unexpected", RecordKind::Unexpected),
        ("rejected", RecordKind::Rejected),
    ];
}

vocabulary! {
    /// A workflow's status colour, ordered from best to worst.
    pub enum Status {
        Green = "green",
        Amber = "amber",
        Red = "red",
    }
}

// ---------------------------------------------------------------- expressions

/// A typed expression. Field reads are slots; names are gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    Const(Value),
    /// A slot of the event being matched.
    Field(Slot),
    /// A field kept from an earlier step of the instance.
    Kept {
        step: StepId,
        slot: Slot,
    },
    /// A status metric, for `status` rules.
    Metric(StatusMetric),
    Call {
        function: String,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    List(Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
    Coalesce,
}

vocabulary! {
    /// A count of a workflow's items or events: what `expect count` and
    /// status rules read (LANGUAGE.md §3.7, §5).
    pub enum Metric {
        InFlight = "in_flight",
        Entered = "entered",
        Completed = "completed",
        Failed = "failed",
        Late = "late",
        Missing = "missing",
        AtRisk = "at_risk",
        Duplicate = "duplicate",
        OutOfOrder = "out_of_order",
        Unexpected = "unexpected",
    }
}

impl Metric {
    /// The metrics a status rule may name (LANGUAGE.md §3.7), in the order
    /// diagnostics list them.
    pub const STATUS: [Metric; 8] = [
        Metric::Missing,
        Metric::AtRisk,
        Metric::Late,
        Metric::InFlight,
        Metric::Failed,
        Metric::Duplicate,
        Metric::OutOfOrder,
        Metric::Unexpected,
    ];
}

/// A number a status rule reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMetric {
    /// In-flight items older than this many milliseconds in their stage.
    Aged(u64),
    /// Written as the metric's bare word (`"missing"`).
    #[serde(untagged)]
    Count(Metric),
}

/// A runtime value. Dates are days and timestamps milliseconds since the
/// Unix epoch (UTC); durations and times of day are milliseconds and seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Date(i32),
    Timestamp(i64),
    Duration(i64),
    TimeOfDay(u32),
    /// The index of the variant in its enum's declaration.
    Enum(u32),
}

// ---------------------------------------------------------------- tests

/// A checked `test` block, ready for `mon test`. Tests are not part of the
/// `Program` (changing a test does not change the rules' hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    pub name: String,
    /// Index of the source file and byte span, for failure messages.
    pub file: usize,
    pub span: (usize, usize),
    pub steps: Vec<TestStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestStep {
    pub kind: TestStepKind,
    pub span: (usize, usize),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStepKind {
    At(i64),
    AdvanceTo(i64),
    AdvanceBy(u64),
    Event { event_type: EventTypeId, fields: Vec<Value>, at: Option<i64>, id: Option<String> },
    Expect(Expectation),
}

/// A key given in a test: key field names with their values.
pub type KeyLiteral = Vec<(String, Value)>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// A record of this kind was made (with a severity, when `alert`).
    Record {
        alert: bool,
        kind: RecordKind,
        workflow: WorkflowId,
        step: Option<StepId>,
        delay_ms: Option<u64>,
        key: Option<KeyLiteral>,
    },
    /// No such record was made.
    NoRecord {
        alert: bool,
        kind: Option<RecordKind>,
        workflow: Option<WorkflowId>,
        step: Option<StepId>,
    },
    Status {
        workflow: WorkflowId,
        stage: Option<StepId>,
        color: Status,
    },
    Stage {
        workflow: WorkflowId,
        key: KeyLiteral,
        stage: StepId,
    },
    Count {
        metric: Metric,
        workflow: WorkflowId,
        stage: Option<StepId>,
        op: CompareOp,
        value: i64,
    },
}

vocabulary! {
    /// The comparison of an `expect count`.
    pub enum CompareOp {
        Eq = "==",
        Ne = "!=",
        Lt = "<",
        Le = "<=",
        Gt = ">",
        Ge = ">=",
    }
}

impl CompareOp {
    /// Whether `actual OP expected` holds.
    pub fn holds<T: Ord>(self, actual: T, expected: T) -> bool {
        match self {
            CompareOp::Eq => actual == expected,
            CompareOp::Ne => actual != expected,
            CompareOp::Lt => actual < expected,
            CompareOp::Le => actual <= expected,
            CompareOp::Gt => actual > expected,
            CompareOp::Ge => actual >= expected,
        }
    }
}
