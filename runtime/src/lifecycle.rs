//! The lifecycle of one item, as data: what `mon simulate --trace KEY`
//! prints and what the service's `GET /api/v1/workflows/{w}/items/{key}`
//! answers, made by the same code from an engine that traced the key.
//!
//! A [`Lifecycle`] is read off the engine's trace entries (kept only for
//! traced keys, see `engine::traces`) and the instance at the engine's
//! clock: each hop with its time and deadline, the time spent per stage,
//! deadlines met or missed, what the item waits for now with the time
//! left, the last payload excerpt (`pii` fields were never in it), and the
//! events for the key that moved nothing, with why. The human text of
//! `--trace` is rendered from it ([`Lifecycle::render`]), so there is one
//! model. [`replay`] builds one from a key's events through a fresh engine:
//! the service's way, since its live engine does not trace every key.
//!
//! Pure like the rest of the crate: no clock, no I/O; "now" is the
//! engine's clock.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mon_compiler::ir::{self, Program};
use mon_compiler::Functions;
use mon_stdlib::time::format_rfc3339;
use serde::{Deserialize, Serialize};

use crate::engine::{deadline, key_object, Engine, Instance, TraceEntry, TraceWhat};
use crate::event::{Decoded, Event};
use crate::simulate::Simulation;

/// Everything a trace of one key shows: one [`Lifecycle`] per workflow
/// that saw the key (`mon simulate --trace KEY --format json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The key as given (compound keys joined by `,`).
    pub key: String,
    pub items: Vec<Lifecycle>,
}

/// One item of one workflow, at the engine's clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub workflow: String,
    /// Key field names to values (`date` for a scheduled workflow).
    pub key: BTreeMap<String, String>,
    /// The instant this lifecycle is told at (RFC 3339): the engine's clock.
    pub now: String,
    /// Everything that happened to the item, in the order the engine saw it.
    pub entries: Vec<Entry>,
    /// The steps taken, in order.
    pub hops: Vec<Hop>,
    /// Time spent in each stage entered; the last one up to now (or the close).
    pub stages: Vec<Stay>,
    /// Every deadline the item met or missed so far.
    pub deadlines: Vec<DeadlineCheck>,
    /// Where the item is now; `None` when only events that moved nothing
    /// were seen (no instance).
    pub state: Option<ItemState>,
    /// The payload excerpt of the latest event that reached the item
    /// (`pii` fields left out).
    pub last_payload: Option<serde_json::Value>,
    /// Events for this key that moved nothing, and why.
    pub moved_nothing: Vec<Unmoved>,
}

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: String,
    /// What happened, as a word: `took`, `filled_in`, `duplicate`,
    /// `out_of_order`, `unexpected`, `irrelevant`, `redelivery`,
    /// `missing`, `at_risk`, `late`, `early`.
    pub what: String,
    pub step: Option<String>,
    /// The same in words, as `--trace` prints it.
    pub text: String,
    pub event_id: Option<String>,
    pub payload: Option<serde_json::Value>,
}

/// A step taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    pub step: String,
    pub at: String,
    pub deadline: Option<String>,
    /// Met its deadline; `None` without one.
    pub on_time: Option<bool>,
    /// Past the deadline (late) or before it (spare), ms.
    pub late_by_ms: Option<i64>,
    pub spare_ms: Option<i64>,
    /// Stages jumped over by an out-of-order event.
    pub skipped: Vec<String>,
    pub event_id: Option<String>,
}

/// Time spent in one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stay {
    pub stage: String,
    pub entered_at: String,
    /// When the next step left it; `None` for the stage the item is in.
    pub left_at: Option<String>,
    pub spent_ms: i64,
}

/// A deadline and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadlineCheck {
    pub step: String,
    pub deadline: String,
    /// `met`, `late` (the step came after it), `missing` (it passed with no
    /// step), `at_risk` (a warning before it) or `early` (before `not before`).
    pub outcome: String,
    /// When it was decided.
    pub at: String,
}

/// Where the item is now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemState {
    /// `success` or `failure` once closed.
    pub closed: Option<String>,
    pub closed_at: Option<String>,
    /// The stage it is in (named after the step that led into it); `None`
    /// for an occurrence not started yet.
    pub stage: Option<String>,
    pub since: String,
    /// The steps it can take next, with their deadlines (empty once closed).
    pub waits_for: Vec<Wait>,
}

