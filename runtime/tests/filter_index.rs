//! The filter index changes speed, not records: the same random streams
//! through the engine with the index on and off give the same records in
//! the same order (issue 13).

use mon_compiler::{compile, ir::Program, NoSchemas, SourceFile};
use mon_runtime::{Decoded, Decoder, Engine, Record};
use proptest::prelude::*;

/// Workflows whose relevance the index files under a value (`==` on a
/// string, `in` a list, an enum), one it cannot (`!=`, a number), and one
/// with no `where`, sharing event types and keys so that events meet
/// several workflows, strays and duplicates.
const RULES: &str = r#"
event file_received { job_id: string, file_id: string, size: int, kind: enum { FULL, DELTA } }
event file_loaded { job_id: string, file_id: string, rows: int }

workflow job_a {
  key file_id
  start received: file_received where job_id == "A"
  step loaded: file_loaded where job_id == "A" after received within 10m -> success
}
workflow job_b_or_c {
  key file_id
  start received: file_received where job_id in ["B", "C"] and size > 10
  step loaded: file_loaded where "B" == job_id after received within 5m warn 3m -> success
  step reloaded: file_loaded where job_id == "C" after received within 5m -> success
}
workflow full_files {
  key file_id
  start received: file_received where kind == FULL
  step loaded: file_loaded after received within 2m -> success
}
workflow not_a {
  key file_id
  start received: file_received where job_id != "A"
  step loaded: file_loaded where rows > 3 after received within 4m -> success
}
workflow big {
  key job_id
  start received: file_received where size == 50
  step loaded: file_loaded after received within 1m -> success
}
"#;

fn program() -> Program {
    let sources = vec![SourceFile { path: "r.mon".into(), text: RULES.into() }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    compilation.program.expect("the rules compile")
}

fn line(n: usize, loaded: bool, job: &str, file: u8, number: u8, full: bool, at: u32) -> String {
    let time = mon_stdlib::time::format_rfc3339(1_772_438_400_000 + i64::from(at) * 1_000);
    let data = if loaded {
        format!(r#"{{"job_id":"{job}","file_id":"F{file}","rows":{number}}}"#)
    } else {
        let kind = if full { "FULL" } else { "DELTA" };
        format!(r#"{{"job_id":"{job}","file_id":"F{file}","size":{number},"kind":"{kind}"}}"#)
    };
    let kind = if loaded { "file_loaded" } else { "file_received" };
    format!(r#"{{"type":"{kind}","id":"E{n}","time":"{time}","data":{data}}}"#)
}

fn run(program: &Program, lines: &[String], index: bool) -> Vec<String> {
    let decoder = Decoder::new(program);
    let mut engine = Engine::new(program, mon_stdlib::registry(), 1_772_438_400_000);
    engine.set_filter_index(index);
    let mut out: Vec<Record> = Vec::new();
    let mut last = 0;
    for line in lines {
        if let Decoded::Event(event) = decoder.decode(line) {
            engine.advance(event.time, false, &mut out);
            engine.process(&event, &mut out);
            last = last.max(event.time);
        }
    }
    engine.advance(last + 86_400_000, true, &mut out);
    out.iter().map(|r| serde_json::to_string(r).expect("a record serialises")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_are_the_same_with_the_index_and_without(
        events in prop::collection::vec(
            (any::<bool>(), prop::sample::select(vec!["A", "B", "C", "D", ""]), 0u8..6, prop::sample::select(vec![5u8, 11, 50]), any::<bool>(), 0u32..40),
            1..60,
        ),
        repeat in 0usize..4,
    ) {
        let program = program();
        let mut at = 0;
        let mut lines: Vec<String> = Vec::new();
        for (n, (loaded, job, file, number, full, gap)) in events.into_iter().enumerate() {
            at += gap;
            lines.push(line(n, loaded, job, file, number, full, at));
        }
        // A redelivered event, as at-least-once delivery sends it.
        if let Some(again) = lines.get(repeat).cloned() {
            lines.push(again);
        }
        let with = run(&program, &lines, true);
        prop_assert_eq!(&with, &run(&program, &lines, false));
    }
}
