//! `mon bench`: the engine's speed and memory on a synthetic trade
//! lifecycle stream, generated in memory (no disk, no broker).
//!
//! Every trade is ingested first, so all of them are in flight at once;
//! then each later step arrives for every trade in turn, except for the
//! stalled ones, which stop at a random step and are reported missing. The
//! engine alone is timed on pre-decoded events, then decode + engine on the
//! JSON lines, on one thread and then on two as `mon simulate` runs.
//! Resident memory per in-flight instance is the growth of the process's
//! resident set while the trades are ingested, divided by their number (it
//! includes the timers they arm).
//!
//! `--workflows N` measures many rules on one event type instead
//! (`many_rules`).

use std::time::Instant;

use mon_compiler::{compile, ir::Program, NoSchemas, SourceFile};
use mon_runtime::alerts::{self, AlertBook, BookConfig, Notification};
use mon_runtime::event::{Decoded, Decoder};
use mon_runtime::simulate::NumberedLine;
use mon_runtime::{Engine, Event, Kind, Record};

use crate::commands::simulate::pipeline::{decode_ahead, decode_input};
use crate::rng::SplitMix64;
use crate::Outcome;

mod many_rules;

fn event_of(line: &NumberedLine) -> Option<&Event> {
    match line {
        NumberedLine::Text { decoded: Decoded::Event(event), .. } => Some(event),
        _ => None,
    }
}

/// Decode + engine over `text`, as `mon simulate` runs: its reader hands
/// batches of decoded lines to `step`, event by event, with the engine
/// prefetching ahead; on this thread, or (`two_threads`) from a second
/// thread decoding ahead of this one.
fn through_reader(
    text: &[u8],
    decoder: &Decoder,
    two_threads: bool,
    engine: &mut Engine,
    step: &mut impl FnMut(&mut Engine, &Event),
) {
    let mut take = |lines: &[NumberedLine]| {
        for (n, line) in lines.iter().enumerate() {
            engine.prefetch_ahead(&lines[n + 1..], event_of);
            if let Some(event) = event_of(line) {
                step(engine, event);
            }
        }
        true
    };
    if two_threads {
        decode_ahead(text, decoder, |batch| take(&batch.lines));
    } else {
        decode_input(text, decoder, |batch| take(&batch.lines));
    }
}

const RULES: &str = r#"
event trade_ingested { trade_id: string, region: enum { EMEA, AMER, APAC }, book: string, notional: float }
event trade_verified { trade_id: string, system: string }
event sent_to_sys3 { trade_id: string }
event sys3_ack { trade_id: string, status: enum { ACK, NACK } }
event sent_to_sys4 { trade_id: string }

workflow trade_lifecycle {
  key trade_id
  group by region, book
  start ingested: trade_ingested
  step verified: trade_verified where system == "S2" after ingested within 2m
  step sent3: sent_to_sys3 after verified within 1m
  step acked: sys3_ack where status == ACK after sent3 within 5m warn 3m
  step nacked: sys3_ack where status == NACK after sent3 -> failure
  step sent4: sent_to_sys4 after acked within 1m -> success
}
"#;

