//! Diagnostics: the one place where problems become words.
//!
//! The checker records [`DiagnosticKind`] values (names, types, candidates;
//! never prose). This module gives each kind its code, message, label and
//! help, renders them with miette for the terminal, and as JSON for tools.
//! The language server converts the same values, so CLI, API and editor
//! always say the same thing.

use std::fmt;

use mon_grammar::ast::Span;
use mon_grammar::SyntaxErrorKind;
use serde::Serialize;

use crate::codes::{self, Code};

/// One rule file as the compiler saw it.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// As given by the caller; diagnostics print it unchanged.
    pub path: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// A problem found in file `file` (an index into the sources) at `span`.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    pub file: usize,
    pub span: Span,
    /// Other places worth showing: the first declaration of a duplicate.
    pub related: Vec<Related>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Related {
    pub file: usize,
    pub span: Span,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DiagnosticKind {
    Syntax(SyntaxErrorKind),
    InvalidTimestamp { text: String },

    UnknownEvent { name: String, suggestion: Option<String> },
    UnknownField { field: String, event: String, suggestion: Option<String> },
    UnknownStage { name: String, workflow: String, suggestion: Option<String> },
    UnknownCalendar { name: String, suggestion: Option<String> },
    UnknownChannel { name: String, suggestion: Option<String> },
    UnknownTimeZone { name: String, suggestion: Option<String> },
    UnknownEnumValue { value: String, variants: Vec<String>, suggestion: Option<String> },
    Duplicate { what: &'static str, name: String },
    DuplicateInside { what: &'static str, name: String, container: String },
    UnknownWorkflow { name: String, suggestion: Option<String> },
    UnknownType { name: String, suggestion: Option<String> },
    InvalidChoice { what: &'static str, found: String, expected: Vec<String>, suggestion: Option<String> },
    SchemaUnreadable { path: String, reason: String },
    SchemaUnsupported { path: String, property: String, reason: String },

    TypeMismatch { op: String, left: String, right: String, hint: Option<String> },
    NotBoolean { context: &'static str, found: String },
    WrongType { context: String, expected: String, found: String },
    KeyTypeMismatch { key: String, event: String, found: String, first_event: String, expected: String },
    OptionalValue { name: String, context: &'static str },
    MissingRequiredField { event: String, field: String },

    KeyFieldMissing { key: String, event: String, suggestion: Option<String> },
    UnreachableStage { stage: String },
    NeverMatches { step: String, reason: NeverMatch },
    KeyOnScheduled { workflow: String },
    NoStartStep { workflow: String },
    Misplaced(Misplaced),
    MissingKey { workflow: String },
    TimingConflict(TimingConflict),
    ScheduleOutsideStart { clause: &'static str },
    StepAfterClosingStage { step: String, stage: String },
    DependencyKeyMismatch { workflow: String, upstream: String, key: String, upstream_key: String },
    GroupFieldMissing { field: String, suggestion: Option<String> },
    CohortNotDate { field: String, event: String, found: String },
    DuplicateSetting { setting: String },
    NotAnAncestor { step: String, referenced: String },
    TooManySteps { workflow: String, steps: usize },
    ClockBackwards { to: String, from: String },
    // `escalate ... to CHANNEL` where the alert already goes to `CHANNEL`
    // when it opens: the escalation reaches no one new.
    EscalationToNotified { channel: String },

    UnknownFunction { name: String, suggestion: Option<String> },
    WrongArgumentCount { function: String, expected: String, found: usize, signature: String },
    WrongArgumentType { function: String, position: usize, expected: String, found: String },
    InvalidLiteralArgument { function: String, reason: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum NeverMatch {
    /// The `where` is false whatever the event holds.
    AlwaysFalse,
    /// The same field must equal two different values.
    ConflictingEquality { field: String },
    /// An earlier alternative from the same stage takes every such event.
    Shadowed { by: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Misplaced {
    /// `then` with no step above it.
    ThenWithoutPrevious,
    /// `step` without `after`.
    StepWithoutAfter,
    /// `after` on `expect`, `start` or `then`.
    AfterOnLinearOrStart,
    /// A step that leaves its own stage.
    AfterItself,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TimingConflict {
    /// `warn` with no `within` or `by` to warn before.
    WarnWithoutDeadline,
    /// `warn D` not shorter than `within D`.
    WarnNotBeforeDeadline,
    /// `not before D` not shorter than `within D`.
    NotBeforeAfterDeadline,
    /// `within` on a start step: there is no stage to time it from.
    WithinOnStart,
    /// Aging buckets that do not increase.
    AgingNotIncreasing,
    /// `not before D` on a start step: there is no stage to time it from.
    NotBeforeOnStart,
    /// `warn D` on a scheduled start: there is no stage to count from.
    WarnNeedsClockTime,
    /// A scheduled workflow whose start steps disagree about `by`.
    StartsDisagree,
}

impl DiagnosticKind {
    pub fn code(&self) -> Code {
        use DiagnosticKind::*;
        match self {
            Syntax(kind) => match kind {
                SyntaxErrorKind::Unexpected { .. } => codes::E101,
                // A missing token is the most common unexpected token
                // (docs/errors/E101.md), found at its place.
                SyntaxErrorKind::Missing { .. } => codes::E101,
                SyntaxErrorKind::InvalidDuration { .. } => codes::E102,
                SyntaxErrorKind::UnterminatedString => codes::E103,
                SyntaxErrorKind::InvalidEscape { .. } => codes::E104,
                SyntaxErrorKind::ReservedWord { .. } => codes::E105,
                SyntaxErrorKind::UnclosedBlock => codes::E106,
                SyntaxErrorKind::InvalidTimeOfDay => codes::E107,
                SyntaxErrorKind::InvalidDate => codes::E108,
                SyntaxErrorKind::NumberOutOfRange => codes::E109,
                SyntaxErrorKind::UnnamedKeySource => codes::E110,
                SyntaxErrorKind::TooDeep { .. } => codes::E111,
                // A bug in mon, not a new kind of mistake: the generic
                // syntax code, with a message that says so (docs/errors/E101.md).
                SyntaxErrorKind::Internal { .. } => codes::E101,
            },
            InvalidTimestamp { .. } => codes::E108,
            UnknownEvent { .. } => codes::E201,
            UnknownField { .. } => codes::E202,
            UnknownStage { .. } => codes::E203,
            UnknownCalendar { .. } => codes::E204,
            UnknownChannel { .. } => codes::E205,
            UnknownTimeZone { .. } => codes::E206,
            UnknownEnumValue { .. } => codes::E207,
            Duplicate { .. } => codes::E208,
            DuplicateInside { .. } => codes::E209,
            UnknownWorkflow { .. } => codes::E210,
            UnknownType { .. } => codes::E211,
            InvalidChoice { .. } => codes::E212,
            SchemaUnreadable { .. } => codes::E213,
            SchemaUnsupported { .. } => codes::E214,
            TypeMismatch { .. } => codes::E301,
            NotBoolean { .. } => codes::E302,
            WrongType { .. } => codes::E303,
            KeyTypeMismatch { .. } => codes::E304,
            OptionalValue { .. } => codes::E305,
            MissingRequiredField { .. } => codes::E306,
            KeyFieldMissing { .. } => codes::E401,
            UnreachableStage { .. } => codes::E402,
            NeverMatches { .. } => codes::E403,
            KeyOnScheduled { .. } => codes::E404,
            NoStartStep { .. } => codes::E405,
            Misplaced(_) => codes::E406,
            MissingKey { .. } => codes::E407,
            TimingConflict(_) => codes::E408,
            ScheduleOutsideStart { .. } => codes::E409,
            StepAfterClosingStage { .. } => codes::E410,
            DependencyKeyMismatch { .. } => codes::E411,
            GroupFieldMissing { .. } => codes::E412,
            CohortNotDate { .. } => codes::E413,
            DuplicateSetting { .. } => codes::E414,
            NotAnAncestor { .. } => codes::E415,
            TooManySteps { .. } => codes::E416,
            ClockBackwards { .. } => codes::E417,
            EscalationToNotified { .. } => codes::E418,
            UnknownFunction { .. } => codes::E501,
            WrongArgumentCount { .. } => codes::E502,
            WrongArgumentType { .. } => codes::E503,
            InvalidLiteralArgument { .. } => codes::E504,
        }
    }

    /// Warnings describe rules that work but probably not as meant.
    pub fn level(&self) -> Level {
        match self {
            DiagnosticKind::UnreachableStage { .. }
            | DiagnosticKind::NeverMatches { .. }
            | DiagnosticKind::EscalationToNotified { .. } => Level::Warning,
            _ => Level::Error,
        }
    }

    pub fn message(&self) -> String {
        use DiagnosticKind::*;
        match self {
            Syntax(kind) => match kind {
                SyntaxErrorKind::Unexpected { found, .. } => format!("unexpected {found}"),
                SyntaxErrorKind::Missing { token, after, .. } => format!("expected `{token}` after `{after}`"),
                SyntaxErrorKind::InvalidDuration { written, .. } => format!("`{written}` is not a duration"),
                SyntaxErrorKind::UnterminatedString => "this string has no closing quote".into(),
                SyntaxErrorKind::InvalidEscape { escape } => format!("`{escape}` is not an escape sequence"),
                SyntaxErrorKind::ReservedWord { word } => format!("`{word}` is a reserved word and cannot be a name"),
                SyntaxErrorKind::UnclosedBlock => "this block is never closed".into(),
                SyntaxErrorKind::InvalidTimeOfDay => "not a valid time of day".into(),
                SyntaxErrorKind::InvalidDate => "not a valid date".into(),
                SyntaxErrorKind::NumberOutOfRange => "number out of range".into(),
                SyntaxErrorKind::UnnamedKeySource => "a key source needs a key name".into(),
                SyntaxErrorKind::TooDeep { limit } => format!("this is nested more than {limit} levels deep"),
                SyntaxErrorKind::Internal { expected, found } => format!(
                    "internal error: the parser's builder did not expect {found} here, where it wanted \
                     {expected}; please report this as a bug in mon"
                ),
            },
            InvalidTimestamp { text } => format!("`{text}` is not a valid RFC 3339 timestamp"),
            UnknownEvent { name, .. } => format!("unknown event `{name}`"),
            UnknownField { field, event, .. } => format!("event `{event}` has no field `{field}`"),
            UnknownStage { name, workflow, .. } => format!("workflow `{workflow}` has no stage `{name}`"),
            UnknownCalendar { name, .. } => format!("unknown calendar `{name}`"),
            UnknownChannel { name, .. } => format!("unknown channel `{name}`"),
            UnknownTimeZone { name, .. } => format!("unknown time zone `{name}`"),
            UnknownEnumValue { value, .. } => format!("`{value}` is not a value of this enum"),
            Duplicate { what, name } => format!("{what} `{name}` is declared twice"),
            DuplicateInside { what, name, container } => format!("{what} `{name}` appears twice in {container}"),
            UnknownWorkflow { name, .. } => format!("unknown workflow `{name}`"),
            UnknownType { name, .. } => format!("unknown type `{name}`"),
            InvalidChoice { what, found, .. } => format!("`{found}` is not {} {what}", article(what)),
            SchemaUnreadable { path, .. } => format!("cannot read the JSON Schema `{path}`"),
            SchemaUnsupported { path, property, .. } => {
                format!("property `{property}` of the JSON Schema `{path}` cannot be a mon field")
            }
            TypeMismatch { op, left, right, .. } => format!("cannot apply `{op}` to {left} and {right}"),
            NotBoolean { context, found } => format!("a `{context}` condition must be bool, but this is {found}"),
            WrongType { context, expected, found } => format!("{context} must be {expected}, but this is {found}"),
            KeyTypeMismatch { key, event, found, first_event, expected } => {
                format!("key field `{key}` is {found} in event `{event}` but {expected} in event `{first_event}`")
            }
            OptionalValue { name, context } => format!("`{name}` is optional and cannot be {context} directly"),
            MissingRequiredField { event, field } => format!("event `{event}` requires field `{field}`"),
            KeyFieldMissing { key, event, .. } => format!("key field `{key}` is missing from event `{event}`"),
            UnreachableStage { stage } => format!("stage `{stage}` can never be reached"),
            NeverMatches { step, .. } => format!("step `{step}` can never match"),
            KeyOnScheduled { workflow } => format!("scheduled workflow `{workflow}` cannot declare a key"),
            NoStartStep { workflow } => format!("workflow `{workflow}` has no start step"),
            Misplaced(m) => match m {
                self::Misplaced::ThenWithoutPrevious => "`then` has no step above it to follow".into(),
                self::Misplaced::StepWithoutAfter => "a `step` needs `after` to say which stage it leaves".into(),
                self::Misplaced::AfterOnLinearOrStart => "`after` belongs on `step` statements only".into(),
                self::Misplaced::AfterItself => "a step cannot leave its own stage".into(),
            },
            MissingKey { workflow } => format!("workflow `{workflow}` has no `key`"),
            TimingConflict(t) => match t {
                self::TimingConflict::WarnWithoutDeadline => {
                    "`warn` needs a deadline (`within` or `by`) on the same step".into()
                }
                self::TimingConflict::WarnNotBeforeDeadline => "`warn` must come before the deadline".into(),
                self::TimingConflict::NotBeforeAfterDeadline => "`not before` must be earlier than the deadline".into(),
                self::TimingConflict::WithinOnStart => "a start step cannot have `within`".into(),
                self::TimingConflict::AgingNotIncreasing => "aging buckets must increase".into(),
                self::TimingConflict::NotBeforeOnStart => "a start step cannot have `not before D`".into(),
                self::TimingConflict::WarnNeedsClockTime => "a scheduled start cannot have `warn D`".into(),
                self::TimingConflict::StartsDisagree => {
                    "the start steps of a scheduled workflow must all have `by`".into()
                }
            },
            ScheduleOutsideStart { clause } => {
                format!("`{clause}` belongs on the start step of a scheduled workflow")
            }
            StepAfterClosingStage { step, stage } => {
                format!("step `{step}` leaves stage `{stage}`, which closes the instance")
            }
            DependencyKeyMismatch { workflow, upstream, .. } => {
                format!("workflow `{workflow}` depends on `{upstream}`, which has a different key")
            }
            GroupFieldMissing { field, .. } => format!("no event of this workflow has a field `{field}`"),
            CohortNotDate { field, event, found } => {
                format!("cohort field `{field}` of event `{event}` is {found}, not date")
            }
            DuplicateSetting { setting } => format!("`{setting}` is given twice"),
            NotAnAncestor { step, referenced } => {
                format!("step `{step}` reads a field of `{referenced}`, which does not come before it")
            }
            TooManySteps { workflow, steps } => {
                format!("workflow `{workflow}` has {steps} steps; at most {MAX_STEPS} are supported")
            }
            ClockBackwards { to, from } => format!("the test clock cannot move back to {to}: it is already at {from}"),
            EscalationToNotified { channel } => format!("the alert already goes to `{channel}` when it opens"),
            UnknownFunction { name, .. } => format!("unknown function `{name}`"),
            WrongArgumentCount { function, expected, found, .. } => {
                format!("`{function}` takes {expected}, but {found} given")
            }
            WrongArgumentType { function, position, expected, found } => {
                format!("argument {position} of `{function}` must be {expected}, but this is {found}")
            }
            InvalidLiteralArgument { function, reason } => format!("invalid argument to `{function}`: {reason}"),
        }
    }

    /// The short text under the caret.
    pub fn label(&self) -> String {
        use DiagnosticKind::*;
        match self {
            Syntax(SyntaxErrorKind::Unexpected { expected, .. }) => match expected.as_slice() {
                [] => "not expected here".into(),
                [one] => format!("expected {one}"),
                many => {
                    let shown: Vec<&str> = many.iter().take(8).map(String::as_str).collect();
                    let more = if many.len() > 8 { ", ..." } else { "" };
                    format!("expected one of {}{more}", shown.join(", "))
                }
            },
            Syntax(SyntaxErrorKind::Missing { token, .. }) => format!("`{token}` is missing here"),
            Syntax(SyntaxErrorKind::InvalidDuration { .. }) => "expected a duration such as `5m`".into(),
            Syntax(SyntaxErrorKind::UnclosedBlock) => "no matching `}`".into(),
            Syntax(SyntaxErrorKind::ReservedWord { .. }) => "reserved word".into(),
            Syntax(SyntaxErrorKind::Internal { .. }) => "the parser could not build this".into(),
            Syntax(SyntaxErrorKind::TooDeep { .. }) => "one level too many".into(),
            Syntax(_) | InvalidTimestamp { .. } => "here".into(),
            UnknownEvent { .. } => "not declared".into(),
            UnknownField { .. } => "no such field".into(),
            UnknownStage { .. } => "no such stage".into(),
            UnknownCalendar { .. } | UnknownChannel { .. } | UnknownWorkflow { .. } | UnknownFunction { .. } => {
                "not declared".into()
            }
            UnknownTimeZone { .. } => "not an IANA time zone".into(),
            UnknownEnumValue { variants, .. } => format!("expected one of {}", variants.join(", ")),
            Duplicate { .. } | DuplicateInside { .. } => "declared again here".into(),
            UnknownType { .. } => "not a type".into(),
            InvalidChoice { expected, .. } => format!("expected one of {}", expected.join(", ")),
            SchemaUnreadable { reason, .. } => reason.clone(),
            SchemaUnsupported { reason, .. } => reason.clone(),
            TypeMismatch { .. } => "mismatched types".into(),
            NotBoolean { found, .. } => format!("this is {found}"),
            WrongType { expected, .. } => format!("expected {expected}"),
            KeyTypeMismatch { first_event, expected, .. } => {
                format!("`{first_event}` has it as {expected}")
            }
            OptionalValue { .. } => "may be absent".into(),
            MissingRequiredField { .. } => "missing field".into(),
            KeyFieldMissing { .. } => "this event has no such field".into(),
            UnreachableStage { .. } => "no step leads here from a start step".into(),
            NeverMatches { reason, .. } => match reason {
                NeverMatch::AlwaysFalse => "this condition is always false".into(),
                NeverMatch::ConflictingEquality { field } => format!("`{field}` cannot equal two values"),
                NeverMatch::Shadowed { by } => format!("`{by}` matches these events first"),
            },
            KeyOnScheduled { .. } => "occurrences are keyed by date".into(),
            NoStartStep { .. } => "no `expect` or `start` in this workflow".into(),
            Misplaced(_) => "here".into(),
            MissingKey { .. } => "items of this workflow cannot be told apart".into(),
            TimingConflict(_) => "here".into(),
            ScheduleOutsideStart { .. } => "not a scheduled start step".into(),
            StepAfterClosingStage { .. } => "the instance is already closed here".into(),
            DependencyKeyMismatch { key, upstream_key, .. } => {
                format!("key ({key}) against upstream key ({upstream_key})")
            }
            GroupFieldMissing { .. } => "no such field".into(),
            CohortNotDate { .. } => "expected a date field".into(),
            DuplicateSetting { .. } => "given again here".into(),
            NotAnAncestor { .. } => "not an earlier step".into(),
            TooManySteps { .. } => "too many steps".into(),
            ClockBackwards { .. } => "earlier than the clock".into(),
            EscalationToNotified { .. } => "this escalation reaches no one new".into(),
            WrongArgumentCount { .. } => "wrong number of arguments".into(),
            WrongArgumentType { expected, .. } => format!("expected {expected}"),
            InvalidLiteralArgument { .. } => "invalid value".into(),
        }
    }

    pub fn help(&self) -> Option<String> {
        use DiagnosticKind::*;
        let did_you_mean = |s: &Option<String>| s.as_ref().map(|s| format!("did you mean `{s}`?"));
        match self {
            Syntax(SyntaxErrorKind::InvalidDuration { suggestion: Some(s), .. }) => {
                Some(format!("write it `{s}`: numbers with unit suffixes (ms s m h d), largest unit first"))
            }
            Syntax(SyntaxErrorKind::InvalidDuration { suggestion: None, .. }) => {
                Some("write durations with a unit suffix: ms, s, m, h or d, as in `90s` or `1h30m`".into())
            }
            Syntax(SyntaxErrorKind::ReservedWord { word }) => Some(format!("choose another name, such as `{word}_`")),
            Syntax(SyntaxErrorKind::UnclosedBlock) => Some("add the missing `}` where the block ends".into()),
            Syntax(SyntaxErrorKind::Missing { fix, .. }) => Some(format!("write `{fix}`")),
            Syntax(SyntaxErrorKind::UnterminatedString) => Some("add a closing `\"` on the same line".into()),
            Syntax(SyntaxErrorKind::InvalidEscape { escape }) if escape.starts_with("\\u") => {
                Some("`\\u{...}` takes 1 to 6 hex digits naming a Unicode character, as in `\\u{e9}`".into())
            }
            Syntax(SyntaxErrorKind::InvalidEscape { escape }) => Some(format!(
                "to write a backslash, double it: `\\{}`; the escapes are \\\" \\\\ \\n \\t \\r \\u{{...}}",
                escape
            )),
            Syntax(SyntaxErrorKind::InvalidTimeOfDay) => Some("times are 24-hour `HH:MM` or `HH:MM:SS`".into()),
            Syntax(SyntaxErrorKind::InvalidDate) | InvalidTimestamp { .. } => {
                Some("dates are `YYYY-MM-DD`; timestamps `2026-03-02T08:00:00Z`".into())
            }
            Syntax(SyntaxErrorKind::UnnamedKeySource) => {
                Some("name the key field first: `key trade_id = trade_ingested.trade_id, sys3_ack.ref`".into())
            }
            Syntax(SyntaxErrorKind::TooDeep { .. }) => Some(
                "each bracket, each `not` or `-` before a value and each operator of a chain is a level; \
                 split the condition, or write a long chain of `or` comparisons as `field in [a, b, c]`"
                    .into(),
            ),
            Syntax(SyntaxErrorKind::Internal { .. }) => Some(
                "the grammar accepted this text, but the code that builds the syntax tree does not agree with it; \
                 the rest of the file is still checked"
                    .into(),
            ),
            // A misspelled keyword: the nearest of the words that would fit.
            Syntax(SyntaxErrorKind::Unexpected { found, expected }) => {
                let word = found.trim_matches('`');
                let keywords = expected.iter().filter_map(|e| {
                    let inner = e.strip_prefix('`')?.strip_suffix('`')?;
                    inner.chars().all(|c| c.is_ascii_lowercase() || c == '_').then_some(inner)
                });
                crate::suggest::did_you_mean(word, keywords).map(|k| format!("did you mean `{k}`?"))
            }
            Syntax(_) => None,
            UnknownEvent { suggestion, .. }
            | UnknownField { suggestion, .. }
            | UnknownStage { suggestion, .. }
            | UnknownCalendar { suggestion, .. }
            | UnknownChannel { suggestion, .. }
            | UnknownTimeZone { suggestion, .. }
            | UnknownEnumValue { suggestion, .. }
            | UnknownWorkflow { suggestion, .. }
            | UnknownType { suggestion, .. }
            | InvalidChoice { suggestion, .. }
            | GroupFieldMissing { suggestion, .. }
            | UnknownFunction { suggestion, .. } => did_you_mean(suggestion),
            Duplicate { .. } | DuplicateInside { .. } => Some("rename one of them".into()),
            KeyFieldMissing { key, event, suggestion } => Some(match suggestion {
                Some(s) => format!("map it: `key {key} = {event}.{s}`"),
                None => format!("add `{key}` to event `{event}`, or map it: `key {key} = {event}.<field>`"),
            }),
            OptionalValue { context: "a key field", .. } => {
                Some("make the field required in the event: a key must always be present".into())
            }
            OptionalValue { name, .. } => Some(format!("give a default: `{name} ?? ...`")),
            TypeMismatch { hint, .. } => hint.clone(),
            NotBoolean { .. } => Some("compare it with something, e.g. `== ...`".into()),
            KeyOnScheduled { .. } => Some("remove `key`; use `cohort FIELD` to match events to a date".into()),
            NoStartStep { .. } => Some("begin with `expect EVENT` or `start NAME: EVENT`".into()),
            Misplaced(self::Misplaced::StepWithoutAfter) => Some("add `after STAGE`".into()),
            Misplaced(self::Misplaced::ThenWithoutPrevious) => Some("begin the workflow with `expect`".into()),
            MissingKey { .. } => Some("add `key FIELD`, or give the start step a `by` deadline to schedule it".into()),
            WrongArgumentCount { signature, .. } => Some(format!("the signature is `{signature}`")),
            NeverMatches { reason: NeverMatch::Shadowed { by }, .. } => {
                Some(format!("give it a `where` that `{by}` does not have, or remove it"))
            }
            NeverMatches { .. } => Some("fix the condition, or remove the step".into()),
            TimingConflict(self::TimingConflict::WarnWithoutDeadline) => {
                Some("add `within D` or `by HH:MM`; on a scheduled start, warn with `warn at HH:MM`".into())
            }
            TimingConflict(self::TimingConflict::WarnNotBeforeDeadline) => {
                Some("`warn D` counts from the same moment as `within`: make it shorter than the deadline".into())
            }
            TimingConflict(self::TimingConflict::NotBeforeAfterDeadline) => {
                Some("`not before` counts from the same moment as `within`: make it shorter".into())
            }
            TimingConflict(self::TimingConflict::AgingNotIncreasing) => {
                Some("list the buckets in increasing order, as in `aging 1m, 5m, 15m, 1h`".into())
            }
            TimingConflict(self::TimingConflict::WarnNeedsClockTime) => {
                Some("`warn D` counts from entering a stage, and a start has none: use `warn at 07:45`".into())
            }
            TimingConflict(self::TimingConflict::NotBeforeOnStart) => {
                Some("on a scheduled start, use a clock time: `not before 06:00`".into())
            }
            TimingConflict(self::TimingConflict::StartsDisagree) => {
                Some("give every start step a `by`, or none".into())
            }
            TimingConflict(self::TimingConflict::WithinOnStart) => {
                Some("a start step can have a `by` deadline, which schedules the workflow".into())
            }
            StepAfterClosingStage { .. } => Some("remove the `->` outcome from the earlier step".into()),
            DependencyKeyMismatch { .. } => Some("a workflow can depend only on one with the same key fields".into()),
            CohortNotDate { .. } => Some("the cohort field names the occurrence's date".into()),
            NotAnAncestor { .. } => Some("a `where` may read fields of the steps before it only".into()),
            TooManySteps { .. } => Some("split the flow into workflows linked with `depends on`".into()),
            ClockBackwards { .. } => {
                Some("a test runs forward in time; start a new `test` for an earlier scenario".into())
            }
            UnreachableStage { .. } => Some("add a step into it, or remove it".into()),
            EscalationToNotified { .. } => {
                Some("escalate to the next person's channel; to send the alert again, use `renotify D`".into())
            }
            _ => None,
        }
    }
}

/// The most steps a workflow may have: the engine keeps per-step flags in
/// 32-bit sets, which keeps an in-flight item small.
pub const MAX_STEPS: usize = 32;

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

// ---------------------------------------------------------------- rendering

/// Rendering helpers over a set of sources.
pub struct Renderer<'a> {
    pub sources: &'a [SourceFile],
}

/// `line` and `column` are 1-based; columns count characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl<'a> Renderer<'a> {
    /// Renders diagnostics as miette does on a terminal, without colors
    /// when `color` is false (for snapshots and pipes).
    pub fn human(&self, diagnostics: &[Diagnostic], color: bool) -> String {
        let theme = if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
        let mut out = String::new();
        for diagnostic in diagnostics {
            let report = self.report(diagnostic);
            let _ = handler.render_report(&mut out, &report);
            out.push('\n');
        }
        out
    }

    fn report(&self, d: &Diagnostic) -> Report {
        let source = &self.sources[d.file];
        let related = d
            .related
            .iter()
            .map(|r| {
                let file = &self.sources[r.file];
                RelatedReport { message: r.label.clone(), source: named_source(file), span: r.span }
            })
            .collect();
        Report {
            message: d.kind.message(),
            code: d.kind.code().id,
            level: d.kind.level(),
            label: d.kind.label(),
            help: d.kind.help(),
            source: named_source(source),
            span: d.span,
            related,
        }
    }

    /// One JSON object per diagnostic, the shape the API and `--format json` use.
    pub fn json(&self, d: &Diagnostic) -> JsonDiagnostic {
        let source = &self.sources[d.file];
        let (line, column) = line_col(&source.text, d.span.start);
        let (end_line, end_column) = line_col(&source.text, d.span.end);
        JsonDiagnostic {
            file: source.path.clone(),
            line,
            column,
            end_line,
            end_column,
            start: d.span.start,
            end: d.span.end,
            code: d.kind.code().id,
            severity: d.kind.level(),
            message: d.kind.message(),
            label: d.kind.label(),
            help: d.kind.help(),
            related: d
                .related
                .iter()
                .map(|r| {
                    let file = &self.sources[r.file];
                    let (line, column) = line_col(&file.text, r.span.start);
                    JsonRelated { file: file.path.clone(), line, column, message: r.label.clone() }
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct JsonDiagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// Byte offsets of the span.
    pub start: usize,
    pub end: usize,
    pub code: &'static str,
    pub severity: Level,
    pub message: String,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<JsonRelated>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JsonRelated {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn named_source(file: &SourceFile) -> miette::NamedSource<CharColumns> {
    miette::NamedSource::new(&file.path, CharColumns(file.text.clone()))
}

/// A file's text for miette, with columns counted in characters as the JSON
/// output and the language server count them: miette's own `SourceCode`
/// for strings counts bytes, so a header would say `1:25` where JSON says
/// `1:22` after an `é` and a `→`.
#[derive(Debug)]
struct CharColumns(String);

impl miette::SourceCode for CharColumns {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self.0.read_span(span, context_lines_before, context_lines_after)?;
        // Miette's column is the number of bytes between the line's start
        // and the start of the contents.
        let start = contents.span().offset();
        let column = start
            .checked_sub(contents.column())
            .and_then(|line_start| self.0.get(line_start..start))
            .map_or(contents.column(), |before| before.chars().count());
        Ok(Box::new(miette::MietteSpanContents::new(
            contents.data(),
            *contents.span(),
            contents.line(),
            column,
            contents.line_count(),
        )))
    }
}

fn source_span(span: Span) -> miette::SourceSpan {
    (span.start, span.len()).into()
}

#[derive(Debug)]
struct Report {
    message: String,
    code: &'static str,
    level: Level,
    label: String,
    help: Option<String>,
    source: miette::NamedSource<CharColumns>,
    span: Span,
    related: Vec<RelatedReport>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.level {
            Level::Error => miette::Severity::Error,
            Level::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_primary_with_span(
            Some(self.label.clone()),
            source_span(self.span),
        ))))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)))
    }
}

#[derive(Debug)]
struct RelatedReport {
    message: String,
    source: miette::NamedSource<CharColumns>,
    span: Span,
}

impl fmt::Display for RelatedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RelatedReport {}

impl miette::Diagnostic for RelatedReport {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_primary_with_span(
            Some(self.message.clone()),
            source_span(self.span),
        ))))
    }
}
