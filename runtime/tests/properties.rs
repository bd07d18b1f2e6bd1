//! Properties of the engine over generated event streams, checked through
//! [`Simulation`] exactly as `mon simulate` feeds it: the same stream gives
//! the same records on every replay; a run cut anywhere, saved with serde_json
//! and resumed gives the records of one straight run; an instance only ever
//! moves forward along its workflow's graph and never after it closed; timing
//! records agree with their deadlines (LANGUAGE.md §3.4 and §7); and every
//! stall planted in a trade lifecycle stream is reported missing exactly once,
//! at the step where it stalled, while completed trades are never reported.
//! The streams are JSON lines built with `format!` from small plans that
//! proptest generates and shrinks, so a failure prints the shortest stream
//! that still fails. Only the engine's public items are used (`instances`,
//! `Instance::stage` and `closed`): its internals are free to change. Set
//! `MON_PROPERTY_SCALE=N` to run N times as many cases.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use mon_compiler::ir::{Outcome, Program};
use mon_runtime::aggregates;
use mon_runtime::event::{Decoded, Decoder};
use mon_runtime::partitioned::Partitioned;
use mon_runtime::simulate::Simulation;
use mon_runtime::{Event, Kind, Record, State};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// One program for every property: a trade lifecycle graph (timings with
/// `warn`, an optional step, ACK/NACK alternatives that close with different
/// outcomes) and two scheduled workflows in London time, one of whose
/// deadlines (01:30) does not exist on the day the clocks go forward.
const RULES: &str = r#"
event trade_ingested { trade_id: string, region: enum { EMEA, AMER, APAC }, book: string }
event trade_verified { trade_id: string, system: string }
event trade_enriched { trade_id: string }
event sent_to_sys3 { trade_id: string }
event sys3_ack { trade_id: string, status: enum { ACK, NACK } }
event sent_to_sys4 { trade_id: string }
event file_received { job_id: string, path: string }
event file_loaded { job_id: string, rows: int }

workflow trade_lifecycle {
  key trade_id
  group by region, book
  grace 30s
  retain 1d
  start ingested: trade_ingested
  step verified: trade_verified where system == "S2" after ingested within 2m warn 1m
  then maybe trade_enriched as enriched within 1m
  then sent_to_sys3 as sent3 within 3m
  step acked: sys3_ack where status == ACK after sent3 within 5m warn 3m
  step nacked: sys3_ack where status == NACK after sent3 -> failure
  step sent4: sent_to_sys4 after acked within 1m -> success
}

workflow daily_feed {
  timezone Europe/London
  grace 5m
  on out_of_order alert
  expect file_received where job_id == "DAILY_FEED" by 08:00 warn at 07:45 every day
  then file_loaded where job_id == "DAILY_FEED" and rows > 0 within 30m warn 20m
}

workflow nightly_batch {
  timezone Europe/London
  on duplicate drop
  expect file_received where job_id == "NIGHTLY" by 01:30 every day
  then file_loaded where job_id == "NIGHTLY" within 2h
}
"#;

