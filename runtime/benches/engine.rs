//! Criterion benchmark of one engine step for a trade event with N trades
//! in flight: what `mon simulate` does per decoded event (move the clock,
//! firing due timers, then process the event), without decoding.
//!
//! The stream keeps N trades in flight throughout: a trade's five events
//! are N/4 trade starts apart, so while one trade starts another moves a
//! step and another completes. Deadlines are days long, so no timer fires
//! and every step moves an instance (the common case; firing is the
//! timer benchmark's subject). Closed trades stay in the slab for the
//! default `retain` (7 days), so the slab grows during the run, as it does
//! in the peer stream. Events are decoded outside the timing.
//!
//! `cargo bench -p mon-runtime --bench engine`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use mon_compiler::ir::Program;
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::aggregates::{self, Slice};
use mon_runtime::{Decoded, Decoder, Engine, Event, Record};

const RULES: &str = r#"
event trade_ingested { trade_id: string, region: string, book: string }
event trade_verified { trade_id: string, region: string, book: string }
event sent_to_sys3 { trade_id: string, region: string, book: string }
event sys3_ack { trade_id: string, region: string, book: string }
event sent_to_sys4 { trade_id: string, region: string, book: string }

workflow trade_lifecycle {
  key trade_id
  group by region
  expect trade_ingested
  then trade_verified within 30d
  then sent_to_sys3 within 30d
  then sys3_ack within 30d
  then sent_to_sys4 within 30d
}
"#;

const STEPS: [&str; 5] = ["trade_ingested", "trade_verified", "sent_to_sys3", "sys3_ack", "sent_to_sys4"];
/// 2026-03-02T08:00:00Z.
const START_MS: i64 = 1_772_438_400_000;

/// The stream: event `j` is step `j % 5` of trade `j / 5 - step × spacing`
/// (none while that is negative), at `START_MS + j` ms, so that about
/// `4 × spacing` trades are in flight.
struct Stream<'d> {
    decoder: &'d Decoder<'d>,
    spacing: u64,
    next: u64,
}

impl Stream<'_> {
    fn event(&mut self) -> Event {
        loop {
            let j = self.next;
            self.next += 1;
            let step = j % 5;
            let Some(trade) = (j / 5).checked_sub(step * self.spacing) else { continue };
            let line = format!(
                r#"{{"type":"{}","time":"{}","id":"e{j}","data":{{"trade_id":"T{trade:09}","region":"{}","book":"B{}"}}}}"#,
                STEPS[step as usize],
                mon_stdlib::time::format_rfc3339(START_MS + j as i64),
                ["EMEA", "AMER", "APAC"][(trade % 3) as usize],
                trade % 50
            );
            match self.decoder.decode(&line) {
                Decoded::Event(event) => return event,
                other => panic!("the benchmark's line does not decode: {other:?}"),
            }
        }
    }
}

/// What `Simulation::feed_decoded` does with an event.
fn step(engine: &mut Engine, event: &Event, out: &mut Vec<Record>) {
    engine.advance(event.time, false, out);
    engine.process(event, out);
}

/// Open trades (closed ones stay in the slab for the default `retain` of
/// 7 days, as in the peer stream, and are not counted).
fn in_flight_now(engine: &Engine, program: &Program) -> u64 {
    let now = engine.state.clock;
    aggregates::metrics(&engine.state, &program.workflows[0], &Slice::default(), now).in_flight
}

fn engine_step(c: &mut Criterion) {
    let sources = vec![SourceFile { path: "trades.mon".into(), text: RULES.into() }];
    let program = compile(&sources, mon_stdlib::registry(), &NoSchemas).program.expect("the bench rules compile");
    let functions = mon_stdlib::registry();
    let decoder = Decoder::new(&program);
    let mut group = c.benchmark_group("engine/step");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    // Without `--bench` (as a smoke test under `cargo test --benches`),
    // criterion runs each function once: the million-trade fill would be
    // the whole cost of that run.
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes: &[u64] = if measuring { &[10_000, 1_000_000] } else { &[10_000] };
    for &in_flight in sizes {
        let mut engine = Engine::new(&program, functions, START_MS);
        let mut stream = Stream { decoder: &decoder, spacing: in_flight / 4, next: 0 };
        let mut out = Vec::new();
        // Until the first trade completes: from then on the number in
        // flight stays where it is.
        while stream.next < 5 * 4 * stream.spacing + 5 {
            step(&mut engine, &stream.event(), &mut out);
        }
        assert!(out.is_empty(), "no record was expected while filling: {:?}", out.first());
        let filled = in_flight_now(&engine, &program);
        assert!(filled.abs_diff(in_flight) <= in_flight / 100 + 5, "{filled} in flight, {in_flight} wanted");
        group.bench_function(BenchmarkId::new("in flight", in_flight), |b| {
            b.iter_batched(
                || stream.event(),
                |event| {
                    step(&mut engine, &event, &mut out);
                    out.clear();
                    black_box(event)
                },
                BatchSize::SmallInput,
            )
        });
        // The steps taken moved trades; none went missing or astray.
        let after = in_flight_now(&engine, &program);
        assert!(after.abs_diff(in_flight) <= in_flight / 100 + 5, "{after} in flight after the benchmark");
    }
    group.finish();
}

criterion_group!(benches, engine_step);
criterion_main!(benches);
