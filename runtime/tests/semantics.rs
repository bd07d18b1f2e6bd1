//! Focused engine cases found in review: each names the rule it protects.

use mon_compiler::ir::Outcome;
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::simulate::Simulation;
use mon_runtime::Record;

fn run(rules: &str, lines: &[&str], until: Option<&str>) -> Vec<Record> {
    let sources = vec![SourceFile { path: "r.mon".into(), text: rules.into() }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    let codes: Vec<&str> = compilation.diagnostics.iter().map(|d| d.kind.code().id).collect();
    let program = compilation.program.unwrap_or_else(|| panic!("rules do not compile: {codes:?}"));
    let until = until.and_then(mon_stdlib::time::parse_rfc3339);
    let mut simulation = Simulation::new(&program, mon_stdlib::registry(), None, until);
    let mut records = Vec::new();
    for line in lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    records
}

fn event(kind: &str, id: &str, time: &str, data: &str) -> String {
    format!(r#"{{"type":"{kind}","id":"{id}","time":"{time}","data":{data}}}"#)
}

fn summary(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let caused = r.caused_by.as_ref().map(|c| format!(" caused_by={c}")).unwrap_or_default();
            format!(
                "{} {}.{} at {}{caused}",
                r.kind.name(),
                r.workflow.as_deref().unwrap_or("-"),
                r.step.as_deref().unwrap_or("-"),
                mon_stdlib::time::format_rfc3339(r.at)
            )
        })
        .collect()
}

