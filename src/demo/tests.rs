//! The generator's own tests: the same seed and start give the same lines
//! however `until` is called, the lines are ordered CloudEvents with unique
//! ids, and an hour of them, replayed through the examples, is valid and
//! shows every colour. The helpers here (a run, a replay) serve the
//! scenarios' tests too.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use mon_compiler::compile;
use mon_compiler::ir::Program;
use mon_loader::{load_tree, FsSchemas};
use mon_runtime::aggregates::{self, Slice, Status};
use mon_runtime::simulate::Simulation;
use mon_runtime::{Kind, Record};
use mon_stdlib::time::parse_rfc3339;
use serde_json::Value;

use super::{Generator, HISTORY_MS, HOUR, MINUTE, SECOND};

pub(super) const SEED: u64 = 20260303;
/// Tuesday 3 March 2026, 07:50 in London (GMT): the hour covers the
/// positions file's 08:00 deadline.
const MORNING: &str = "2026-03-03T07:50:00Z";

pub(super) fn at(text: &str) -> i64 {
    parse_rfc3339(text).expect("a valid timestamp")
}

/// Every `.mon` file under `examples/`, compiled as one program (as `mon demo` does).
pub(super) fn examples_program() -> Program {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let files = load_tree(&dir).expect("examples/ is readable").files;
    let compilation = compile(&files, mon_stdlib::registry(), &FsSchemas);
    compilation.program.unwrap_or_else(|| panic!("examples/ compiles: {:?}", compilation.diagnostics))
}

/// A generator's lines from `start` to `end`, asked for once a minute
/// (the demo asks more often; the result is the same, see below).
pub(super) fn run(seed: u64, start: i64, end: i64) -> Vec<String> {
    let mut generator = Generator::new(seed, start);
    let mut lines = generator.until(start);
    let mut now = start;
    while now < end {
        now = (now + MINUTE).min(end);
        lines.extend(generator.until(now));
    }
    lines
}

pub(super) fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// What a replay made: its records, and the engine's view at the end.
pub(super) struct Replay {
    pub(super) records: Vec<Record>,
    /// Records made by the time the backlog had been fed.
    pub(super) backlog_records: Vec<Record>,
    pub(super) rejected: u64,
    /// (workflow, group) -> status at the end; the group is "" for the whole workflow.
    pub(super) statuses: BTreeMap<(String, String), Status>,
    /// workflow -> (completed, failed, in flight) at the end.
    pub(super) outcomes: BTreeMap<String, (u64, u64, u64)>,
}

/// Replays `lines` on a virtual clock up to `end`. Monitoring starts at
/// `from`, as the demo's wall-clock engine does, or with `None` at the
/// first event, as `mon simulate` does.
pub(super) fn replay(program: &Program, lines: &[String], backlog: usize, from: Option<i64>, end: i64) -> Replay {
    let mut simulation = Simulation::new(program, mon_stdlib::registry(), from, Some(end));
    let mut records = Vec::new();
    let mut backlog_records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        simulation.feed(line, &mut records);
        if i + 1 == backlog {
            backlog_records = records.clone();
        }
    }
    simulation.finish(&mut records);
    let engine = simulation.engine().expect("events were fed");
    let mut statuses = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for workflow in &program.workflows {
        let whole = Slice::default();
        statuses
            .insert((workflow.name.clone(), String::new()), aggregates::status(&engine.state, workflow, &whole, end));
        let m = aggregates::metrics(&engine.state, workflow, &whole, end);
        outcomes.insert(workflow.name.clone(), (m.completed, m.failed, m.in_flight));
        let groups: BTreeSet<Vec<String>> =
            engine.instances(workflow.id).map(|(_, i)| engine.state.group(i.group).to_vec()).collect();
        for group in groups.iter().filter(|g| !g.is_empty()) {
            let slice = Slice { stage: None, group: Some(group) };
            let status = aggregates::status(&engine.state, workflow, &slice, end);
            statuses.insert((workflow.name.clone(), group.join("/")), status);
        }
    }
    Replay { records, backlog_records, rejected: simulation.rejected, statuses, outcomes }
}