#[derive(clap::Args)]
pub struct Args {
    /// Number of trades (all in flight at once after the first phase).
    #[arg(long, default_value_t = 1_000_000)]
    trades: u64,
    /// Fraction of trades that stall at a random step.
    #[arg(long, default_value_t = 0.01)]
    stall_rate: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Measure the engine alone (skip the decode + engine runs and, with
    /// `--workflows`, the run without the filter index).
    #[arg(long)]
    engine_only: bool,
    /// Measure N file-SLA workflows on one event type instead of the
    /// trade lifecycle (the filter index, with and without).
    #[arg(long, value_name = "N")]
    workflows: Option<u64>,
    /// Events in the stream of `--workflows`.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Write the stream instead of measuring: DIR/rules/bench.mon and
    /// DIR/events.ndjson, for the service's benchmark and crash test.
    #[arg(long, value_name = "DIR")]
    emit: Option<std::path::PathBuf>,
}

const BASE: i64 = 1_772_438_400_000; // 2026-03-02T08:00:00Z
const STEPS: usize = 5;
const TYPES: [&str; STEPS] = ["trade_ingested", "trade_verified", "sent_to_sys3", "sys3_ack", "sent_to_sys4"];

/// The JSON lines of the stream, phase by phase, and the number of stalls.
fn generate(args: &Args) -> (Vec<String>, u64) {
    // SplitMix64: the same seed gives the same stream on every machine.
    let mut rng = SplitMix64::new(args.seed);
    // The step (1..5) at which each trade stalls, or 5 for none.
    let stop: Vec<u8> = (0..args.trades)
        .map(|_| if rng.unit() < args.stall_rate { 1 + (rng.next_u64() % 4) as u8 } else { STEPS as u8 })
        .collect();
    let stalls = stop.iter().filter(|&&s| (s as usize) < STEPS).count() as u64;
    let regions = ["EMEA", "AMER", "APAC"];
    // Trades enter every 20µs; each later phase follows 30s after the previous.
    let spacing_us = 20;
    let mut lines = Vec::with_capacity(args.trades as usize * STEPS);
    for (phase, type_name) in TYPES.iter().enumerate() {
        for (i, &stop) in stop.iter().enumerate() {
            if phase >= stop as usize {
                continue;
            }
            let time = BASE + phase as i64 * 30_000 + (i as i64 * spacing_us) / 1000;
            let stamp = mon_stdlib::time::format_rfc3339(time);
            let id = format!("T{i:08}");
            let data = match phase {
                0 => format!(
                    r#"{{"trade_id":"{id}","region":"{}","book":"B{}","notional":{}.5}}"#,
                    regions[i % 3],
                    i % 50,
                    1000 + i % 997
                ),
                1 => format!(r#"{{"trade_id":"{id}","system":"S2"}}"#),
                3 => format!(r#"{{"trade_id":"{id}","status":"ACK"}}"#),
                _ => format!(r#"{{"trade_id":"{id}"}}"#),
            };
            lines.push(format!(
                r#"{{"specversion":"1.0","type":"{}","id":"{id}-{phase}","source":"bench","time":"{stamp}","data":{data}}}"#,
                type_name
            ));
        }
    }
    (lines, stalls)
}

fn emit(dir: &std::path::Path, lines: &[String], stalls: u64) -> Outcome {
    let written = std::fs::create_dir_all(dir.join("rules"))
        .and_then(|()| std::fs::write(dir.join("rules/bench.mon"), RULES))
        .and_then(|()| std::fs::write(dir.join("events.ndjson"), lines.join("\n") + "\n"));
    match written {
        Ok(()) => {
            say!("wrote {} events ({stalls} stalls) to {}", lines.len(), dir.display());
            Outcome::Ok
        }
        Err(e) => Outcome::Usage(format!("cannot write to {}: {e}", dir.display())),
    }
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

struct Run {
    events: u64,
    seconds: f64,
    missing: u64,
    per_instance: Option<f64>,
    /// With the alert book: alerts it holds and notifications it made.
    alerts: Option<(u64, u64)>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// With `alerts`, the records also feed an alert book, as the service's do;
/// `prefetch` off measures what the engine's prefetching saves.
fn run_engine(program: &Program, events: &[Event], trades: u64, alerts: bool, prefetch: bool) -> Run {
    let functions = mon_stdlib::registry();
    let mut engine = Engine::new(program, functions, BASE);
    engine.set_prefetch(prefetch);
    let mut book = alerts.then(|| AlertBook::new(program, BookConfig::default()));
    let mut notifications: Vec<Notification> = Vec::new();
    let mut out: Vec<Record> = Vec::new();
    let mut missing = 0;
    let before = resident_bytes();
    let mut after_first_phase = None;
    let start = Instant::now();
    for (n, event) in events.iter().enumerate() {
        engine.prefetch_ahead(&events[n + 1..], |e| Some(e));
        engine.advance(event.time, false, &mut out);
        engine.process(event, &mut out);
        if n as u64 + 1 == trades {
            after_first_phase = resident_bytes();
        }
        alerts::follow(book.as_mut(), &out, &mut engine, event.time, &mut notifications);
        missing += out.iter().filter(|r| r.kind == Kind::Missing).count() as u64;
        out.clear();
    }
    let end = events.last().map_or(BASE, |e| e.time) + 3_600_000;
    engine.advance(end, true, &mut out);
    alerts::follow(book.as_mut(), &out, &mut engine, end, &mut notifications);
    let seconds = start.elapsed().as_secs_f64();
    missing += out.iter().filter(|r| r.kind == Kind::Missing).count() as u64;
    let per_instance = match (before, after_first_phase) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / trades as f64),
        _ => None,
    };
    let alerts = book.map(|b| (b.alerts().count() as u64, notifications.len() as u64));
    Run { events: events.len() as u64, seconds, missing, per_instance, alerts }
}

pub fn run(args: Args) -> Outcome {
    if let Some(workflows) = args.workflows {
        return many_rules::run(workflows, args.events, args.stall_rate, args.seed, args.engine_only);
    }
    // The alert book needs somewhere to send; the emitted rules (for the
    // service's benchmark) have no channel, so that nothing is delivered.
    let rules = format!("{RULES}\nchannel desk webhook \"http://127.0.0.1:9/desk\"\n");
    let rules = rules.replace("  group by region, book\n", "  group by region, book\n  notify desk\n");
    let sources = vec![SourceFile { path: "bench.mon".into(), text: rules }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    let Some(program) = compilation.program else {
        return Outcome::Problems;
    };
    eprintln!("generating {} trades ({}% stalls, seed {})...", args.trades, args.stall_rate * 100.0, args.seed);
    let (lines, stalls) = generate(&args);
    if let Some(dir) = &args.emit {
        return emit(dir, &lines, stalls);
    }
    // Why: `cargo run -- bench` (no --release) is an easy slip, and its
    // figures, several times slower, would be taken for the engine's.
    // Debug assertions stand for "not optimized": cargo's dev profile has
    // both, its release profile neither.
    if cfg!(debug_assertions) {
        eprintln!("note: this mon is a debug build, so these figures are not the engine's: measure with `cargo run --release -- bench`");
    }
    let decoder = Decoder::new(&program);
    let events: Vec<Event> = lines
        .iter()
        .filter_map(|l| match decoder.decode(l) {
            Decoded::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), lines.len(), "every generated line decodes");

    let alone = run_engine(&program, &events, args.trades, false, true);
    say!(
        "engine alone:    {} events in {:.2}s = {:.0} events/s; {} stalls planted, {} missing reported",
        alone.events,
        alone.seconds,
        alone.events as f64 / alone.seconds,
        stalls,
        alone.missing
    );
    if let Some(bytes) = alone.per_instance {
        say!("resident memory: {bytes:.0} bytes per in-flight instance ({} instances)", args.trades);
    }
    // The book's cost and prefetching's gain are less than the run-to-run
    // noise of one pair of runs: alternate three of each and compare the
    // medians.
    let mut alone_seconds = vec![alone.seconds];
    let mut alerting_seconds = Vec::new();
    let mut unprefetched_seconds = Vec::new();
    let mut alerting = None;
    for round in 0..3 {
        unprefetched_seconds.push(run_engine(&program, &events, args.trades, false, false).seconds);
        let run = run_engine(&program, &events, args.trades, true, true);
        alerting_seconds.push(run.seconds);
        alerting = Some(run);
        if round < 2 {
            alone_seconds.push(run_engine(&program, &events, args.trades, false, true).seconds);
        }
    }
    let (plain, unprefetched) = (median(&mut alone_seconds), median(&mut unprefetched_seconds));
    say!(
        "no prefetching:  {} events in {unprefetched:.2}s = {:.0} events/s, median of 3 against {plain:.2}s prefetching ({:+.1}% time)",
        events.len(),
        events.len() as f64 / unprefetched,
        (unprefetched / plain - 1.0) * 100.0
    );
    drop(events);
    if let Some(Run { alerts: Some((alerts, notifications)), events: count, .. }) = alerting {
        let with_book = median(&mut alerting_seconds);
        say!(
            "engine + alerts: {count} events in {with_book:.2}s = {:.0} events/s, median of 3 against {plain:.2}s alone ({:+.1}% time); {alerts} alerts, {notifications} notifications",
            count as f64 / with_book,
            (with_book / plain - 1.0) * 100.0
        );
    }

    if args.engine_only {
        return if alone.missing == stalls { Outcome::Ok } else { Outcome::Problems };
    }
    let start = Instant::now();
    let mut decoded = 0u64;
    for line in &lines {
        if let Decoded::Event(event) = decoder.decode(line) {
            decoded += u64::from(event.time > 0);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    say!("decode alone:    {decoded} events in {seconds:.2}s = {:.0} events/s", decoded as f64 / seconds);
    // The bytes are joined first, as a file would be.
    let text = lines.join("\n").into_bytes();
    let functions = mon_stdlib::registry();
    let mut out: Vec<Record> = Vec::new();
    for two_threads in [false, true] {
        let mut engine = Engine::new(&program, functions, BASE);
        let start = Instant::now();
        through_reader(&text, &decoder, two_threads, &mut engine, &mut |engine, event| {
            engine.advance(event.time, false, &mut out);
            engine.process(event, &mut out);
            out.clear();
        });
        let seconds = start.elapsed().as_secs_f64();
        let (label, threads) = if two_threads {
            ("decode | engine", "two threads (mon simulate's pipeline)")
        } else {
            ("decode + engine", "one thread")
        };
        say!(
            "{label}: {} events in {seconds:.2}s = {:.0} events/s, {threads}",
            lines.len(),
            lines.len() as f64 / seconds
        );
    }
    if alone.missing != stalls {
        eprintln!("error: {stalls} stalls were planted but {} missing records were made", alone.missing);
        return Outcome::Problems;
    }
    Outcome::Ok
}
