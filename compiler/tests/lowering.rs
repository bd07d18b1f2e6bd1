//! What the compiler decides about a workflow's state machine: sources of
//! each step (including optional steps), closing stages and outcomes, the
//! split of `where` into relevance and guard, kept fields, schedules,
//! timing, and the per-event candidate table.

use mon_compiler::ir::{self, Expr, Outcome, Program, Warn};
use mon_compiler::{compile, NoFunctions, NoSchemas, SourceFile};

fn program(text: &str) -> Program {
    let sources = vec![SourceFile { path: "test.mon".into(), text: text.into() }];
    let compilation = compile(&sources, &NoFunctions, &NoSchemas);
    let codes: Vec<&str> = compilation.diagnostics.iter().map(|d| d.kind.code().id).collect();
    compilation.program.unwrap_or_else(|| panic!("expected a program, got {codes:?}"))
}

fn step<'a>(w: &'a ir::Workflow, name: &str) -> &'a ir::Step {
    w.steps.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step {name}"))
}

fn names(w: &ir::Workflow, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&i| w.steps[i as usize].name.clone()).collect()
}

const EVENTS: &str = "
event a { id: string, amount: float }
event b { id: string, amount: float, status: enum { ACK, NACK } }
event c { id: string }
event d { id: string }
";

#[test]
fn then_maybe_lets_the_next_step_follow_either() {
    let p =
        program(&format!("{EVENTS}\nworkflow w {{ key id; expect a; then maybe b; then maybe c; then d within 5m }}"));
    let w = &p.workflows[0];
    assert_eq!(names(w, &step(w, "b").sources), ["a"]);
    assert_eq!(names(w, &step(w, "c").sources), ["a", "b"]);
    assert_eq!(names(w, &step(w, "d").sources), ["a", "b", "c"]);
    assert!(step(w, "b").optional && step(w, "c").optional && !step(w, "d").optional);
    // d's deadline is armed from every stage it may follow.
    for stage in ["a", "b", "c"] {
        let s = w.stages.iter().find(|s| s.name == stage).expect("stage");
        assert!(names(w, &s.timers).contains(&"d".to_string()), "{stage} arms d");
    }
}

#[test]
fn alternatives_outcomes_and_closing_stages() {
    let p = program(&format!(
        "{EVENTS}
workflow w {{
  key id
  start got: a
  step acked: b where status == ACK after got within 5m warn 3m
  step nacked: b where status == NACK after got -> failure
  step done: c after acked -> success
}}"
    ));
    let w = &p.workflows[0];
    let got = &w.stages[0];
    assert_eq!(names(w, &got.outgoing), ["acked", "nacked"]);
    assert_eq!(names(w, &got.timers), ["acked"], "only timed steps arm timers");
    assert_eq!(got.closes, None);
    assert_eq!(w.stages[2].closes, Some(Outcome::Failure));
    assert_eq!(w.stages[3].closes, Some(Outcome::Success));
    assert_eq!(step(w, "acked").timing.within_ms, Some(300_000));
    assert_eq!(step(w, "acked").timing.warn, Some(Warn::After(180_000)));
}

#[test]
fn a_stage_without_outgoing_steps_closes_with_success() {
    let p = program(&format!("{EVENTS}\nworkflow w {{ key id; expect a; then b }}"));
    let w = &p.workflows[0];
    assert_eq!(w.stages[0].closes, None);
    assert_eq!(w.stages[1].closes, Some(Outcome::Success));
}

#[test]
fn where_splits_into_relevance_and_guard_and_keeps_only_read_fields() {
    let p = program(&format!(
        "{EVENTS}
workflow w {{
  key id
  start placed: a
  step booked: b where status == ACK and amount == placed.amount after placed
}}"
    ));
    let w = &p.workflows[0];
    let booked = step(w, "booked");
    let relevance = booked.relevance.as_ref().expect("relevance");
    assert!(
        matches!(relevance, Expr::Binary { op: ir::BinaryOp::Eq, lhs, .. } if **lhs == Expr::Field(2)),
        "{relevance:?}"
    );
    let guard = booked.guard.as_ref().expect("guard");
    assert!(
        matches!(guard, Expr::Binary { rhs, .. } if **rhs == Expr::Kept { step: 0, slot: 1 }),
        "guard reads placed.amount: {guard:?}"
    );
    assert_eq!(w.kept, vec![ir::KeptField { step: 0, slot: 1 }]);
}