pub(super) fn count_by_kind(records: &[Record]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.kind.name()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn generator_same_seed_and_start_same_lines_however_asked() {
    let start = at(MORNING);
    let end = start + HOUR;
    let once = Generator::new(SEED, start).until(end);
    // Asked every 7 s, as a demo loop might, with a repeated `now` in between.
    let mut generator = Generator::new(SEED, start);
    let mut chunked = Vec::new();
    let mut now = start - 5 * MINUTE;
    while now < end {
        now = (now + 7 * SECOND).min(end);
        chunked.extend(generator.until(now));
        assert!(generator.until(now).is_empty(), "a second call with the same now returns nothing new");
    }
    assert_eq!(once.len(), chunked.len());
    assert!(once == chunked, "the same events, whatever the spacing of the calls");
    assert!(generator.until(end).is_empty());
    // A later call continues where the last one stopped.
    assert!(!generator.until(end + MINUTE).is_empty());

    let other_seed = Generator::new(SEED + 1, start).until(start);
    let same_seed = Generator::new(SEED, start).until(start);
    assert_ne!(other_seed, same_seed);
}

#[test]
fn generator_lines_are_ordered_cloudevents_with_unique_ids() {
    let start = at(MORNING);
    let lines = run(SEED, start, start + HOUR);
    let mut ids = HashSet::new();
    let mut last = i64::MIN;
    let mut types = BTreeSet::new();
    for line in &lines {
        let event = parse(line);
        let keys: Vec<&str> = event.as_object().expect("an object").keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ["data", "id", "source", "specversion", "time", "type"], "{line}");
        assert_eq!(event["specversion"], "1.0");
        assert!(event["source"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(event["data"].is_object());
        let time = event["time"].as_str().expect("a time");
        // RFC 3339 UTC with milliseconds: 2026-03-03T08:10:00.000Z
        assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.', "{time}");
        let t = parse_rfc3339(time).expect("an RFC 3339 time");
        assert!(t >= last, "time order: {line}");
        assert!(t <= start + HOUR);
        last = t;
        assert!(ids.insert(event["id"].as_str().expect("an id").to_string()), "unique ids: {line}");
        types.insert(event["type"].as_str().expect("a type").to_string());
    }
    // All four use cases are present in this morning hour.
    for t in ["trade_ingested", "sys3_reply", "order_placed", "trade_confirmed", "batch_c_completed", "file_loaded"] {
        assert!(types.contains(t), "no {t} in {types:?}");
    }

    // The backlog starts about HISTORY_MS before the start, and the
    // positions file of the 08:00 occurrence may make it a bit earlier.
    let first = parse_rfc3339(parse(&lines[0])["time"].as_str().expect("a time")).expect("a time");
    assert!(first <= start - HISTORY_MS + 2 * SECOND, "history begins at the window");
    assert!(first >= start - HISTORY_MS - HOUR);

    // Pace: a few events a second, about one trade or order started a second.
    let forward: Vec<Value> = lines
        .iter()
        .map(|l| parse(l))
        .filter(|e| parse_rfc3339(e["time"].as_str().unwrap()).unwrap() > start)
        .collect();
    let per_second = forward.len() as f64 / 3600.0;
    assert!((2.0..=10.0).contains(&per_second), "{per_second} events/s");
    let starts = forward.iter().filter(|e| e["type"] == "trade_ingested" || e["type"] == "order_placed").count();
    let per_second = starts as f64 / 3600.0;
    assert!((0.8..=5.0).contains(&per_second), "{per_second} flows/s");
}

#[test]
fn an_hour_of_demo_events_is_valid_and_shows_every_colour() {
    let program = examples_program();
    let start = at(MORNING);
    let end = start + HOUR;
    let mut generator = Generator::new(SEED, start);
    let mut lines = generator.until(start);
    let backlog = lines.len();
    let mut now = start;
    while now < end {
        now += SECOND;
        lines.extend(generator.until(now));
    }
    let replay = replay(&program, &lines, backlog, Some(start), end);

    let first_rejection = replay.records.iter().find(|r| r.kind == Kind::Rejected);
    assert_eq!(replay.rejected, 0, "every event fits its declaration: {first_rejection:?}");
    let counts = count_by_kind(&replay.records);
    let mut by_step: BTreeMap<(String, String, &str), usize> = BTreeMap::new();
    for r in &replay.records {
        let (workflow, step) = (r.workflow.clone().unwrap_or_default(), r.step.clone().unwrap_or_default());
        *by_step.entry((workflow, step, r.kind.name())).or_insert(0) += 1;
    }
    eprintln!("{} events ({backlog} in the backlog); records by kind: {counts:?}", lines.len());
    eprintln!("records by workflow, step and kind: {by_step:?}");
    eprintln!("outcomes (completed, failed, in flight): {:?}", replay.outcomes);
    eprintln!("statuses: {:?}", replay.statuses);
    for kind in ["missing", "late", "at_risk", "out_of_order", "early", "duplicate", "unexpected"] {
        assert!(counts.get(kind).copied().unwrap_or(0) > 0, "no {kind} record: {counts:?}");
    }
    // Some alerts are already there when the demo opens.
    let backlog_counts = count_by_kind(&replay.backlog_records);
    eprintln!("records from the backlog alone: {backlog_counts:?}");
    assert!(backlog_counts.get("missing").copied().unwrap_or(0) > 0, "{backlog_counts:?}");
    assert!(backlog_counts.get("at_risk").copied().unwrap_or(0) > 0, "{backlog_counts:?}");
    assert!(replay.backlog_records.iter().any(Record::is_alert));

    // Most trades complete: the ones not done are the last few minutes'
    // in flight, the NACKs and System 3's silences.
    let trades: HashSet<String> = lines
        .iter()
        .map(|l| parse(l))
        .filter(|e| e["type"] == "trade_ingested")
        .map(|e| e["data"]["trade_id"].as_str().expect("a trade id").to_string())
        .collect();
    let (completed, failed, in_flight) = replay.outcomes["trade_lifecycle"];
    assert!(completed as f64 >= 0.9 * trades.len() as f64, "{completed} of {} trades completed", trades.len());
    assert!(failed > 0 && failed as f64 <= 0.02 * trades.len() as f64, "{failed} failed");
    assert!(in_flight > 0);
    let (orders_completed, _, _) = replay.outcomes["order_flow"];
    let orders = lines.iter().filter(|l| l.contains(r#""type":"order_placed""#)).count();
    assert!(orders_completed as f64 >= 0.85 * orders as f64, "{orders_completed} of {orders} orders completed");

    // The morning's positions file was watched, and none of its events was a stray.
    let (positions_done, _, positions_open) = replay.outcomes["daily_positions"];
    assert_eq!(positions_done + positions_open, 1, "one occurrence for 3 March");
    assert!(!replay
        .records
        .iter()
        .any(|r| r.kind == Kind::Unexpected && r.workflow.as_deref() == Some("daily_positions")));

    // The wallboard shows all three colours among the groups.
    let colours: BTreeSet<Status> = replay.statuses.values().copied().collect();
    assert_eq!(colours.len(), 3, "{:?}", replay.statuses);
    let status = |workflow: &str, group: &str| replay.statuses[&(workflow.to_string(), group.to_string())];
    assert_eq!(status("trade_lifecycle", "EMEA/EQ-LDN-1"), Status::Green, "the reference book stays green");
    assert_eq!(status("order_flow", "XLON/EMEA/EQUITY"), Status::Green);

    // An engine that starts at the first event makes the same records.
    let from_first_event = self::replay(&program, &lines, backlog, None, end);
    assert_eq!(count_by_kind(&from_first_event.records), counts);
}

/// The examples with the demo's planted file for a start at `start`, as
/// `mon demo` runs them.
fn planted_program(start: i64) -> Program {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files = load_tree(&dir).expect("examples/ is readable").files;
    files.push(mon_compiler::SourceFile { path: super::planted::FILE.into(), text: super::planted::rules(start) });
    let compilation = compile(&files, mon_stdlib::registry(), &FsSchemas);
    compilation
        .program
        .unwrap_or_else(|| panic!("examples/ and the planted file compile: {:?}", compilation.diagnostics))
}

/// A demo started at `start`, 75 s later (the planted deadline is at most
/// a minute after the start): the workflow views as the wallboard reads
/// them, and the records made.
fn demo_views(start: i64) -> (mon_service::views::Views, Vec<Record>) {
    let program = planted_program(start);
    let end = start + 75 * SECOND;
    let lines = run(SEED, start, end);
    let mut simulation = Simulation::new(&program, mon_stdlib::registry(), Some(start), Some(end));
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    let state = simulation.state().expect("events were fed");
    (mon_service::views::build(&program, &[state], end, false), records)
}

/// Whatever the day, a minute after the start the planted file is missing
/// and its tile is red and says why (the rule, the count, the oldest key:
/// the date); every red or amber workflow says why in words.
fn shows_planted_trouble(start: &str, date: &str) -> mon_service::views::Views {
    let (views, records) = demo_views(at(start));
    let planted = super::planted::WORKFLOW;
    let missing: Vec<&Record> =
        records.iter().filter(|r| r.kind == Kind::Missing && r.workflow.as_deref() == Some(planted)).collect();
    assert_eq!(missing.len(), 1, "{start}: one missing file: {missing:?}");
    let tile = views.list.workflows.iter().find(|w| w.name == planted).expect("the planted workflow is on the board");
    assert_eq!(tile.status, "red", "{start}: {tile:?}");
    let reason = tile.why.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("missing > 0") && reason.contains("1 missing") && reason.contains(&format!("oldest {date}")),
        "{start}: the tile says why: {reason}"
    );
    for workflow in views.list.workflows.iter().filter(|w| w.status == "red" || w.status == "amber") {
        let why = workflow.why.reason.as_deref().unwrap_or_default();
        assert!(why.contains("oldest"), "{start}: {} is {} and says: {why:?}", workflow.name, workflow.status);
    }
    views
}

#[test]
fn a_demo_started_on_a_saturday_shows_a_missed_file_within_a_minute() {
    // Saturday 7 March 2026: the examples' weekday feeds expect nothing.
    let views = shows_planted_trouble("2026-03-07T13:20:10Z", "2026-03-07");
    for feed in ["daily_positions", "ny_eod_prices"] {
        let tile = views.list.workflows.iter().find(|w| w.name == feed).unwrap();
        assert_eq!((tile.status, tile.counts.in_flight), ("green", 0), "{feed} is idle on a Saturday: {tile:?}");
    }
}

#[test]
fn a_demo_started_on_a_weekday_shows_the_same_missed_file() {
    // Tuesday 3 March 2026, 10:05:30 UTC: due at 10:06.
    assert_eq!(super::planted::deadline(at("2026-03-03T10:05:30Z")), at("2026-03-03T10:06:00Z"));
    assert_eq!(super::planted::deadline(at("2026-03-03T10:05:00Z")), at("2026-03-03T10:06:00Z"), "never at the start");
    assert!(super::planted::rules(at("2026-03-03T10:05:30Z")).contains("by 10:06 every day"));
    shows_planted_trouble("2026-03-03T10:05:30Z", "2026-03-03");
}