/// The trade lifecycle's steps in declaration order (their ids), with the
/// event that takes each and the data fields beside `trade_id`.
const TRADE_STEPS: [(&str, &str, &str); 7] = [
    ("ingested", "trade_ingested", r#","region":"EMEA","book":"B1""#),
    ("verified", "trade_verified", r#","system":"S2""#),
    ("enriched", "trade_enriched", ""),
    ("sent3", "sent_to_sys3", ""),
    ("acked", "sys3_ack", r#","status":"ACK""#),
    ("nacked", "sys3_ack", r#","status":"NACK""#),
    ("sent4", "sent_to_sys4", ""),
];
const TRADE: u32 = 0;
const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

fn program() -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let sources = [mon_compiler::SourceFile { path: "properties.mon".into(), text: RULES.into() }];
        let compilation = mon_compiler::compile(&sources, mon_stdlib::registry(), &mon_compiler::NoSchemas);
        let program = compilation.program.unwrap_or_else(|| panic!("the rules compile: {:?}", compilation.diagnostics));
        let names: Vec<&str> = program.workflows[TRADE as usize].steps.iter().map(|s| s.name.as_str()).collect();
        let expected: Vec<&str> = TRADE_STEPS.iter().map(|s| s.0).collect();
        assert_eq!(names, expected, "TRADE_STEPS follows the trade lifecycle's steps");
        program
    })
}

fn instant(text: &str) -> i64 {
    mon_stdlib::time::parse_rfc3339(text).expect("a valid instant")
}

/// Trades in property 5 start here (a Monday, London on GMT).
fn trade_base() -> i64 {
    instant("2026-03-02T08:00:00Z")
}

/// Streams for properties 1–4 span four days from here: Friday 27 March
/// 2026 to Monday 30 March, across the night London moves to BST (Sunday
/// 29 March, 01:00 UTC), when the nightly 01:30 deadline does not exist.
fn dst_base() -> i64 {
    instant("2026-03-27T00:00:00Z")
}
const DST_SPAN: u32 = 4 * DAY as u32;

// ---------------------------------------------------------------------------
// Stream plans
// ---------------------------------------------------------------------------

/// How long after the instance entered its source stage an event comes,
/// relative to the step's `within` window.
#[derive(Clone, Copy, Debug)]
enum Delay {
    /// This many thousandths of the window.
    Within(u16),
    /// Exactly at the deadline: on time.
    AtDeadline,
    /// Exactly at deadline + grace, when its missing timer is due: timers
    /// due strictly before an event fire first, so it is late, not missing.
    AtDeadlinePlusGrace,
    /// This many ms after the deadline.
    Past(u32),
}

fn delay(wild: bool) -> BoxedStrategy<Delay> {
    if wild {
        prop_oneof![
            4 => (0..1000u16).prop_map(Delay::Within),
            1 => Just(Delay::AtDeadline),
            1 => Just(Delay::AtDeadlinePlusGrace),
            2 => (1..600_000u32).prop_map(Delay::Past),
        ]
        .boxed()
    } else {
        prop_oneof![4 => (0..1000u16).prop_map(Delay::Within), 1 => Just(Delay::AtDeadline)].boxed()
    }
}

fn delay_ms(window: i64, grace: i64, delay: Delay) -> i64 {
    match delay {
        Delay::Within(thousandths) => window * i64::from(thousandths) / 1000,
        Delay::AtDeadline => window,
        Delay::AtDeadlinePlusGrace => window + grace,
        Delay::Past(ms) => window + i64::from(ms),
    }
}

/// One trade: the path it takes and how its events arrive.
#[derive(Clone, Debug)]
struct Trade {
    /// When it is ingested, in ms after the stream's base.
    start: u32,
    enriched: bool,
    nack: bool,
    /// Per position on the path, the delay of that event.
    delays: [Delay; 7],
    /// Stops before this position on the path (taken modulo, never 0).
    stall: Option<u8>,
    /// Events at this position and the next arrive the other way round.
    swap: Option<u8>,
    /// This position's event is sent again with a new id this many ms later.
    duplicate: Option<(u8, u32)>,
    /// This position's event line is delivered again this many lines later.
    redeliver: Option<(u8, u8)>,
}

fn trade(wild: bool, span_ms: u32) -> impl Strategy<Value = Trade> {
    (
        0..span_ms,
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::array::uniform7(delay(wild)),
        prop::option::weighted(0.3, any::<u8>()),
        prop::option::weighted(0.25, any::<u8>()),
        prop::option::weighted(0.15, (any::<u8>(), 0..120_000u32)),
        prop::option::weighted(0.15, (any::<u8>(), 0..8u8)),
    )
        .prop_map(|(start, enriched, nack, delays, stall, swap, duplicate, redeliver)| Trade {
            start,
            enriched,
            nack,
            delays,
            stall,
            swap,
            duplicate,
            redeliver,
        })
}

impl Trade {
    /// The step ids the trade goes through when nothing stalls.
    fn path(&self) -> Vec<u32> {
        let mut path = vec![0, 1];
        if self.enriched {
            path.push(2);
        }
        path.push(3);
        if self.nack {
            path.push(5);
        } else {
            path.extend([4, 6]);
        }
        path
    }

    /// How many events of the path are sent.
    fn emitted(&self) -> usize {
        let len = self.path().len();
        self.stall.map_or(len, |s| 1 + usize::from(s) % (len - 1))
    }

    /// The stage the trade is left in when it stalls.
    fn stalled_at(&self) -> Option<u32> {
        self.stall.map(|_| self.path()[self.emitted() - 1])
    }

    /// The events in the order they are sent, with their times; position 0
    /// (the start) always comes first.
    fn events(&self, program: &Program, base: i64) -> Vec<(usize, i64)> {
        let workflow = &program.workflows[TRADE as usize];
        let path = self.path();
        let emitted = self.emitted();
        let window = |position: usize| {
            let step = &workflow.steps[path[position] as usize];
            step.timing.within_ms.map_or(5 * MINUTE, |w| w as i64)
        };
        let grace = workflow.grace_ms as i64;
        let swap = self.swap.map(|s| 1 + usize::from(s) % (path.len() - 2));
        let start = base + i64::from(self.start);
        let mut events = vec![(0, start)];
        // When the instance entered the stage it is in: `within` counts from it.
        let mut entered = start;
        let mut position = 1;
        while position < emitted {
            if swap == Some(position) && position + 1 < emitted {
                // The later event comes when the earlier one was due, so the
                // skipped step's timer is cancelled by the jump; the skipped
                // event follows a little later and only fills the step in.
                let jump = entered + delay_ms(window(position), grace, self.delays[position]);
                let fill = jump + delay_ms(20_000, grace, self.delays[position + 1]);
                events.push((position + 1, jump));
                events.push((position, fill));
                entered = jump;
                position += 2;
                continue;
            }
            let time = entered + delay_ms(window(position), grace, self.delays[position]);
            events.push((position, time));
            entered = time;
            position += 1;
        }
        events
    }

    /// Appends the trade's lines, with their times and redelivery.
    fn lines(&self, program: &Program, base: i64, id: &str, out: &mut Vec<Line>) {
        let path = self.path();
        let events = self.events(program, base);
        let line = |position: usize, time: i64, event_id: String| {
            let (_, event_type, fields) = TRADE_STEPS[path[position] as usize];
            envelope(event_type, &event_id, time, &format!(r#"{{"trade_id":"{id}"{fields}}}"#))
        };
        for (n, &(position, time)) in events.iter().enumerate() {
            let redeliver = self.redeliver.filter(|(p, _)| usize::from(*p) % events.len() == n).map(|(_, later)| later);
            out.push(Line { time, text: line(position, time, format!("{id}-{position}")), redeliver });
        }
        if let Some((p, later)) = self.duplicate {
            let (position, time) = events[usize::from(p) % events.len()];
            let time = time + i64::from(later);
            out.push(Line { time, text: line(position, time, format!("{id}-{position}-again")), redeliver: None });
        }
    }
}

/// A line of the stream before ordering.
struct Line {
    time: i64,
    text: String,
    /// Delivered again this many lines later (same id, same time).
    redeliver: Option<u8>,
}

fn envelope(event_type: &str, id: &str, time: i64, data: &str) -> String {
    let time = mon_stdlib::time::format_rfc3339(time);
    format!(
        r#"{{"specversion":"1.0","type":"{event_type}","id":"{id}","source":"props","time":"{time}","data":{data}}}"#
    )
}

/// Orders lines by time (stably, so a trade's simultaneous events keep
/// their order) and inserts the redeliveries.
fn order(mut lines: Vec<Line>) -> Vec<String> {
    lines.sort_by_key(|l| l.time);
    let mut out = Vec::with_capacity(lines.len());
    let mut pending: Vec<(u8, String)> = Vec::new();
    for line in lines {
        out.push(line.text.clone());
        for (countdown, text) in &mut pending {
            if *countdown == 0 {
                out.push(std::mem::take(text));
            }
            *countdown = countdown.wrapping_sub(1);
        }
        pending.retain(|(_, text)| !text.is_empty());
        if let Some(later) = line.redeliver {
            pending.push((later, line.text));
        }
    }
    out.extend(pending.into_iter().map(|(_, text)| text));
    out
}

/// Anything else a stream may hold: strays for the trades, files for the
/// scheduled workflows, unknown event types and rejected lines.
#[derive(Clone, Debug)]
struct Noise {
    /// When: days, minutes and seconds after the stream's base.
    day: u8,
    minute: u16,
    second: u8,
    /// Which kind of line (see [`Noise::line`]).
    what: u8,
    /// Picks the trade (one of the stream's, or a stranger) or the job.
    who: u8,
    /// An S1 verification, or an empty load.
    variant: bool,
}

fn noise() -> impl Strategy<Value = Noise> {
    (
        0..4u8,
        // Most files come around the morning deadlines, some at any time.
        prop_oneof![2 => 300..600u16, 1 => 0..1440u16],
        0..60u8,
        0..14u8,
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(day, minute, second, what, who, variant)| Noise { day, minute, second, what, who, variant })
}

impl Noise {
    fn line(&self, base: i64, n: usize, trades: usize) -> Line {
        let time = base + i64::from(self.day) * DAY + i64::from(self.minute) * MINUTE + i64::from(self.second) * 1000;
        let id = format!("n{n}");
        let trade = if trades > 0 && self.who < 200 {
            format!("T{:03}", usize::from(self.who) % trades)
        } else {
            format!("X{}", self.who % 4)
        };
        let job = ["DAILY_FEED", "NIGHTLY", "OTHER"][usize::from(self.who) % 3];
        let text = match self.what {
            0..=6 => {
                let (_, event_type, mut fields) = TRADE_STEPS[usize::from(self.what)];
                if self.variant && self.what == 1 {
                    fields = r#","system":"S1""#;
                }
                envelope(event_type, &id, time, &format!(r#"{{"trade_id":"{trade}"{fields}}}"#))
            }
            7 => envelope("file_received", &id, time, &format!(r#"{{"job_id":"{job}","path":"/in/{n}.csv"}}"#)),
            8 => {
                let rows = if self.variant { 0 } else { 100 };
                envelope("file_loaded", &id, time, &format!(r#"{{"job_id":"{job}","rows":{rows}}}"#))
            }
            9 => envelope("heartbeat", &id, time, r#"{"from":"props"}"#),
            10 => envelope(
                "trade_ingested",
                &id,
                time,
                &format!(r#"{{"trade_id":"{trade}","region":"MARS","book":"B1"}}"#),
            ),
            11 => format!("{{\"type\":\"sent_to_sys3\",\"id\":\"{id}\""),
            // Without an id the engine derives one from the content, so two
            // such lines with the same content are one event delivered twice.
            12 => envelope("file_received", &id, time, &format!(r#"{{"job_id":"{job}","path":"/in/f.csv"}}"#))
                .replace(&format!(r#""id":"{id}","#), ""),
            _ => envelope("sent_to_sys3", &id, time, &format!(r#"{{"trade_id":"{trade}"}}"#))
                .replace(&format!(r#""id":"{id}","#), ""),
        };
        Line { time, text, redeliver: None }
    }
}

/// A stream for properties 1–4: a few trades that may be late, miss steps
/// or arrive in any order, noise, a few adjacent lines swapped regardless
/// of time, and the simulation's `--from` and `--until`.
#[derive(Clone, Debug)]
struct Stream {
    trades: Vec<Trade>,
    noise: Vec<Noise>,
    disorder: Vec<Index>,
    from: Option<u32>,
    until: Option<u32>,
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop::collection::vec(trade(true, DST_SPAN), 0..10),
        prop::collection::vec(noise(), 0..40),
        prop::collection::vec(any::<Index>(), 0..3),
        prop::option::of(0..DST_SPAN / 4),
        prop::option::of(0..DST_SPAN + 2 * DAY as u32),
    )
        .prop_map(|(trades, noise, disorder, from, until)| Stream { trades, noise, disorder, from, until })
}

impl Stream {
    fn lines(&self) -> Vec<String> {
        let (program, base) = (program(), dst_base());
        let mut lines = Vec::new();
        for (i, trade) in self.trades.iter().enumerate() {
            trade.lines(program, base, &format!("T{i:03}"), &mut lines);
        }
        for (n, noise) in self.noise.iter().enumerate() {
            lines.push(noise.line(base, n, self.trades.len()));
        }
        let mut lines = order(lines);
        for index in &self.disorder {
            if lines.len() >= 2 {
                let i = index.index(lines.len() - 1);
                lines.swap(i, i + 1);
            }
        }
        lines
    }

    fn case(&self) -> Case {
        let at = |offset: Option<u32>| offset.map(|o| dst_base() + i64::from(o));
        Case { lines: self.lines(), from: at(self.from), until: at(self.until) }
    }
}

fn streams() -> impl Strategy<Value = Case> {
    stream().prop_map(|s| s.case())
}

/// A stream ready to run as `mon simulate` would: its lines, `--from` and
/// `--until`. Property 2 marks where to save and resume with [`CUT`] lines.
#[derive(Clone, Debug)]
struct Case {
    lines: Vec<String>,
    from: Option<i64>,
    until: Option<i64>,
}

const CUT: &str = "--- cut: save the state, restore it, resume ---";

impl Case {
    fn describe(&self) -> String {
        let show = |t: Option<i64>| t.map_or("none".to_string(), mon_stdlib::time::format_rfc3339);
        format!("--from {} --until {}\n{}", show(self.from), show(self.until), self.lines.join("\n"))
    }
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

fn functions() -> &'static dyn mon_compiler::Functions {
    mon_stdlib::registry()
}

fn json(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| serde_json::to_string(r).expect("a record serializes")).collect()
}

/// One straight run, as `mon simulate` does it.
fn simulate(case: &Case) -> Vec<Record> {
    let mut records = Vec::new();
    let mut simulation = Simulation::new(program(), functions(), case.from, case.until);
    for line in &case.lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    records
}

/// Runs `test` on `cases` generated values; on failure, panics with the
/// shrunk value as `describe` shows it.
fn check<S: Strategy>(
    property: &str,
    cases: u32,
    strategy: S,
    describe: impl Fn(&S::Value) -> String,
    test: impl Fn(&S::Value) -> Result<(), String>,
) {
    let cases = cases * std::env::var("MON_PROPERTY_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 20_000,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    match runner.run(&strategy, |value| test(&value).map_err(TestCaseError::fail)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => {
            panic!("{property}: {reason}\nminimal failing stream:\n{}", describe(&value))
        }
        Err(TestError::Abort(reason)) => panic!("{property}: aborted: {reason}"),
    }
}

/// Whether `test` fails on `case` (a panic is a failure), and why.
fn failure(case: &Case, test: &impl Fn(&Case) -> Result<(), String>) -> Option<String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(case))) {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(panic) => Some(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// Like [`check`] for streams of lines; proptest shrinks the plan, then the
/// failing stream is cut down further line by line (and without `--from`
/// or `--until` when it still fails), so the report is a short stream.
fn check_streams(
    property: &str,
    cases: u32,
    strategy: impl Strategy<Value = Case>,
    test: impl Fn(&Case) -> Result<(), String>,
) {
    let cases = cases * std::env::var("MON_PROPERTY_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2_000, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let mut case = match runner.run(&strategy, |case| test(&case).map_err(TestCaseError::fail)) {
        Ok(()) => return,
        Err(TestError::Fail(_, case)) => case,
        Err(TestError::Abort(reason)) => panic!("{property}: aborted: {reason}"),
    };
    let mut reason = failure(&case, &test).unwrap_or_else(|| "flaky: the shrunk stream passes when run again".into());
    // Greedy passes: drop `--from`, `--until`, then each line in turn,
    // keeping every removal after which the stream still fails.
    let size = |case: &Case| case.lines.len() + usize::from(case.from.is_some()) + usize::from(case.until.is_some());
    loop {
        let before = size(&case);
        let mut candidates = vec![Case { from: None, ..case.clone() }, Case { until: None, ..case.clone() }];
        candidates.retain(|c| size(c) < before);
        for candidate in candidates {
            if let Some(why) = failure(&candidate, &test) {
                (case, reason) = (candidate, why);
            }
        }
        // Backwards, so that a removal leaves the lines still to try in place.
        for i in (0..case.lines.len()).rev() {
            let mut smaller = case.clone();
            smaller.lines.remove(i);
            if let Some(why) = failure(&smaller, &test) {
                (case, reason) = (smaller, why);
            }
        }
        if size(&case) == before {
            break;
        }
    }
    panic!("{property}: {reason}\nminimal failing stream:\n{}", case.describe());
}

// ---------------------------------------------------------------------------
// 1. Replay
// ---------------------------------------------------------------------------

#[test]
fn replaying_a_stream_gives_the_same_records() {
    let made = AtomicUsize::new(0);
    check_streams("replay", 512, streams(), |case| {
        let first = json(&simulate(case));
        let second = json(&simulate(case));
        made.fetch_add(first.len(), Ordering::Relaxed);
        if first != second {
            return Err(format!("first run:\n{}\nsecond run:\n{}", first.join("\n"), second.join("\n")));
        }
        Ok(())
    });
    assert!(made.into_inner() > 0, "the generated streams made no records at all");
}

// ---------------------------------------------------------------------------
// 2. Split and resume
// ---------------------------------------------------------------------------

/// Feeds the stream, saving the engine's state with serde_json and resuming
/// from it at each [`CUT`] line.
fn simulate_with_cuts(case: &Case) -> Vec<Record> {
    let (program, functions) = (program(), functions());
    let mut records = Vec::new();
    let mut simulation = Simulation::new(program, functions, case.from, case.until);
    for line in &case.lines {
        if line != CUT {
            simulation.feed(line, &mut records);
            continue;
        }
        let saved = simulation.state().map(|s| serde_json::to_string(s).expect("the state serializes"));
        if let Some(saved) = saved {
            let state: State = serde_json::from_str(&saved).expect("the state deserializes");
            simulation = Simulation::resume(program, functions, state, case.until);
        }
    }
    simulation.finish(&mut records);
    records
}

#[test]
fn a_stream_cut_anywhere_and_resumed_gives_the_records_of_one_run() {
    let strategy = (stream(), prop::collection::vec(any::<Index>(), 1..4)).prop_map(|(stream, cuts)| {
        let mut case = stream.case();
        for cut in cuts {
            let at = cut.index(case.lines.len() + 1);
            case.lines.insert(at, CUT.to_string());
        }
        case
    });
    check_streams("split and resume", 512, strategy, |case| {
        let straight = Case { lines: case.lines.iter().filter(|l| *l != CUT).cloned().collect(), ..case.clone() };
        let straight = json(&simulate(&straight));
        let resumed = json(&simulate_with_cuts(case));
        if straight != resumed {
            return Err(format!("straight run:\n{}\nresumed run:\n{}", straight.join("\n"), resumed.join("\n")));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// 3. Stages
// ---------------------------------------------------------------------------

/// What property 3 looks at: per (workflow, key), the stage and the closing.
/// Per instance: its stage, whether it closed, and when it last moved.
type Snapshot = HashMap<(u32, String), (Option<u32>, Option<(Outcome, i64)>, i64)>;

fn snapshot(simulation: &Simulation) -> Snapshot {
    let mut snapshot = Snapshot::new();
    if let Some(engine) = simulation.engine() {
        for w in 0..program().workflows.len() as u32 {
            for (key, instance) in engine.instances(w) {
                snapshot.insert((w, key.to_string()), (instance.stage, instance.closed(), instance.entered_at));
            }
        }
    }
    snapshot
}

/// The workflow graph: the stages reachable in one or more steps from each
/// stage, and those reachable from a start step (the starts included).
struct Graph {
    later: Vec<Vec<BTreeSet<u32>>>,
    from_start: Vec<BTreeSet<u32>>,
}

fn graph(program: &Program) -> Graph {
    let mut later = Vec::new();
    let mut from_start = Vec::new();
    for workflow in &program.workflows {
        let n = workflow.stages.len();
        let mut reach: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
        for step in &workflow.steps {
            for &source in &step.sources {
                reach[source as usize].insert(step.id);
            }
        }
        // Transitive closure; the graphs are tiny.
        loop {
            let mut grew = false;
            for a in 0..n {
                let next: BTreeSet<u32> = reach[a].iter().flat_map(|&b| reach[b as usize].clone()).collect();
                let before = reach[a].len();
                reach[a].extend(next);
                grew |= reach[a].len() > before;
            }
            if !grew {
                break;
            }
        }
        let starts = workflow.steps.iter().filter(|s| s.sources.is_empty()).map(|s| s.id);
        from_start.push(starts.flat_map(|s| std::iter::once(s).chain(reach[s as usize].clone())).collect());
        later.push(reach);
    }
    Graph { later, from_start }
}

/// Whether an instance may have been forgotten: a closed one `retain` after
/// it closed, an open one `retain` after it last moved (the engine forgets
/// items that have nothing left to wait for).
fn expired(workflow: &mon_compiler::ir::Workflow, closed: Option<(Outcome, i64)>, moved: i64, clock: i64) -> bool {
    let since = closed.map_or(moved, |(_, at)| at);
    clock >= since + workflow.retain_ms as i64
}

/// Checks one snapshot against the previous one (after line `n`, the
/// engine's clock now at `clock`).
fn check_moves(graph: &Graph, before: &Snapshot, after: &Snapshot, clock: i64, n: &str) -> Result<(), String> {
    let program = program();
    for ((w, key), &(stage, closed, _)) in after {
        let workflow = &program.workflows[*w as usize];
        let what = format!("after {n}: {} instance {key:?} (stage {stage:?}, closed {closed:?})", workflow.name);
        match stage {
            None if workflow.schedule.is_none() => return Err(format!("{what}: no stage, not a scheduled workflow")),
            None if closed.is_some() => return Err(format!("{what}: closed without ever starting")),
            None => {}
            Some(s) => {
                if !graph.from_start[*w as usize].contains(&s) {
                    return Err(format!("{what}: stage not reachable from a start step"));
                }
                let closes = workflow.stages[s as usize].closes;
                match closed {
                    None if closes.is_some() => return Err(format!("{what}: open in a closing stage")),
                    Some((outcome, _)) if closes != Some(outcome) => {
                        return Err(format!("{what}: closed with another outcome than its stage's {closes:?}"))
                    }
                    _ => {}
                }
            }
        }
        let earlier = before.get(&(*w, key.clone()));
        if earlier.is_some_and(|&(s, c, _)| (s, c) == (stage, closed)) {
            continue;
        }
        let new_at_a_start = || {
            let start = stage.map(|s| workflow.steps[s as usize].sources.is_empty());
            if workflow.schedule.is_none() && start != Some(true) {
                return Err(format!("{what}: a new instance that is not at a start step"));
            }
            Ok(())
        };
        match earlier {
            None => new_at_a_start()?,
            Some(&(old_stage, old_closed, moved)) => {
                let moved_on = moved_on(graph, *w, (old_stage, old_closed), (stage, closed), &what);
                // An instance that may have been forgotten may have been
                // replaced by a new one, or kept and moved on: the engine
                // may forget it then, but need not.
                if moved_on.is_err() && expired(workflow, old_closed, moved, clock) {
                    new_at_a_start()?;
                } else {
                    moved_on?;
                }
            }
        }
    }
    for ((w, key), &(stage, closed, moved)) in before {
        let workflow = &program.workflows[*w as usize];
        if !after.contains_key(&(*w, key.clone())) && !expired(workflow, closed, moved, clock) {
            let name = &workflow.name;
            return Err(format!("after {n}: {name} instance {key:?} (stage {stage:?}, closed {closed:?}) vanished"));
        }
    }
    Ok(())
}

/// Whether an instance kept its key from `from` to `to` as the graph allows:
/// forward only, and never once closed.
fn moved_on(
    graph: &Graph,
    w: u32,
    (old_stage, old_closed): (Option<u32>, Option<(Outcome, i64)>),
    (stage, closed): (Option<u32>, Option<(Outcome, i64)>),
    what: &str,
) -> Result<(), String> {
    if old_closed.is_some() && (old_stage, old_closed) != (stage, closed) {
        return Err(format!("{what}: was closed in stage {old_stage:?} ({old_closed:?}) and moved"));
    }
    if old_stage != stage {
        if let (Some(a), Some(b)) = (old_stage, stage) {
            if !graph.later[w as usize][a as usize].contains(&b) {
                return Err(format!("{what}: moved from stage {a} to {b}, which is not later in the graph"));
            }
        }
        if stage.is_none() {
            return Err(format!("{what}: lost its stage {old_stage:?}"));
        }
    }
    Ok(())
}

/// Feeds a stream and checks every instance's moves after each line and at
/// the end; counts the instances that changed into `moves`.
fn stages_move_forward(graph: &Graph, case: &Case, moves: &AtomicUsize) -> Result<(), String> {
    let mut records = Vec::new();
    let mut simulation = Simulation::new(program(), functions(), case.from, case.until);
    let mut before = snapshot(&simulation);
    // The clock as §7 moves it: to each event's time (those past
    // `--until` are skipped), then to `--until` or the last event's time.
    let decoder = Decoder::new(program());
    let mut clock = case.from;
    for (i, line) in case.lines.iter().enumerate() {
        simulation.feed(line, &mut records);
        if let Decoded::Event(Event { time, .. }) | Decoded::Ignored { time, .. } = decoder.decode(line) {
            if case.until.is_none_or(|until| time <= until) {
                clock = clock.max(Some(time));
            }
        }
        let after = snapshot(&simulation);
        check_moves(graph, &before, &after, clock.unwrap_or(i64::MIN), &format!("line {i}"))?;
        moves.fetch_add(after.iter().filter(|(k, v)| before.get(k) != Some(v)).count(), Ordering::Relaxed);
        before = after;
    }
    simulation.finish(&mut records);
    let end = clock.max(case.until).unwrap_or(i64::MIN);
    check_moves(graph, &before, &snapshot(&simulation), end, "finish")
}

#[test]
fn instances_move_forward_along_the_graph_and_never_after_closing() {
    let graph = graph(program());
    let moves = AtomicUsize::new(0);
    check_streams("stages", 512, streams(), |case| stages_move_forward(&graph, case, &moves));
    assert!(moves.into_inner() > 0, "no instance ever moved in the generated streams");
}

/// Found by the property in CI: T001 waited a day past its last move (its
/// `retain`) while T002 moved the clock, then its late verification came.
/// The engine may forget T001 then but need not; it kept it and moved it on.
#[test]
fn an_instance_past_its_retention_may_still_move_on() {
    let event = |id: &str, kind: &str, day: u32, data: &str| {
        let trade = &id[..4];
        format!(
            r#"{{"specversion":"1.0","type":"{kind}","id":"{id}","source":"props","time":"2026-03-{day}T00:00:00Z","data":{{"trade_id":"{trade}"{data}}}}}"#
        )
    };
    let lines = vec![
        event("T001-0", "trade_ingested", 27, r#","region":"EMEA","book":"B1""#),
        event("T002-0", "trade_ingested", 28, r#","region":"EMEA","book":"B1""#),
        event("T001-1", "trade_verified", 27, r#","system":"S2""#),
    ];
    let case = Case { lines, from: None, until: None };
    stages_move_forward(&graph(program()), &case, &AtomicUsize::new(0)).unwrap();
    // The case the checker refused: T001 kept, and moved on to `verified`.
    let mut simulation = Simulation::new(program(), functions(), None, None);
    for line in &case.lines {
        simulation.feed(line, &mut Vec::new());
    }
    let verified = Some(TRADE_STEPS.iter().position(|(step, ..)| *step == "verified").unwrap() as u32);
    assert_eq!(snapshot(&simulation)[&(0, "T001".to_string())].0, verified);
}

// ---------------------------------------------------------------------------
// 4. Timing records
// ---------------------------------------------------------------------------

fn timing_records_agree_with_deadlines(records: &[Record]) -> Result<(), String> {
    let program = program();
    for record in records {
        let show = || serde_json::to_string(record).expect("json");
        if !matches!(record.kind, Kind::Missing | Kind::AtRisk | Kind::Late) {
            continue;
        }
        let workflow = program.workflows.iter().find(|w| Some(&w.name) == record.workflow.as_ref());
        let step = workflow.and_then(|w| w.steps.iter().find(|s| Some(&s.name) == record.step.as_ref()));
        let (Some(step), Some(deadline)) = (step, record.deadline) else {
            return Err(format!("a timing record without a known step or a deadline: {}", show()));
        };
        match record.kind {
            Kind::Missing => {
                let due = deadline + step.grace_ms as i64;
                if record.at < due {
                    return Err(format!("missing before deadline + grace ({}): {}", step.grace_ms, show()));
                }
                if record.at != due {
                    return Err(format!("missing not made when its timer was due (deadline + grace): {}", show()));
                }
                if step.optional {
                    return Err(format!("an optional step is never missing: {}", show()));
                }
            }
            Kind::AtRisk => {
                if record.at >= deadline {
                    return Err(format!("at_risk not before its deadline: {}", show()));
                }
                if step.optional {
                    return Err(format!("an optional step is never at risk: {}", show()));
                }
            }
            _ => {
                if record.delay_ms != Some(record.at - deadline) || record.at <= deadline {
                    return Err(format!("late without delay_ms = at - deadline > 0: {}", show()));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn missing_at_risk_and_late_records_agree_with_their_deadlines() {
    let seen: [AtomicUsize; 3] = Default::default();
    check_streams("timing records", 1024, streams(), |case| {
        let records = simulate(case);
        for (kind, count) in [Kind::Missing, Kind::AtRisk, Kind::Late].iter().zip(&seen) {
            count.fetch_add(records.iter().filter(|r| r.kind == *kind).count(), Ordering::Relaxed);
        }
        timing_records_agree_with_deadlines(&records)
    });
    let seen = seen.map(AtomicUsize::into_inner);
    assert!(seen.iter().all(|&n| n > 0), "some kind never came up (missing, at_risk, late): {seen:?}");
}

// ---------------------------------------------------------------------------
// 5. Planted stalls
// ---------------------------------------------------------------------------

/// A lifecycle stream: 20–300 trades ingested within ten minutes, each
/// event on time, some trades stalled.
#[derive(Clone, Debug)]
struct Lifecycle {
    trades: Vec<Trade>,
}

impl Lifecycle {
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (i, trade) in self.trades.iter().enumerate() {
            trade.lines(program(), trade_base(), &format!("T{i:03}"), &mut lines);
        }
        order(lines)
    }

    fn until(&self, lines: &[String]) -> i64 {
        let last = lines.iter().filter_map(|l| {
            let value: serde_json::Value = serde_json::from_str(l).ok()?;
            mon_stdlib::time::parse_rfc3339(value.get("time")?.as_str()?)
        });
        last.max().unwrap_or_else(trade_base) + DAY
    }

    fn describe(&self) -> String {
        let lines = self.lines();
        let stalls: Vec<String> = (self.trades.iter().enumerate())
            .filter_map(|(i, t)| t.stalled_at().map(|s| format!("T{i:03} after {}", TRADE_STEPS[s as usize].0)))
            .collect();
        let until = mon_stdlib::time::format_rfc3339(self.until(&lines));
        format!("--until {until}; stalled: {}\n{}", stalls.join(", "), lines.join("\n"))
    }
}

/// The step a trade left in `stage` must be reported missing for: the one
/// non-optional step with a deadline whose timer entering the stage arms.
fn expected_missing(stage: u32) -> &'static str {
    let workflow = &program().workflows[TRADE as usize];
    let due: Vec<&str> = workflow.stages[stage as usize]
        .timers
        .iter()
        .map(|&s| &workflow.steps[s as usize])
        .filter(|s| !s.optional && s.timing.has_deadline())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(due.len(), 1, "the rules have one step that can go missing after stage {stage}");
    TRADE_STEPS.iter().find(|s| s.0 == due[0]).expect("a known step").0
}

#[test]
fn every_planted_stall_is_reported_missing_exactly_once() {
    let strategy =
        prop::collection::vec(trade(false, 10 * MINUTE as u32), 20..300).prop_map(|trades| Lifecycle { trades });
    check("planted stalls", 256, strategy, Lifecycle::describe, |lifecycle| {
        let lines = lifecycle.lines();
        let records = simulate(&Case { until: Some(lifecycle.until(&lines)), from: None, lines });
        let mut reported: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for record in
            records.iter().filter(|r| r.kind == Kind::Missing && r.workflow.as_deref() == Some("trade_lifecycle"))
        {
            let id = record.key.as_ref().and_then(|k| k.get("trade_id")).cloned().unwrap_or_default();
            reported.entry(id).or_default().push(record.step.clone().unwrap_or_default());
        }
        for (i, trade) in lifecycle.trades.iter().enumerate() {
            let id = format!("T{i:03}");
            let got = reported.remove(&id).unwrap_or_default();
            let want: Vec<String> = trade.stalled_at().map(|s| expected_missing(s).to_string()).into_iter().collect();
            if got != want {
                return Err(format!("{id}: missing records for {got:?}, expected {want:?}"));
            }
        }
        if let Some((id, steps)) = reported.into_iter().next() {
            return Err(format!("missing records for {steps:?} of an unknown trade {id:?}"));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// 6. Partitioned
// ---------------------------------------------------------------------------

/// The partition a producer keying by item would put a line on: by its
/// trade or job, and anything without one (an unknown type, a rejected
/// line) by its position.
fn partition_of(line: &str, n: usize, partitions: u16) -> u16 {
    let data: Option<serde_json::Value> = serde_json::from_str(line).ok();
    let item = data.as_ref().and_then(|d| d["data"]["trade_id"].as_str().or(d["data"]["job_id"].as_str()));
    let hash = match item {
        Some(item) => item.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))),
        None => n as u32,
    };
    (hash % u32::from(partitions)) as u16
}

/// The stream run by one engine per partition ([`Partitioned`]).
fn simulate_partitioned(case: &Case, partitions: u16) -> (Vec<Record>, Partitioned<'static>) {
    let mut records = Vec::new();
    let decoder = Decoder::new(program());
    let mut run = Partitioned::new(program(), functions(), partitions, case.from, case.until);
    for (n, line) in case.lines.iter().enumerate() {
        let decoded = decoder.decode(line);
        run.feed_decoded(&decoded, None, partition_of(line, n, partitions), &mut records);
    }
    run.finish(&mut records);
    (records, run)
}

/// What a status view shows of a slice, less the keys of the oldest items
/// (between items that entered at the same instant, which one is named
/// depends on the order the engines are walked in).
fn slice_view(part: &aggregates::Part, workflow: &mon_compiler::ir::Workflow) -> String {
    let oldest = &part.oldest;
    let entered = |w: &Option<aggregates::Witness>| w.as_ref().map(|w| w.entered_at);
    format!(
        "{:?} aged {:?} next {:?} oldest {:?} {:?} {:?} {:?} {:?} {:?}",
        part.metrics,
        part.aged,
        part.next_deadline,
        entered(&oldest.in_flight),
        entered(&oldest.missing),
        entered(&oldest.at_risk),
        entered(&oldest.late),
        entered(&oldest.failed),
        part.verdict(workflow).status,
    )
}

/// Every workflow's breakdown (whole, stages, groups) as views show it.
fn breakdown_views(states: &[&State], now: i64) -> Vec<String> {
    let mut views = Vec::new();
    for workflow in &program().workflows {
        let b = aggregates::breakdown_over(states, workflow, now);
        views.push(format!("{} whole {}", workflow.name, slice_view(&b.whole, workflow)));
        for (stage, part) in b.stages.iter().enumerate() {
            views.push(format!("{} stage {stage} {}", workflow.name, slice_view(part, workflow)));
        }
        for (group, part) in &b.groups {
            views.push(format!("{} group {group:?} {}", workflow.name, slice_view(part, workflow)));
        }
        let status = aggregates::status_over(states, workflow, &aggregates::Slice::default(), now);
        views.push(format!("{} status {status:?}", workflow.name));
    }
    views
}

fn sorted_json(records: &[Record]) -> Vec<String> {
    let mut json = json(records);
    json.sort();
    json
}

/// Lines in time order only: each line earlier than one before it (a
/// disorder swap, a redelivery) is left out. Lines without a time stay.
fn in_time_order(mut case: Case) -> Case {
    let mut latest = i64::MIN;
    case.lines.retain(|line| {
        let time = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["time"].as_str().and_then(mon_stdlib::time::parse_rfc3339));
        match time {
            Some(time) if time < latest => false,
            Some(time) => {
                latest = time;
                true
            }
            None => true,
        }
    });
    case
}

/// The property holds on streams in time order. An engine's clock moves
/// with its own partition's events only, and on such a stream that is the
/// one engine's clock at the next event of the partition, which is all
/// that decides a record: the same records, by content, in another order.
/// Out of order, the engines differ, and neither is wrong: an old
/// redelivery that one engine no longer remembers (its clock, moved by
/// other partitions, passed the item's `retain`) is still a duplicate to
/// the engine of its partition, as it is to a Kafka Streams task.
#[test]
fn one_engine_per_partition_gives_the_records_of_one_engine() {
    let strategy = (stream(), 1u16..5).prop_map(|(stream, partitions)| (in_time_order(stream.case()), partitions));
    let made = AtomicUsize::new(0);
    check(
        "partitioned",
        256,
        strategy,
        |(case, partitions)| format!("{partitions} partitions\n{}", case.describe()),
        |(case, partitions)| {
            let mut records = Vec::new();
            let mut single = Simulation::new(program(), functions(), case.from, case.until);
            for line in &case.lines {
                single.feed(line, &mut records);
            }
            let end = single.finish(&mut records);
            let one = sorted_json(&records);
            let (records, run) = simulate_partitioned(case, *partitions);
            let split = sorted_json(&records);
            made.fetch_add(one.len(), Ordering::Relaxed);
            // The views over all engines are those of the one engine.
            if let (Some(state), Some(end)) = (single.state(), end) {
                let states: Vec<&State> = run.states().collect();
                let (one, split) = (breakdown_views(&[state], end), breakdown_views(&states, end));
                if let Some((a, b)) = one.iter().zip(&split).find(|(a, b)| a != b) {
                    return Err(format!("one engine's view:\n{a}\n{partitions} engines' view:\n{b}"));
                }
                if one.len() != split.len() {
                    return Err(format!("views: {one:#?}\nagainst {split:#?}"));
                }
                // And each group's numbers are the one engine's, counted
                // straight from its state (a breakdown adds groups up even
                // for one engine).
                for workflow in &program().workflows {
                    for (values, part) in aggregates::breakdown_over(&states, workflow, end).groups {
                        let slice = aggregates::Slice { stage: None, group: Some(&values) };
                        let direct = aggregates::metrics(state, workflow, &slice, end);
                        if part.metrics != direct {
                            return Err(format!(
                                "{} {values:?}: {:?}\nagainst {direct:?}",
                                workflow.name, part.metrics
                            ));
                        }
                    }
                }
            }
            if one != split {
                let only = |a: &[String], b: &[String]| {
                    a.iter().filter(|r| !b.contains(r)).cloned().collect::<Vec<_>>().join("\n")
                };
                return Err(format!(
                    "only from one engine:\n{}\nonly from {partitions} engines:\n{}",
                    only(&one, &split),
                    only(&split, &one)
                ));
            }
            Ok(())
        },
    );
    assert!(made.into_inner() > 0, "the generated streams made no records at all");
}
