//! Rules and events at the edges of time: durations of millions of days,
//! timestamps in year 9999. The engine saturates instead of overflowing.

use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::simulate::Simulation;

#[test]
fn enormous_durations_and_far_future_clocks_do_not_overflow() {
    let rules = "event a { id: string }\nevent b { id: string }\n\
        workflow w { key id; grace 99999999999d; retain 99999999999d; aging 1m, 99999999999d\n\
        expect a; then b within 99999999999d warn 99999999998d not before 99999999997d }";
    let sources = vec![SourceFile { path: "r.mon".into(), text: rules.into() }];
    let program = compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("compiles");
    let until = mon_stdlib::time::parse_rfc3339("9999-12-31T23:59:59Z");
    let mut simulation = Simulation::new(&program, mon_stdlib::registry(), None, until);
    let mut records = Vec::new();
    simulation.feed(r#"{"type":"a","id":"1","time":"2026-03-02T08:00:00Z","data":{"id":"x"}}"#, &mut records);
    simulation.feed(r#"{"type":"a","id":"2","time":"2026-03-02T08:00:00Z","data":{"id":"y"}}"#, &mut records);
    simulation.feed(r#"{"type":"b","id":"3","time":"9999-12-31T00:00:00Z","data":{"id":"x"}}"#, &mut records);
    simulation.finish(&mut records);
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.name()).collect();
    // `b` for x came "early" relative to an enormous not-before; y is never missing.
    assert_eq!(kinds, ["early"], "{records:?}");
    let engine = simulation.engine().expect("an engine");
    let w = &program.workflows[0];
    let metrics = mon_runtime::aggregates::metrics(&engine.state, w, &Default::default(), i64::MAX);
    assert_eq!(metrics.in_flight, 1);
}
