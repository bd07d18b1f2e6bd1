//! The untyped syntax tree of one `.mon` file.
//!
//! Every node carries the byte span of the source it came from, so that the
//! compiler, the formatter and the language server can point back at it.
//! Values the lexer already understood (durations, times of day, numbers) are
//! stored decoded; anything that needs the calendar or the time-zone database
//! (is `2026-02-30` a date? is `Europe/Londn` a zone?) is left to the compiler.

use serde::Serialize;

/// A half-open byte range `[start, end)` into one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    pub fn len(self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StringLit {
    /// The value with escapes resolved.
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Duration {
    pub millis: u64,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TimeOfDay {
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub span: Span,
}

impl TimeOfDay {
    pub fn seconds_from_midnight(&self) -> u32 {
        self.hour * 3600 + self.minute * 60 + self.second
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub span: Span,
}

/// An RFC 3339 timestamp, kept as written; the compiler parses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Timestamp {
    pub text: String,
    pub span: Span,
}

/// A time-zone name as written; the compiler looks it up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Zone {
    pub name: String,
    pub span: Span,
}

/// A comment as it appears in the source, kept for the formatter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct File {
    pub items: Vec<Item>,
    /// Every comment of the file in source order, doc comments included.
    pub comments: Vec<Comment>,
    /// Declarations too broken to parse at all, by keyword and name, so
    /// that the checker does not also call every use of them unknown.
    pub unparsed: Vec<(String, Ident)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Event(EventDecl),
    Workflow(WorkflowDecl),
    Channel(ChannelDecl),
    Calendar(CalendarDecl),
    Maintenance(MaintenanceDecl),
    Test(TestDecl),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Event(d) => d.span,
            Item::Workflow(d) => d.span,
            Item::Channel(d) => d.span,
            Item::Calendar(d) => d.span,
            Item::Maintenance(d) => d.span,
            Item::Test(d) => d.span,
        }
    }

    /// The declared name; a test's name is its string.
    pub fn name(&self) -> (&str, Span) {
        match self {
            Item::Event(d) => (&d.name.name, d.name.span),
            Item::Workflow(d) => (&d.name.name, d.name.span),
            Item::Channel(d) => (&d.name.name, d.name.span),
            Item::Calendar(d) => (&d.name.name, d.name.span),
            Item::Maintenance(d) => (&d.name.name, d.name.span),
            Item::Test(d) => (&d.name.value, d.name.span),
        }
    }
}

// ---------------------------------------------------------------- events

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub body: EventBody,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum EventBody {
    Fields(Vec<FieldDecl>),
    /// `from "schema.json"`: a JSON Schema path relative to the rule file.
    Schema(StringLit),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub ty: TypeExpr,
    pub pii: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub optional: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TypeKind {
    /// `string`, `int`, ...: checked by the compiler.
    Named(Ident),
    Enum(Vec<Ident>),
}

// ---------------------------------------------------------------- workflows

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkflowDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub stmts: Vec<Stmt>,
    pub span: Span,
    /// Some statements had syntax errors and are missing from `stmts`:
    /// checks that need the whole graph (a start step, reachability)
    /// would only repeat the syntax error in other words.
    pub incomplete: bool,
}