/// A step the item waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    pub step: String,
    pub optional: bool,
    pub deadline: Option<String>,
    /// Time left before the deadline, ms; negative once overdue.
    pub left_ms: Option<i64>,
}

/// An event for the key that moved nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unmoved {
    pub at: String,
    pub event_id: Option<String>,
    pub what: String,
    pub step: Option<String>,
    pub reason: String,
}

impl Trace {
    /// The lifecycles of `key` (as `key_of` builds it: compound keys joined
    /// by U+001F) in every workflow whose traced instance or strays hold it.
    pub fn of(engine: &Engine, key: &str) -> Trace {
        let program = engine.program();
        let items = program.workflows.iter().filter_map(|w| Lifecycle::of(engine, w, key)).collect();
        Trace { key: key.replace('\u{1f}', ","), items }
    }

    /// The text `mon simulate --trace` prints.
    pub fn render(&self) -> String {
        if self.items.is_empty() {
            return format!("no item with key {:?} was seen\n", self.key);
        }
        self.items.iter().map(Lifecycle::render).collect()
    }
}

impl Lifecycle {
    /// The lifecycle of `key` in `workflow`, if the engine traced it and
    /// saw it at all.
    pub fn of(engine: &Engine, workflow: &ir::Workflow, key: &str) -> Option<Lifecycle> {
        let strays: Vec<&TraceEntry> = engine
            .state
            .stray_trace
            .iter()
            .filter(|(w, k, _)| *w == workflow.id && k == key)
            .map(|(_, _, e)| e)
            .collect();
        let instance = engine.instance(workflow.id, key);
        if instance.is_none() && strays.is_empty() {
            return None;
        }
        let now = engine.state.clock;
        let step_name = |s: u32| workflow.steps.get(s as usize).map_or_else(String::new, |s| s.name.clone());
        let mut lifecycle = Lifecycle {
            workflow: workflow.name.clone(),
            key: key_object(workflow, key),
            now: format_rfc3339(now),
            entries: Vec::new(),
            hops: Vec::new(),
            stages: Vec::new(),
            deadlines: Vec::new(),
            state: None,
            last_payload: None,
            moved_nothing: Vec::new(),
        };
        let mut entered: Option<i64> = None;
        let mut last_payload_at = i64::MIN;
        for entry in instance.map(Instance::trace).unwrap_or(&[]).iter().chain(strays.iter().copied()) {
            let at = format_rfc3339(entry.at);
            let payload = entry.excerpt.as_deref().and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok());
            if let Some(payload) = &payload {
                if entry.at >= last_payload_at {
                    last_payload_at = entry.at;
                    lifecycle.last_payload = Some(payload.clone());
                }
            }
            let (word, step) = describe(&entry.what);
            let text = text(&entry.what, entry.at, entered, &step_name);
            match &entry.what {
                TraceWhat::Took { step, skipped, deadline } => {
                    if let (Some(stay), Some(from)) = (lifecycle.stages.last_mut(), entered) {
                        stay.left_at = Some(at.clone());
                        stay.spent_ms = entry.at - from;
                    }
                    lifecycle.stages.push(Stay {
                        stage: step_name(*step),
                        entered_at: at.clone(),
                        left_at: None,
                        spent_ms: 0,
                    });
                    entered = Some(entry.at);
                    lifecycle.hops.push(Hop {
                        step: step_name(*step),
                        at: at.clone(),
                        deadline: deadline.map(format_rfc3339),
                        on_time: deadline.map(|d| entry.at <= d),
                        late_by_ms: deadline.filter(|d| entry.at > *d).map(|d| entry.at - d),
                        spare_ms: deadline.filter(|d| entry.at <= *d).map(|d| d - entry.at),
                        skipped: skipped.iter().flatten().map(|s| step_name(*s)).collect(),
                        event_id: entry.event_id.clone(),
                    });
                    if let Some(d) = deadline {
                        let outcome = if entry.at > *d { "late" } else { "met" };
                        lifecycle.deadlines.push(check(&step_name(*step), *d, outcome, &at));
                    }
                }
                TraceWhat::Missing { step, deadline } => {
                    lifecycle.deadlines.push(check(&step_name(*step), *deadline, "missing", &at));
                }
                TraceWhat::AtRisk { step, deadline } => {
                    lifecycle.deadlines.push(check(&step_name(*step), *deadline, "at_risk", &at));
                }
                TraceWhat::Early { step, earliest } => {
                    lifecycle.deadlines.push(check(&step_name(*step), *earliest, "early", &at));
                }
                TraceWhat::Duplicate { .. }
                | TraceWhat::OutOfOrder { dropped: true, .. }
                | TraceWhat::Unexpected
                | TraceWhat::Irrelevant
                | TraceWhat::Redelivery => lifecycle.moved_nothing.push(Unmoved {
                    at: at.clone(),
                    event_id: entry.event_id.clone(),
                    what: word.to_string(),
                    step: step.map(step_name),
                    reason: text.clone(),
                }),
                TraceWhat::OutOfOrder { dropped: false, .. } | TraceWhat::FilledIn { .. } | TraceWhat::Late { .. } => {}
            }
            lifecycle.entries.push(Entry {
                at,
                what: word.to_string(),
                step: step.map(step_name),
                text,
                event_id: entry.event_id.clone(),
                payload,
            });
        }
        if let Some(instance) = instance {
            let end = instance.closed().map_or(now, |(_, at)| at);
            if let (Some(stay), Some(from)) = (lifecycle.stages.last_mut(), entered) {
                stay.spent_ms = end - from;
            }
            lifecycle.state = Some(state_of(workflow, instance, now, &step_name));
        }
        Some(lifecycle)
    }

    /// This item as `mon simulate --trace` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let key: Vec<String> = self.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "{} {}", self.workflow, key.join(" "));
        let mut last_event: Option<&String> = None;
        for entry in &self.entries {
            let event = entry.event_id.as_ref().map(|e| format!("  [event {e}]")).unwrap_or_default();
            let _ = writeln!(out, "  {}  {}{event}", entry.at, entry.text);
            // One payload per event, under the first line it caused.
            if let (Some(payload), true) = (&entry.payload, entry.event_id.as_ref() != last_event) {
                let _ = writeln!(out, "  {:24}  payload {payload}", "");
            }
            last_event = entry.event_id.as_ref();
        }
        let Some(state) = &self.state else { return out };
        if let (Some(outcome), Some(at)) = (&state.closed, &state.closed_at) {
            let _ = writeln!(out, "  now: closed ({outcome}) at {at}");
            return out;
        }
        let here = state.stage.as_ref().map_or("not started".to_string(), |s| format!("in stage {s}"));
        let _ = writeln!(out, "  now: {here} since {}", state.since);
        for wait in &state.waits_for {
            let text = match (&wait.deadline, wait.left_ms) {
                (Some(d), Some(left)) if left >= 0 => format!("deadline {d}, {} left", human(left)),
                (Some(d), Some(left)) => format!("deadline {d}, overdue by {}", human(left)),
                _ => "no deadline".into(),
            };
            let optional = if wait.optional { " (optional)" } else { "" };
            let _ = writeln!(out, "  waits for {}{optional}: {text}", wait.step);
        }
        out
    }
}

