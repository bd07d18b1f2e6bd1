//! `mon bench --workflows N`: many rules on one event type (issue 13).
//!
//! N file SLAs, one workflow per batch job, all listening to the same two
//! event types and told apart only by `where job_id == "JOB-k"`, as real
//! deployments with hundreds of file feeds are written. Files arrive every
//! 10 ms for a random job and are loaded 1 to 5 minutes later; a fraction
//! is never loaded and must be reported missing once (the command fails
//! otherwise). Reported: decode + engine and the engine alone, with the
//! filter index and without it (the same engine with the index turned
//! off, over a prefix of the stream short enough to finish: without the
//! index every event evaluates all N predicates).

use std::fmt::Write as _;
use std::time::Instant;

use mon_compiler::{compile, ir::Program, NoSchemas, SourceFile};
use mon_runtime::event::{Decoded, Decoder};
use mon_runtime::{Engine, Kind, Record};

use crate::rng::SplitMix64;
use crate::Outcome;

use super::{through_reader, BASE};

/// The rules: two event types and `workflows` file SLAs on them.
fn rules(workflows: u64) -> String {
    let mut text = String::from(
        "event file_received { job_id: string, file_id: string, size: int }\n\
         event file_loaded { job_id: string, file_id: string, rows: int }\n",
    );
    for k in 0..workflows {
        let _ = write!(
            text,
            "\nworkflow job_{k:05} {{\n  key file_id\n  start received: file_received where job_id == \"JOB-{k:05}\"\n  \
             step loaded: file_loaded where job_id == \"JOB-{k:05}\" after received within 10m -> success\n}}\n"
        );
    }
    text
}

/// The JSON lines in time order, and the number of files never loaded.
fn generate(workflows: u64, events: u64, stall_rate: f64, seed: u64) -> (Vec<String>, u64) {
    let mut rng = SplitMix64::new(seed);
    let files = events / 2;
    // (time, line) of every event; sorted by time (stably) below.
    let mut timed: Vec<(i64, String)> = Vec::with_capacity(events as usize);
    let mut stalls = 0;
    for i in 0..files {
        let job = rng.next_u64() % workflows;
        let received = BASE + i as i64 * 10;
        let stamp = mon_stdlib::time::format_rfc3339(received);
        timed.push((
            received,
            format!(
                r#"{{"specversion":"1.0","type":"file_received","id":"R{i}","source":"bench","time":"{stamp}","data":{{"job_id":"JOB-{job:05}","file_id":"F{i:08}","size":{}}}}}"#,
                1000 + i % 9973
            ),
        ));
        if rng.unit() < stall_rate {
            stalls += 1;
            continue;
        }
        let loaded = received + 60_000 + (rng.next_u64() % 240_000) as i64;
        let stamp = mon_stdlib::time::format_rfc3339(loaded);
        timed.push((
            loaded,
            format!(
                r#"{{"specversion":"1.0","type":"file_loaded","id":"L{i}","source":"bench","time":"{stamp}","data":{{"job_id":"JOB-{job:05}","file_id":"F{i:08}","rows":{}}}}}"#,
                i % 7919
            ),
        ));
    }
    timed.sort_by_key(|(time, _)| *time);
    (timed.into_iter().map(|(_, line)| line).collect(), stalls)
}

/// How a run gets its events.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Decoded before the clock starts: the engine alone.
    Predecoded,
    /// Decoded in batches on the engine's thread, by `mon simulate`'s own
    /// reader (`through_reader`).
    OneThread,
    /// Decoded on a second thread ahead of the engine, by the same reader.
    TwoThreads,
}