#[test]
fn key_mapping_picks_the_slot_per_event() {
    let p = program(
        "event trade { trade_id: string, book: string }
         event reply { book: string, ref: string }
         workflow w { key trade_id = reply.ref; expect trade; then reply }",
    );
    let key = &p.workflows[0].key[0];
    assert_eq!(key.name, "trade_id");
    assert_eq!(key.slots, vec![(0, 0), (1, 1)]);
}

#[test]
fn a_start_with_by_schedules_the_workflow() {
    let p = program(
        "calendar hols { 2026-12-25 }
         event file_received { job: string, date: date }
         event file_loaded { job: string, date: date }
         workflow feed {
           timezone Europe/London
           cohort date
           expect file_received by 08:00 warn at 07:45 every weekday except hols open 06:00
           then file_loaded within 30m
         }",
    );
    let w = &p.workflows[0];
    let schedule = w.schedule.as_ref().expect("scheduled");
    assert_eq!(schedule.weekdays, 0b0011111);
    assert_eq!(schedule.except, vec![0]);
    assert_eq!(schedule.open_seconds, 6 * 3600);
    assert_eq!(schedule.cohort, vec![(0, 1), (1, 1)]);
    assert!(w.key.is_empty());
    let by = step(w, "file_received").timing.by.as_ref().expect("by");
    assert_eq!((by.seconds, by.zone.as_str(), by.day_offset), (8 * 3600, "Europe/London", 0));
    assert!(matches!(&step(w, "file_received").timing.warn, Some(Warn::At(at)) if at.seconds == 7 * 3600 + 45 * 60));
    assert_eq!(p.calendars[0].dates, vec![20812]);
}

#[test]
fn an_event_type_used_by_two_steps_counts_once_for_group_by_and_cohort() {
    // Steps on a, b and a again: the event types list holds a twice, apart.
    let p = program(&format!(
        "{EVENTS}
workflow grouped {{ key id; group by amount; start s: a; step t: b after s; step u: a after t }}
workflow scheduled {{
  cohort day
  start s: e by 08:00
  step t: f after s
  step u: e after t
}}
event e {{ day: date }}
event f {{ day: date }}"
    ));
    let (a, b) = (p.event_id("a").expect("a"), p.event_id("b").expect("b"));
    assert_eq!(p.workflow("grouped").expect("grouped").group_by[0].slots, vec![(a, 1), (b, 1)]);
    let (e, f) = (p.event_id("e").expect("e"), p.event_id("f").expect("f"));
    let schedule = p.workflow("scheduled").expect("scheduled").schedule.clone().expect("scheduled");
    assert_eq!(schedule.cohort, vec![(e, 0), (f, 0)]);
}

#[test]
fn by_with_a_zone_and_a_day_offset() {
    let p = program(&format!("{EVENTS}\nworkflow w {{ key id; expect a; then b by 09:30 America/New_York +1d }}"));
    let by = step(&p.workflows[0], "b").timing.by.clone().expect("by");
    assert_eq!((by.seconds, by.zone.as_str(), by.day_offset), (9 * 3600 + 1800, "America/New_York", 1));
}

#[test]
fn candidates_list_every_step_an_event_can_take() {
    let p = program(&format!(
        "{EVENTS}
workflow w1 {{ key id; expect a; then b }}
workflow w2 {{ key id; start s: c; step t: b after s; step u: a after t }}"
    ));
    let b = p.event_id("b").expect("b") as usize;
    let pairs: Vec<(u32, u32)> = p.candidates[b].iter().map(|c| (c.workflow, c.step)).collect();
    assert_eq!(pairs, vec![(0, 1), (1, 1)]);
    assert!(p.candidates[p.event_id("d").expect("d") as usize].is_empty());
}