/// Replays `events` (one key's, in the order they arrived) through a fresh
/// engine that traces `key`, moves its clock to `now`, and tells the
/// lifecycle of `key` in `workflow`. Only the events given are seen: an
/// item that depends on other keys' events (a scheduled workflow's
/// occurrence, `depends on`) is told as these events alone make it.
pub fn replay(
    program: &Program,
    functions: &dyn Functions,
    workflow: &ir::Workflow,
    key: &str,
    events: impl IntoIterator<Item = Event>,
    now: i64,
) -> Option<Lifecycle> {
    let mut simulation = Simulation::new(program, functions, None, Some(now));
    simulation.trace_key(key);
    let mut records = Vec::new();
    for event in events {
        simulation.feed_decoded(&Decoded::Event(event), None, &mut records);
        // Why cleared: only the trace is wanted, not the records.
        records.clear();
    }
    simulation.finish(&mut records);
    Lifecycle::of(simulation.engine()?, workflow, key)
}

fn check(step: &str, deadline: i64, outcome: &str, at: &str) -> DeadlineCheck {
    DeadlineCheck { step: step.to_string(), deadline: format_rfc3339(deadline), outcome: outcome.into(), at: at.into() }
}

fn state_of(workflow: &ir::Workflow, instance: &Instance, now: i64, step_name: &dyn Fn(u32) -> String) -> ItemState {
    if let Some((outcome, at)) = instance.closed() {
        return ItemState {
            closed: Some(outcome.name().to_string()),
            closed_at: Some(format_rfc3339(at)),
            stage: instance.stage.map(step_name),
            since: format_rfc3339(instance.entered_at),
            waits_for: Vec::new(),
        };
    }
    let waiting: Vec<u32> = match instance.stage {
        Some(s) => workflow.stages.get(s as usize).map(|st| st.outgoing.clone()).unwrap_or_default(),
        None => workflow.steps.iter().filter(|s| s.sources.is_empty()).map(|s| s.id).collect(),
    };
    let waits_for = waiting
        .into_iter()
        .filter_map(|next| workflow.steps.get(next as usize))
        .map(|step| {
            let due = deadline(step, instance.date, instance.entered_at);
            Wait {
                step: step.name.clone(),
                optional: step.optional,
                deadline: due.map(format_rfc3339),
                left_ms: due.map(|d| d - now),
            }
        })
        .collect();
    ItemState {
        closed: None,
        closed_at: None,
        stage: instance.stage.map(step_name),
        since: format_rfc3339(instance.entered_at),
        waits_for,
    }
}