#[test]
fn a_flow_ending_in_an_optional_step_completes_and_the_step_may_still_fill_in() {
    let rules = "event a { id: string }\nevent b { id: string }\nevent c { id: string }\n\
                 workflow w { key id; expect a; then b within 1m; then maybe c }";
    let lines = [
        event("a", "1", "2026-03-02T08:00:00Z", r#"{"id":"x"}"#),
        event("b", "2", "2026-03-02T08:00:30Z", r#"{"id":"x"}"#),
        event("c", "3", "2026-03-02T08:05:00Z", r#"{"id":"x"}"#),
    ];
    let sources = vec![SourceFile { path: "r.mon".into(), text: rules.into() }];
    let program = compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles");
    let mut simulation = Simulation::new(&program, mon_stdlib::registry(), None, None);
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    assert!(records.is_empty(), "the optional tail fills in silently: {:?}", summary(&records));

    // No records is also what a run that dropped every event would give, so
    // the instance itself must show that each event took its step.
    let at = |t: &str| mon_stdlib::time::parse_rfc3339(t);
    let workflow = program.workflow("w").expect("workflow w");
    let step = |name: &str| workflow.steps.iter().find(|s| s.name == name).expect("step").id;
    let engine = simulation.engine().expect("the events started the engine");
    let instance = engine.instance(0, "x").expect("the instance of key x is held after it closed");
    assert_eq!(instance.time(step("a")), at("2026-03-02T08:00:00Z"), "a started the instance");
    assert_eq!(instance.time(step("b")), at("2026-03-02T08:00:30Z"), "b took its step");
    assert_eq!(
        instance.closed().map(|(outcome, when)| (outcome, Some(when))),
        Some((Outcome::Success, at("2026-03-02T08:00:30Z"))),
        "b, the last required step, closed the instance with success"
    );
    assert_eq!(instance.time(step("c")), at("2026-03-02T08:05:00Z"), "c filled in after the close");
    assert_eq!((simulation.rejected, simulation.ignored), (0, 0), "every event reached the workflow");
}

#[test]
fn an_upstream_missing_at_the_same_instant_causes_the_downstream_one_whatever_the_declaration_order() {
    // The downstream workflow is declared first, so only the depends-on order
    // can make the upstream's timer fire first.
    let rules = "event report_sent { job: string }\nevent feed_loaded { job: string }\n\
                 workflow report { depends on upstream\n expect report_sent by 08:00 }\n\
                 workflow upstream { expect feed_loaded by 08:00 }";
    let lines = [event("heartbeat", "h", "2026-03-02T07:00:00Z", "{}")];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let records = run(rules, &lines, Some("2026-03-02T09:00:00Z"));
    assert_eq!(
        summary(&records),
        [
            "missing upstream.feed_loaded at 2026-03-02T08:00:00Z",
            "missing report.report_sent at 2026-03-02T08:00:00Z caused_by=upstream",
        ]
    );
}

#[test]
fn a_deadline_already_past_on_entry_is_reported_at_entry_not_back_dated() {
    let rules = "event a { id: string }\nevent b { id: string }\n\
                 workflow w { key id; expect a; then b by 08:00 warn at 07:30 }";
    let lines = [event("a", "1", "2026-03-02T09:00:00Z", r#"{"id":"x"}"#)];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let records = run(rules, &lines, Some("2026-03-02T10:00:00Z"));
    assert_eq!(summary(&records), ["missing w.b at 2026-03-02T09:00:00Z"]);
    assert_eq!(records[0].deadline, mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z"));
}

#[test]
fn taking_one_start_of_an_occurrence_clears_the_other_alternative() {
    let rules = "event fa { job: string }\nevent fb { job: string }\nevent done { job: string }\n\
                 workflow feed { start x: fa by 08:00; start y: fb by 08:00; step z: done after x | y within 1h }";
    let sources = vec![SourceFile { path: "r.mon".into(), text: rules.into() }];
    let program = compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles");
    let mut simulation = Simulation::new(&program, mon_stdlib::registry(), None, None);
    let mut records = Vec::new();
    simulation.feed(&event("heartbeat", "h", "2026-03-02T07:00:00Z", "{}"), &mut records);
    simulation.feed(&event("fa", "1", "2026-03-02T08:10:00Z", r#"{"job":"j"}"#), &mut records);
    let kinds = summary(&records);
    // Both starts were due at 08:00 and went missing; `fa` then came late.
    assert_eq!(
        kinds,
        [
            "missing feed.x at 2026-03-02T08:00:00Z",
            "missing feed.y at 2026-03-02T08:00:00Z",
            "late feed.x at 2026-03-02T08:10:00Z"
        ]
    );
    // `y` was the alternative: once `x` happened, nothing is missing any more.
    let engine = simulation.engine().expect("engine");
    let metrics =
        mon_runtime::aggregates::metrics(&engine.state, &program.workflows[0], &Default::default(), engine.state.clock);
    assert_eq!(metrics.missing, 0, "{metrics:?}");
}

#[test]
fn in_mon_test_an_event_exactly_at_its_deadline_is_on_time_as_in_simulate() {
    let rules = r#"
event file_received { job: string }
workflow feed { expect file_received by 08:00 }
test "on the stroke of eight" {
  at 2026-03-02T06:00:00Z
  advance to 2026-03-02T08:00:00Z
  event file_received { job: "j" }
  expect no missing feed.file_received
  expect stage feed for { date: 2026-03-02 } file_received
}
test "at eight with no file, it is missing" {
  at 2026-03-02T06:00:00Z
  advance to 2026-03-02T08:00:00Z
  expect missing feed.file_received
}
"#;
    let sources = vec![SourceFile { path: "r.mon".into(), text: rules.into() }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    let program = compilation.program.expect("compiles");
    assert_eq!(compilation.tests.len(), 2);
    for test in &compilation.tests {
        let result = mon_runtime::testing::run_test(&program, mon_stdlib::registry(), test);
        assert!(result.is_ok(), "{}: {result:?}", test.name);
    }
}

#[test]
fn a_rejected_line_of_a_file_names_its_number_and_keeps_the_id_it_has_live() {
    let sources = vec![SourceFile {
        path: "r.mon".into(),
        text: "event a { id: string }\nworkflow w { key id; expect a }".into(),
    }];
    let program = compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles");
    let decoder = mon_runtime::Decoder::new(&program);
    let mut simulation = Simulation::new(&program, mon_stdlib::registry(), None, None);
    let mut records = Vec::new();
    simulation.feed(&event("a", "1", "2026-03-02T08:00:00Z", r#"{"id":"x"}"#), &mut records);
    simulation.feed_decoded(&decoder.decode("{oops"), Some(3), &mut records);
    simulation.feed_decoded(&decoder.decode("{oops"), Some(5), &mut records);
    simulation.reject("type unknown: the line is not valid UTF-8", Some(6), &mut records);
    simulation.feed("{oops", &mut records);
    let lines: Vec<Option<u64>> = records.iter().map(|r| r.line).collect();
    assert_eq!(lines, [Some(3), Some(5), Some(6), None], "a line fed without a number has none");
    assert_eq!(records[0].id, records[3].id, "the line's number is not part of the record's identity");
    let at = mon_stdlib::time::parse_rfc3339("2026-03-02T08:00:00Z");
    assert!(records.iter().all(|r| Some(r.at) == at), "made at the clock: the last event's time");
}