impl WorkflowDecl {
    /// The step statements, in source order.
    pub fn steps(&self) -> impl Iterator<Item = &StepDecl> {
        self.stmts.iter().filter_map(|s| match &s.kind {
            StmtKind::Step(step) => Some(step),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum StmtKind {
    Key(Vec<KeyField>),
    GroupBy(Vec<Ident>),
    Cohort(Ident),
    Timezone(Zone),
    /// `status red|amber when EXPR`; the color is checked by the compiler.
    Status {
        color: Ident,
        condition: Expr,
    },
    /// `on out_of_order|duplicate|unexpected flag|drop|alert`.
    On {
        case: Ident,
        action: Ident,
    },
    DependsOn(Vec<Ident>),
    Retain(Duration),
    Aging(Vec<Duration>),
    Open(TimeOfDay),
    Setting(Setting),
    Step(StepDecl),
}

/// One key field and, when mapped, where each event keeps it:
/// `key trade_id = trade_ingested.trade_id, sys3_ack.ref`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyField {
    pub name: Ident,
    pub sources: Vec<QualifiedName>,
    pub span: Span,
}

/// `event.field` or `step.field`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualifiedName {
    pub qualifier: Ident,
    pub name: Ident,
    pub span: Span,
}

/// A workflow-level setting that a step may override. `notify` and
/// `escalate` may be given several times (`escalate after D to CHANNEL`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setting {
    pub kind: SettingKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum SettingKind {
    Severity(Ident),
    Runbook(StringLit),
    Notify { channels: Vec<Ident>, min_severity: Option<Ident> },
    Renotify(Duration),
    Escalate { after: Duration, channel: Ident },
    Grace(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StepForm {
    /// `expect E`: a start step in linear form.
    Expect,
    /// `then [maybe] E`: a step from the statement above.
    Then { maybe: bool },
    /// `start NAME: E`.
    Start,
    /// `step NAME: E ... after S`.
    Step,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepDecl {
    pub form: StepForm,
    /// `start NAME:` / `step NAME:` / `as NAME`; else the event's name.
    pub name: Option<Ident>,
    pub event: Ident,
    pub predicate: Option<Expr>,
    pub after: Vec<Ident>,
    pub clauses: Vec<Clause>,
    pub outcome: Option<Ident>,
    pub span: Span,
}

impl StepDecl {
    /// The step's (and its stage's) name.
    pub fn step_name(&self) -> &Ident {
        self.name.as_ref().unwrap_or(&self.event)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clause {
    pub kind: ClauseKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ClauseKind {
    Within(Duration),
    By { time: TimeOfDay, zone: Option<Zone>, day_offset: Option<(u32, Span)> },
    Warn(Duration),
    WarnAt { time: TimeOfDay, zone: Option<Zone> },
    NotBefore(Duration),
    NotBeforeTime { time: TimeOfDay, zone: Option<Zone> },
    Every(Vec<Ident>),
    Except(Vec<Ident>),
    Open(TimeOfDay),
    Setting(SettingKind),
}

// ---------------------------------------------------------------- channels, calendars, maintenance

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub kind: Ident,
    pub targets: Vec<ChannelTarget>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ChannelTarget {
    Literal(StringLit),
    /// `secret("NAME")`: resolved by the runtime, never stored.
    Secret(StringLit),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalendarDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub dates: Vec<Date>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaintenanceDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub window: MaintenanceWindow,
    /// Empty: every workflow.
    pub workflows: Vec<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum MaintenanceWindow {
    /// `every [DAY] HH:MM to [DAY] HH:MM [ZONE]`; no day means every day.
    Weekly { from_day: Option<Ident>, from: TimeOfDay, to_day: Option<Ident>, to: TimeOfDay, zone: Option<Zone> },
    /// `from TIMESTAMP to TIMESTAMP`: one window.
    Fixed { from: Timestamp, to: Timestamp },
}

// ---------------------------------------------------------------- tests

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestDecl {
    pub name: StringLit,
    pub stmts: Vec<TestStmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestStmt {
    pub kind: TestStmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TestStmtKind {
    At(Timestamp),
    AdvanceTo(Timestamp),
    AdvanceBy(Duration),
    Event { event: Ident, fields: Vec<RecordField>, at: Option<Timestamp>, id: Option<StringLit> },
    Expect(Expectation),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordField {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `WORKFLOW` or `WORKFLOW.STEP`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    pub workflow: Ident,
    pub step: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Expectation {
    /// `expect alert KIND TARGET [for {key}]`
    Alert { kind: Ident, target: Target, key: Option<Vec<RecordField>> },
    /// `expect KIND TARGET [by D] [for {key}]`
    Record { kind: Ident, target: Target, delay: Option<Duration>, key: Option<Vec<RecordField>> },
    /// `expect status TARGET COLOR`
    Status { target: Target, color: Ident },
    /// `expect stage WORKFLOW for {key} STAGE`
    Stage { workflow: Ident, key: Vec<RecordField>, stage: Ident },
    /// `expect count METRIC TARGET OP N`
    Count { metric: Ident, target: Target, op: CompareOp, value: i64, value_span: Span },
    /// `expect no [alert] [KIND [TARGET]]`
    No { alert: bool, kind: Option<Ident>, target: Option<Target> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

// ---------------------------------------------------------------- expressions

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    Literal(Literal),
    /// A field of the step's event, an enum value, or a status metric.
    Name(Ident),
    /// `step.field`: a field recorded at an earlier step.
    Path(QualifiedName),
    Call {
        function: Ident,
        args: Vec<Expr>,
    },
    List(Vec<Expr>),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// Kept so that the formatter prints the parentheses the author wrote.
    Paren(Box<Expr>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Literal {
    Int(i64),
    Float(f64),
    String(String),
    Bool(bool),
    Duration(u64),
    Date { year: i32, month: u32, day: u32 },
    TimeOfDay { hour: u32, minute: u32, second: u32 },
    Timestamp(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "not in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Coalesce => "??",
        }
    }

    /// Binding power; higher binds tighter. `??` binds tighter than
    /// arithmetic so that `size ?? 0 > 10` means `(size ?? 0) > 10`.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::In
            | BinaryOp::NotIn => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div => 6,
            BinaryOp::Coalesce => 7,
        }
    }
}
