//! A whole replay of NDJSON lines in one call, and the JSON lines that
//! `mon simulate --format ndjson` prints for it: its records, then the
//! notifications the alert book would send, then one `summary` per
//! workflow.
//!
//! `mon simulate` streams its lines (with a progress bar) and the service's
//! dry-run endpoint collects them; both make their JSON with
//! [`notification_json`] and [`summary_json`] from here and feed lines as
//! [`dry_run`] does, so a dry-run answers exactly what `mon simulate` prints
//! for the same files. This module only replays: reading the lines is the
//! caller's job.

use mon_compiler::ir::Program;
use mon_compiler::Functions;
use mon_stdlib::time::format_rfc3339;
use serde_json::Value;

use crate::aggregates::{self, Slice};
use crate::alerts::{BookConfig, Notification};
use crate::event::{Decoded, Decoder, Event};
use crate::record::Record;
use crate::simulate::Simulation;
use crate::State;

/// How to replay: the `mon simulate` flags that change what comes out.
#[derive(Clone, Debug, Default)]
pub struct DryRunOptions {
    /// `--from`: monitoring starts here (ms); default the first event.
    pub from: Option<i64>,
    /// `--until`: later events are not read; timers up to it fire.
    pub until: Option<i64>,
    /// `--notifications` with its group timings: run the alert book.
    pub alerts: Option<BookConfig>,
}

/// Everything a replay produced.
#[derive(Debug, Default)]
pub struct DryRun {
    pub records: Vec<Record>,
    pub notifications: Vec<Notification>,
    /// One `summary` line per workflow, as [`summary_json`] makes them.
    pub summary: Vec<Value>,
    pub lines: u64,
    pub rejected: u64,
    /// Events of types no rule declares.
    pub ignored: u64,
    /// Where the clock ended (`None`: no event was read).
    pub end: Option<i64>,
}

/// Replays `lines` (one envelope each; blank lines are counted, not fed)
/// through `program`, as `mon simulate` does.
pub fn dry_run<'a>(
    program: &Program,
    functions: &dyn Functions,
    lines: impl IntoIterator<Item = &'a str>,
    options: &DryRunOptions,
) -> DryRun {
    let decoder = Decoder::new(program);
    replay(program, functions, options, |simulation, records| {
        for (index, line) in lines.into_iter().enumerate() {
            let line = line.trim_start_matches('\u{feff}');
            if line.trim().is_empty() {
                continue;
            }
            feed_line(simulation, &decoder, line, index as u64 + 1, records);
        }
    })
}

/// [`dry_run`] over events already decoded for `program` (the service's
/// stored history), in the order given.
pub fn dry_run_events(
    program: &Program,
    functions: &dyn Functions,
    events: impl IntoIterator<Item = Event>,
    options: &DryRunOptions,
) -> DryRun {
    replay(program, functions, options, |simulation, records| {
        for event in events {
            simulation.feed_decoded(&Decoded::Event(event), None, records);
        }
    })
}

/// A simulation set up by `options`, fed by `feed`, finished, and what it made.
fn replay(
    program: &Program,
    functions: &dyn Functions,
    options: &DryRunOptions,
    feed: impl FnOnce(&mut Simulation, &mut Vec<Record>),
) -> DryRun {
    let mut simulation = Simulation::new(program, functions, options.from, options.until);
    if let Some(config) = &options.alerts {
        simulation = simulation.with_alerts(*config);
    }
    let mut records = Vec::new();
    feed(&mut simulation, &mut records);
    let end = simulation.finish(&mut records);
    let summary = simulation.state().map(|state| summary_json(program, &[state], end.unwrap_or(0))).unwrap_or_default();
    DryRun {
        records,
        notifications: std::mem::take(&mut simulation.notifications),
        summary,
        lines: simulation.lines,
        rejected: simulation.rejected,
        ignored: simulation.ignored,
        end,
    }
}

/// Feeds one non-blank line (numbered from 1): the one step both the CLI's
/// streaming loop and [`dry_run`] take per line. Returns the decoded
/// event's type when no rule declares it, for the CLI's report.
pub fn feed_line(
    simulation: &mut Simulation,
    decoder: &Decoder,
    line: &str,
    number: u64,
    out: &mut Vec<Record>,
) -> Option<String> {
    let decoded = decoder.decode(line);
    let undeclared = match &decoded {
        Decoded::Ignored { type_name, .. } => Some(type_name.clone()),
        _ => None,
    };
    simulation.feed_decoded(&decoded, Some(number), out);
    undeclared
}

/// A notification as a `kind: notification` line, instants in RFC 3339.
pub fn notification_json(n: &Notification) -> Value {
    let mut value = serde_json::to_value(n).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("kind".into(), "notification".into());
        object.insert("at".into(), format_rfc3339(n.at).into());
        if let Some(alerts) = object.get_mut("alerts").and_then(|a| a.as_array_mut()) {
            for (alert, brief) in alerts.iter_mut().zip(&n.alerts) {
                alert["opened_at"] = format_rfc3339(brief.opened_at).into();
                if let Some(deadline) = brief.deadline {
                    alert["deadline"] = format_rfc3339(deadline).into();
                }
            }
        }
    }
    value
}

/// The end-of-run `summary` line of each workflow at `now`.
pub fn summary_json(program: &Program, states: &[&State], now: i64) -> Vec<Value> {
    program
        .workflows
        .iter()
        .map(|workflow| {
            let whole = Slice::default();
            let metrics = aggregates::metrics_over(states, workflow, &whole, now);
            let status = aggregates::status_over(states, workflow, &whole, now);
            serde_json::json!({
                "kind": "summary", "workflow": workflow.name, "status": status, "at": format_rfc3339(now), "metrics": metrics,
            })
        })
        .collect()
}