/// One run over `lines`: (seconds, missing records).
fn run_once(
    program: &Program,
    decoder: &Decoder,
    lines: &[String],
    index: bool,
    mode: Mode,
    native: &mut Option<usize>,
) -> (f64, u64) {
    let functions = mon_stdlib::registry();
    let mut engine = Engine::new(program, functions, BASE);
    engine.set_filter_index(index);
    native.get_or_insert(engine.native_conditions());
    let mut out: Vec<Record> = Vec::new();
    let mut missing = 0;
    let decoded: Vec<_> = match mode {
        Mode::Predecoded => lines
            .iter()
            .filter_map(|l| match decoder.decode(l) {
                Decoded::Event(e) => Some(e),
                _ => None,
            })
            .collect(),
        Mode::OneThread | Mode::TwoThreads => Vec::new(),
    };
    // The reader takes bytes, as from a file; joined before the clock
    // starts, as the file would be on disk.
    let text = match mode {
        Mode::OneThread | Mode::TwoThreads => lines.join("\n").into_bytes(),
        Mode::Predecoded => Vec::new(),
    };
    let start = Instant::now();
    let mut step = |engine: &mut Engine, event: &mon_runtime::Event| {
        engine.advance(event.time, false, &mut out);
        engine.process(event, &mut out);
        engine.clearances.clear();
        missing += out.iter().filter(|r| r.kind == Kind::Missing).count() as u64;
        out.clear();
    };
    match mode {
        Mode::Predecoded => {
            for (n, event) in decoded.iter().enumerate() {
                engine.prefetch_ahead(&decoded[n + 1..], |e| Some(e));
                step(&mut engine, event);
            }
        }
        Mode::OneThread => through_reader(&text, decoder, false, &mut engine, &mut step),
        Mode::TwoThreads => through_reader(&text, decoder, true, &mut engine, &mut step),
    }
    // One hour past the stream: every stall has been reported.
    let end = decoded.last().map(|e| e.time).unwrap_or(BASE).max(BASE + lines.len() as i64 * 10) + 3_600_000;
    engine.advance(end, true, &mut out);
    missing += out.iter().filter(|r| r.kind == Kind::Missing).count() as u64;
    (start.elapsed().as_secs_f64(), missing)
}

pub fn run(workflows: u64, events: u64, stall_rate: f64, seed: u64, engine_only: bool) -> Outcome {
    let workflows = workflows.max(1);
    let compile_start = Instant::now();
    let sources = vec![SourceFile { path: "many_rules.mon".into(), text: rules(workflows) }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    let Some(program) = compilation.program else {
        return Outcome::Problems;
    };
    eprintln!(
        "{workflows} file SLAs on one event type compiled in {:.2}s; generating {events} events...",
        compile_start.elapsed().as_secs_f64()
    );
    let (lines, stalls) = generate(workflows, events, stall_rate, seed);
    let decoder = Decoder::new(&program);
    let n = lines.len();
    let rate = |events: usize, seconds: f64| events as f64 / seconds;
    // How many conditions run as native code (`MON_JIT=off`: none).
    let mut native = None;

    let mut ok = true;
    if !engine_only {
        let (seconds, missing) = run_once(&program, &decoder, &lines, true, Mode::OneThread, &mut native);
        say!(
            "{workflows} workflows, index on:  decode + engine {n} events in {seconds:.2}s = {:.0} events/s, one thread; {stalls} stalls planted, {missing} missing reported",
            rate(n, seconds)
        );
        ok = missing == stalls;
        let (seconds, missing) = run_once(&program, &decoder, &lines, true, Mode::TwoThreads, &mut native);
        say!(
            "{workflows} workflows, index on:  decode | engine {n} events in {seconds:.2}s = {:.0} events/s, two threads (mon simulate's pipeline)",
            rate(n, seconds)
        );
        ok &= missing == stalls;
    }
    let (seconds, missing) = run_once(&program, &decoder, &lines, true, Mode::Predecoded, &mut native);
    say!(
        "{workflows} workflows, index on:  engine alone    {n} events in {seconds:.2}s = {:.0} events/s",
        rate(n, seconds)
    );
    ok &= missing == stalls;
    if !ok {
        eprintln!("error: {stalls} stalls were planted, and a run made a different number of missing records");
        return Outcome::Problems;
    }
    if engine_only {
        return Outcome::Ok;
    }
    // Without the index each event evaluates every workflow's predicate:
    // a prefix of the stream keeps the run to seconds.
    let prefix = n.min((200_000_000 / workflows as usize).max(2_000));
    let (seconds, _) = run_once(&program, &decoder, &lines[..prefix], false, Mode::OneThread, &mut native);
    say!(
        "{workflows} workflows, index off: decode + engine {prefix} events in {seconds:.2}s = {:.0} events/s",
        rate(prefix, seconds)
    );
    let conditions = program.workflows.iter().flat_map(|w| &w.steps).filter(|s| s.relevance.is_some()).count();
    say!("{workflows} workflows: {} of {conditions} relevance predicates run as native code", native.unwrap_or(0));
    Outcome::Ok
}