/// The word of a trace entry and the step it is about.
fn describe(what: &TraceWhat) -> (&'static str, Option<u32>) {
    match what {
        TraceWhat::Took { step, .. } => ("took", Some(*step)),
        TraceWhat::FilledIn { step } => ("filled_in", Some(*step)),
        TraceWhat::Duplicate { step } => ("duplicate", Some(*step)),
        TraceWhat::OutOfOrder { step, .. } => ("out_of_order", Some(*step)),
        TraceWhat::Unexpected => ("unexpected", None),
        TraceWhat::Irrelevant => ("irrelevant", None),
        TraceWhat::Redelivery => ("redelivery", None),
        TraceWhat::Missing { step, .. } => ("missing", Some(*step)),
        TraceWhat::AtRisk { step, .. } => ("at_risk", Some(*step)),
        TraceWhat::Late { step, .. } => ("late", Some(*step)),
        TraceWhat::Early { step, .. } => ("early", Some(*step)),
    }
}

fn human(ms: i64) -> String {
    mon_grammar::format_duration(ms.unsigned_abs())
}

/// A trace entry in words, as `--trace` has always printed it; `entered`
/// is when the item entered the stage a `took` leaves.
fn text(what: &TraceWhat, at: i64, entered: Option<i64>, step: &dyn Fn(u32) -> String) -> String {
    match what {
        TraceWhat::Took { step: s, skipped, deadline } => {
            let timing = match deadline {
                Some(d) if at > *d => format!("late by {} (deadline {})", human(at - d), format_rfc3339(*d)),
                Some(d) => format!("on time (deadline {}, {} to spare)", format_rfc3339(*d), human(d - at)),
                None => "no deadline".into(),
            };
            let stayed = entered.map(|e| format!(", {} in the previous stage", human(at - e))).unwrap_or_default();
            let jump = match skipped {
                Some(sk) if !sk.is_empty() => {
                    format!(" out of order, skipping {}", sk.iter().map(|x| step(*x)).collect::<Vec<_>>().join(", "))
                }
                _ => String::new(),
            };
            format!("took {}{jump}: {timing}{stayed}", step(*s))
        }
        TraceWhat::FilledIn { step: s } => format!("filled in skipped step {} (no record)", step(*s)),
        TraceWhat::Duplicate { step: s } => format!("duplicate: {} was already taken", step(*s)),
        TraceWhat::OutOfOrder { step: s, dropped: true } => {
            format!("out of order for {}: dropped (`on out_of_order drop`)", step(*s))
        }
        TraceWhat::OutOfOrder { step: s, .. } => format!("out of order record for {}", step(*s)),
        TraceWhat::Unexpected => "unexpected: matches no step the item could still take (or starts none)".into(),
        TraceWhat::Irrelevant => {
            "ignored: the step's own `where` was false, so the event is not for this workflow".into()
        }
        TraceWhat::Redelivery => "ignored: an event with this id was already processed (redelivery)".into(),
        TraceWhat::Missing { step: s, deadline } => {
            format!("MISSING {}: deadline {} passed", step(*s), format_rfc3339(*deadline))
        }
        TraceWhat::AtRisk { step: s, deadline } => {
            format!("AT RISK {}: deadline {}", step(*s), format_rfc3339(*deadline))
        }
        TraceWhat::Late { step: s, delay_ms, .. } => format!("LATE {} by {}", step(*s), human(*delay_ms)),
        TraceWhat::Early { step: s, earliest } => {
            format!("EARLY {}: not expected before {}", step(*s), format_rfc3339(*earliest))
        }
    }
}
