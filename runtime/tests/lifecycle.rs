//! The lifecycle model (`mon_runtime::lifecycle`): the items an event
//! names are the ones the engine files it under, and replaying one key's
//! events alone tells the same lifecycle as a replay of the whole stream.

use mon_compiler::ir::Program;
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::engine::item_keys;
use mon_runtime::lifecycle::{self, Trace};
use mon_runtime::simulate::Simulation;
use mon_runtime::{Decoded, Decoder, Event};

const RULES: &str = "
event booked { trade: string, desk: string, trader: string pii }
event confirmed { trade: string, desk: string, status: enum { OK, BAD } }
event settled { trade: string }

workflow trades {
  key trade
  start booked: booked
  step confirmed: confirmed where status == OK after booked within 10m
  step settled: settled after confirmed within 1h -> success
}

workflow desks {
  key desk, trade
  start booked: booked
  step confirmed: confirmed after booked within 1h
}
";

fn program() -> Program {
    let sources = vec![SourceFile { path: "r.mon".into(), text: RULES.into() }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    let codes: Vec<&str> = compilation.diagnostics.iter().map(|d| d.kind.code().id).collect();
    compilation.program.unwrap_or_else(|| panic!("rules do not compile: {codes:?}"))
}

fn line(kind: &str, id: &str, time: &str, data: &str) -> String {
    format!(r#"{{"type":"{kind}","id":"{id}","time":"{time}","data":{data}}}"#)
}

/// A stream with a late step, a turned-away event, a duplicate, a
/// redelivery and a deadline that passes, over two trades.
fn stream() -> Vec<String> {
    vec![
        line("booked", "b1", "2026-03-02T09:00:00Z", r#"{"trade":"T1","desk":"D","trader":"Ann"}"#),
        line("booked", "b2", "2026-03-02T09:01:00Z", r#"{"trade":"T2","desk":"D","trader":"Bob"}"#),
        line("confirmed", "c0", "2026-03-02T09:05:00Z", r#"{"trade":"T1","desk":"D","status":"BAD"}"#),
        line("confirmed", "c1", "2026-03-02T09:20:00Z", r#"{"trade":"T1","desk":"D","status":"OK"}"#),
        line("booked", "b3", "2026-03-02T09:21:00Z", r#"{"trade":"T1","desk":"D","trader":"Ann"}"#),
        line("confirmed", "c1", "2026-03-02T09:20:00Z", r#"{"trade":"T1","desk":"D","status":"OK"}"#),
        line("settled", "s2", "2026-03-02T11:00:00Z", r#"{"trade":"T2"}"#),
    ]
}

fn decoded(program: &Program, lines: &[String]) -> Vec<Event> {
    let decoder = Decoder::new(program);
    lines
        .iter()
        .map(|l| match decoder.decode(l) {
            Decoded::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        })
        .collect()
}

#[test]
fn the_items_an_event_names_are_the_instances_the_engine_keeps() {
    let program = program();
    let events = decoded(&program, &stream()[..1]);
    let keys = item_keys(&program, &events[0]);
    assert_eq!(keys, vec![(0, "T1".to_string()), (1, "D\u{1f}T1".to_string())]);
    let mut simulation = Simulation::new(&program, mon_stdlib::registry(), None, None);
    let mut records = Vec::new();
    simulation.feed_decoded(&Decoded::Event(events[0].clone()), None, &mut records);
    let engine = simulation.engine().unwrap();
    for (workflow, key) in keys {
        assert!(engine.instance(workflow, &key).is_some(), "no instance of {workflow} for {key:?}");
    }
    // `settled` moves only `trades`: `desks` never files it.
    let settled = decoded(&program, &stream()[6..])[0].clone();
    assert_eq!(item_keys(&program, &settled), vec![(0, "T2".to_string())]);
}

#[test]
fn one_keys_events_alone_tell_the_lifecycle_of_the_whole_stream() {
    let program = program();
    let lines = stream();
    let mut whole = Simulation::new(&program, mon_stdlib::registry(), None, None);
    whole.trace_key("T1");
    let mut records = Vec::new();
    for l in &lines {
        whole.feed(l, &mut records);
    }
    let end = whole.finish(&mut records).unwrap();
    let trace = Trace::of(whole.engine().unwrap(), "T1");
    let told = trace.items.iter().find(|i| i.workflow == "trades").expect("trades saw T1");

    let words: Vec<&str> = told.entries.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        words,
        ["took", "irrelevant", "missing", "took", "late", "duplicate", "redelivery", "missing"],
        "{told:#?}"
    );
    assert_eq!(told.hops.iter().map(|h| h.on_time).collect::<Vec<_>>(), [None, Some(false)]);
    assert_eq!(told.hops[1].late_by_ms, Some(10 * 60_000));
    let outcomes: Vec<&str> = told.deadlines.iter().map(|d| d.outcome.as_str()).collect();
    assert_eq!(outcomes, ["missing", "late", "missing"], "confirmed missed at 09:10, then came late");
    assert_eq!(told.stages.iter().map(|s| s.spent_ms).collect::<Vec<_>>(), [20 * 60_000, 100 * 60_000]);
    let state = told.state.as_ref().unwrap();
    assert_eq!(state.waits_for[0].left_ms, Some(-40 * 60_000), "settled was due at 10:20, now is 11:00");
    assert_eq!(told.moved_nothing.len(), 3);
    assert!(!serde_json::to_string(&trace).unwrap().contains("Ann"), "pii never reaches a lifecycle");

    // The service's way: only the events that name T1 in `trades`, in order.
    let all = decoded(&program, &lines);
    let mine: Vec<Event> =
        all.into_iter().filter(|e| item_keys(&program, e).contains(&(0, "T1".to_string()))).collect();
    let workflow = &program.workflows[0];
    let replayed = lifecycle::replay(&program, mon_stdlib::registry(), workflow, "T1", mine, end).unwrap();
    assert_eq!(&replayed, told);
    assert!(trace.render().contains("LATE confirmed by 10m"), "{}", trace.render());
}