#[test]
fn defaults_fill_in_what_the_workflow_does_not_say() {
    let p = program(&format!("{EVENTS}\nworkflow w {{ key id; expect a; then b within 1m }}"));
    let w = &p.workflows[0];
    assert_eq!(w.retain_ms, 7 * 86_400_000);
    assert_eq!(w.aging_ms, vec![60_000, 300_000, 900_000, 3_600_000]);
    assert_eq!(w.alerting.severity, ir::Severity::High);
    assert_eq!(w.timezone, "UTC");
    assert_eq!(
        (w.on_out_of_order, w.on_duplicate, w.on_unexpected),
        (ir::Handling::Flag, ir::Handling::Flag, ir::Handling::Flag)
    );
    assert_eq!((w.status.red.len(), w.status.amber.len()), (1, 1));
}

#[test]
fn step_settings_override_the_workflow() {
    let p = program(&format!(
        "{EVENTS}
channel ops email \"ops@example.com\"
channel pager pagerduty secret(\"KEY\")
workflow w {{
  key id
  severity low
  notify ops
  grace 30s
  expect a
  then b within 1m severity critical notify pager grace 1m
  then c within 1m
}}"
    ));
    let w = &p.workflows[0];
    let b = step(w, "b");
    assert_eq!(b.alerting.severity, ir::Severity::Critical);
    assert_eq!(b.alerting.notify.iter().map(|n| n.channel).collect::<Vec<_>>(), vec![1]);
    assert_eq!(b.grace_ms, 60_000);
    let c = step(w, "c");
    assert_eq!((c.alerting.severity, c.grace_ms), (ir::Severity::Low, 30_000));
    assert_eq!(p.channels[1].targets, vec![ir::ChannelTarget::Secret("KEY".into())]);
}

#[test]
fn the_hash_ignores_layout_and_comments_but_not_meaning() {
    let base = format!("{EVENTS}\nworkflow w {{ key id; expect a; then b within 5m }}");
    let spaced = format!("{EVENTS}\n// a comment\nworkflow w {{\n  key id\n\n  expect a\n  then b within 300s\n}}\n");
    let changed = format!("{EVENTS}\nworkflow w {{ key id; expect a; then b within 6m }}");
    assert_eq!(program(&base).hash(), program(&spaced).hash());
    assert_ne!(program(&base).hash(), program(&changed).hash());
}

const CHANNELS: &str = "
channel ops email \"ops@example.com\"
channel lead email \"lead@example.com\"
channel pager pagerduty secret(\"KEY\")
";

/// `(after_ms, channel)` of each escalation of a step.
fn escalations(s: &ir::Step) -> Vec<(u64, u32)> {
    s.alerting.escalate.iter().map(|e| (e.after_ms, e.channel)).collect()
}

#[test]
fn escalations_add_up_and_a_step_replaces_them_like_notify() {
    let p = program(&format!(
        "{EVENTS}{CHANNELS}
workflow w {{
  key id
  notify ops
  escalate after 15m to lead
  escalate after 1h to pager
  expect a
  then b within 1m escalate after 5m to pager
  then c within 1m escalate after 30s to ops escalate after 2m to lead
  then d within 1m notify lead
}}"
    ));
    let w = &p.workflows[0];
    assert_eq!(
        w.alerting.escalate.iter().map(|e| (e.after_ms, e.channel)).collect::<Vec<_>>(),
        [(900_000, 1), (3_600_000, 2)]
    );
    assert_eq!(escalations(step(w, "a")), [(900_000, 1), (3_600_000, 2)], "a step without escalate inherits");
    assert_eq!(escalations(step(w, "b")), [(300_000, 2)], "the first escalate of a step replaces");
    assert_eq!(escalations(step(w, "c")), [(30_000, 0), (120_000, 1)], "the next ones add to it");
    // `notify` and `escalate` are replaced each on its own.
    assert_eq!(escalations(step(w, "d")), [(900_000, 1), (3_600_000, 2)]);
    assert_eq!(step(w, "d").alerting.notify.iter().map(|n| n.channel).collect::<Vec<_>>(), [1]);
    assert_eq!(step(w, "b").alerting.notify.iter().map(|n| n.channel).collect::<Vec<_>>(), [0]);
}

#[test]
fn an_escalation_to_an_unknown_channel_is_e205_with_a_suggestion() {
    let text =
        format!("{EVENTS}{CHANNELS}\nworkflow w {{ key id; expect a; then b within 1m escalate after 5m to pagr }}");
    let sources = vec![SourceFile { path: "test.mon".into(), text: text.clone() }];
    let compilation = compile(&sources, &NoFunctions, &NoSchemas);
    assert!(compilation.program.is_none());
    let [d] = compilation.diagnostics.as_slice() else { panic!("one diagnostic: {:?}", compilation.diagnostics) };
    assert_eq!(
        d.kind,
        mon_compiler::DiagnosticKind::UnknownChannel { name: "pagr".into(), suggestion: Some("pager".into()) }
    );
    assert_eq!(&text[d.span.start..d.span.end], "pagr");
}

#[test]
fn a_program_without_escalate_serialises_as_before() {
    let p = program(&format!("{EVENTS}{CHANNELS}\nworkflow w {{ key id; notify ops; expect a; then b within 1m }}"));
    let json = serde_json::to_string(&p).expect("serialises");
    assert!(!json.contains("escalate"), "{json}");
    let escalating =
        program(&format!("{EVENTS}{CHANNELS}\nworkflow w {{ key id; notify ops; escalate after 1h to pager; expect a; then b within 1m }}"));
    assert_ne!(p.hash(), escalating.hash());
}

/// The E418 warnings of a program: the escalated channel and the text at
/// the warning's related span (the `notify` that names it).
fn escalation_warnings(workflow: &str) -> Vec<(String, String)> {
    let text = format!("{EVENTS}{CHANNELS}\n{workflow}");
    let sources = vec![SourceFile { path: "test.mon".into(), text: text.clone() }];
    let compilation = compile(&sources, &NoFunctions, &NoSchemas);
    assert!(compilation.program.is_some(), "warnings keep the program: {:?}", compilation.diagnostics);
    compilation
        .diagnostics
        .iter()
        .map(|d| match &d.kind {
            mon_compiler::DiagnosticKind::EscalationToNotified { channel } => {
                let related = d.related.first().map_or("", |r| &text[r.span.start..r.span.end]);
                (channel.clone(), related.to_string())
            }
            other => panic!("only E418 expected, not {other:?}"),
        })
        .collect()
}

#[test]
fn escalating_to_a_channel_already_notified_is_a_warning_once() {
    let warned = |channel: &str, notify: &str| vec![(channel.to_string(), notify.to_string())];
    // At workflow level: reported once, not once per step that inherits it.
    assert_eq!(
        escalation_warnings(
            "workflow w { key id; notify ops, pager; escalate after 1h to pager; expect a; then b within 1m }"
        ),
        warned("pager", "notify ops, pager")
    );
    // A step's escalation to the workflow's channel, and to its own.
    assert_eq!(
        escalation_warnings("workflow w { key id; notify ops; expect a; then b within 1m escalate after 5m to ops }"),
        warned("ops", "notify ops")
    );
    assert_eq!(
        escalation_warnings(
            "workflow w { key id; notify ops; expect a; then b within 1m notify lead escalate after 5m to lead }"
        ),
        warned("lead", "notify lead")
    );
    // Not notified at the alert's severity, or replaced by the step's own
    // `notify`: the escalation reaches someone new.
    assert_eq!(
        escalation_warnings(
            "workflow w { key id; notify pager when severity >= critical; escalate after 1h to pager; expect a }"
        ),
        []
    );
    assert_eq!(
        escalation_warnings(
            "workflow w { key id; notify ops; expect a; then b within 1m notify lead escalate after 5m to ops }"
        ),
        []
    );
}
