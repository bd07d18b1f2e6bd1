//! `mon test`: running the `test` blocks of a program on a virtual clock.
//!
//! Each test gets a fresh engine that starts monitoring at the test's first
//! `at` (or its first event). Expectations are checked against the records
//! made so far and the engine's state at the current instant; a failure
//! says what was expected and what happened instead.

use std::collections::BTreeMap;

use mon_compiler::ir::{Expectation, FieldType, Program, TestCase, TestStepKind, Value};
use mon_compiler::Functions;

use crate::aggregates::{self, Slice};
use crate::engine::{display, key_object, Engine};
use crate::event::Event;
use crate::record::Record;

/// One failed expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Byte span of the failing statement in the test's file.
    pub span: (usize, usize),
    pub expected: String,
    pub found: String,
}

/// Runs one test; `Err` lists its failures (all of them: a test goes on
/// after a failed expectation, so one run shows everything).
pub fn run_test(program: &Program, functions: &dyn Functions, test: &TestCase) -> Result<(), Vec<Failure>> {
    let start = test.steps.iter().find_map(|s| match &s.kind {
        TestStepKind::At(t) | TestStepKind::AdvanceTo(t) => Some(*t),
        TestStepKind::Event { at: Some(t), .. } => Some(*t),
        _ => None,
    });
    let mut engine = Engine::new(program, functions, start.unwrap_or(0));
    let mut records: Vec<Record> = Vec::new();
    let mut now = start.unwrap_or(0);
    let mut failures = Vec::new();
    let mut generated = 0;
    for step in &test.steps {
        match &step.kind {
            // Moving the clock fires timers due before the new instant; those
            // due at it fire only before an expectation looks, so an event
            // at exactly its deadline is on time here as in `mon simulate`.
            TestStepKind::At(t) | TestStepKind::AdvanceTo(t) => {
                now = now.max(*t);
                engine.advance(now, false, &mut records);
            }
            TestStepKind::AdvanceBy(ms) => {
                now = crate::engine::after(now, *ms);
                engine.advance(now, false, &mut records);
            }
            TestStepKind::Event { event_type, fields, at, id } => {
                let time = at.unwrap_or(now);
                generated += 1;
                let event = Event {
                    id: id.clone().unwrap_or_else(|| format!("test-event-{generated}")).into(),
                    event_type: *event_type,
                    time,
                    fields: fields.clone(),
                };
                engine.advance(time, false, &mut records);
                engine.process(&event, &mut records);
                now = now.max(time);
            }
            TestStepKind::Expect(expectation) => {
                engine.advance(now, true, &mut records);
                if let Err((expected, found)) = check(program, &engine, &records, expectation, now) {
                    failures.push(Failure { span: step.span, expected, found });
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Whether a key object (as records carry it) matches a key given in a
/// test; a scheduled workflow's `date` is compared as a date.
fn key_matches(
    workflow: &mon_compiler::ir::Workflow,
    object: &BTreeMap<String, String>,
    key: &[(String, Value)],
) -> bool {
    key.iter().all(|(name, value)| {
        let ty = workflow.key.iter().find(|k| &k.name == name).map_or(FieldType::Date, |k| k.ty.clone());
        object.get(name).is_some_and(|v| *v == display(value, &ty))
    })
}

fn describe_records(records: &[&Record]) -> String {
    if records.is_empty() {
        return "no records".into();
    }
    let shown: Vec<String> = records
        .iter()
        .take(6)
        .map(|r| {
            let step = r.step.as_deref().map(|s| format!(".{s}")).unwrap_or_default();
            let alert = if r.is_alert() { " (alert)" } else { "" };
            let delay = r.delay_ms.map(|d| format!(" by {d}ms")).unwrap_or_default();
            format!("{} {}{step}{delay}{alert}", r.kind.name(), r.workflow.as_deref().unwrap_or("-"))
        })
        .collect();
    let more = if records.len() > 6 { format!(" and {} more", records.len() - 6) } else { String::new() };
    format!("records: {}{more}", shown.join(", "))
}

fn check(
    program: &Program,
    engine: &Engine,
    records: &[Record],
    expectation: &Expectation,
    now: i64,
) -> Result<(), (String, String)> {
    let workflow_name = |w: u32| program.workflows[w as usize].name.clone();
    let step_name = |w: u32, s: u32| program.workflows[w as usize].steps[s as usize].name.clone();
    match expectation {
        Expectation::Record { alert, kind, workflow, step, delay_ms, key } => {
            let target = match step {
                Some(s) => format!("{}.{}", workflow_name(*workflow), step_name(*workflow, *s)),
                None => workflow_name(*workflow),
            };
            let related: Vec<&Record> =
                records.iter().filter(|r| r.workflow.as_deref() == Some(&workflow_name(*workflow))).collect();
            let found = related.iter().any(|r| {
                r.kind == *kind
                    && (!alert || r.is_alert())
                    && step.is_none_or(|s| r.step.as_deref() == Some(&step_name(*workflow, s)))
                    && delay_ms.is_none_or(|d| r.delay_ms == Some(d as i64))
                    && key.as_ref().is_none_or(|k| {
                        r.key.as_ref().is_some_and(|o| key_matches(&program.workflows[*workflow as usize], o, k))
                    })
            });
            if found {
                return Ok(());
            }
            let what = if *alert { format!("an alert `{kind}`") } else { format!("a `{kind}` record") };
            let delay = delay_ms.map(|d| format!(" late by {d}ms")).unwrap_or_default();
            Err((format!("{what} for {target}{delay}"), describe_records(&related)))
        }
        Expectation::NoRecord { alert, kind, workflow, step } => {
            let matching: Vec<&Record> = records
                .iter()
                .filter(|r| !alert || r.is_alert())
                .filter(|r| kind.is_none_or(|k| r.kind == k))
                .filter(|r| workflow.is_none_or(|w| r.workflow.as_deref() == Some(&workflow_name(w))))
                .filter(|r| match (workflow, step) {
                    (Some(w), Some(s)) => r.step.as_deref() == Some(&step_name(*w, *s)),
                    _ => true,
                })
                .collect();
            if matching.is_empty() {
                return Ok(());
            }
            let what = match (alert, kind) {
                (true, Some(k)) => format!("no alert `{k}`"),
                (true, None) => "no alert".to_string(),
                (false, Some(k)) => format!("no `{k}` record"),
                (false, None) => "no record".to_string(),
            };
            Err((what, describe_records(&matching)))
        }
        Expectation::Status { workflow, stage, color } => {
            let w = &program.workflows[*workflow as usize];
            let status = aggregates::status(&engine.state, w, &Slice { stage: *stage, group: None }, now);
            if status == *color {
                return Ok(());
            }
            let m = aggregates::metrics(&engine.state, w, &Slice { stage: *stage, group: None }, now);
            Err((
                format!("status {color}"),
                format!(
                    "status {} (missing {}, at_risk {}, late {}, failed {}, in_flight {})",
                    status, m.missing, m.at_risk, m.late, m.failed, m.in_flight
                ),
            ))
        }
        Expectation::Stage { workflow, key, stage } => {
            let w = &program.workflows[*workflow as usize];
            let wanted = step_name(*workflow, *stage);
            let instance = engine.instances(*workflow).find(|(k, _)| key_matches(w, &key_object(w, k), key));
            match instance {
                Some((_, i)) if i.stage == Some(*stage) => Ok(()),
                Some((_, i)) => {
                    let at = i.stage.map_or("no stage yet (not started)".to_string(), |s| {
                        format!("stage {}", step_name(*workflow, s))
                    });
                    Err((format!("stage {wanted}"), at))
                }
                None => Err((format!("stage {wanted}"), "no instance with that key".into())),
            }
        }
        Expectation::Count { metric, workflow, stage, op, value } => {
            let w = &program.workflows[*workflow as usize];
            let m = aggregates::metrics(&engine.state, w, &Slice { stage: *stage, group: None }, now);
            let actual = m.count(*metric) as i64;
            let ok = op.holds(actual, *value);
            if ok {
                Ok(())
            } else {
                Err((format!("count {metric} {op} {value}"), format!("count {metric} is {actual}")))
            }
        }
    }
}
