//! Activating a new rules version while events flow (`Live::activate`,
//! `engine/activate.rs`), and switching one workflow off and on: each test
//! compiles real `.mon` rules, drives `Live` with journaled inputs as the
//! service does, and checks one promise of the carry-over rules.
//! Programs are leaked to `'static`, as the service leaks its compiled
//! versions.

use mon_compiler::ir::{Outcome, Program};
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::alerts::{AlertState, BookConfig, Notification};
use mon_runtime::live::{decode_inputs, encode_inputs, Activation, ClockMode, Fed, Input, Live, Migration};
use mon_runtime::{Kind, Record};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Version 1: a trade is placed, verified within 30 minutes, booked within
/// 10 more; it may be cancelled after it is placed. A daily feed is due by
/// 08:00 UTC.
const V1: &str = r#"
event placed { id: string, book: string }
event verified { id: string, system: string }
event booked { id: string }
event cancelled { id: string }
event file_received { job: string }
channel ops webhook "http://ops.example/hook"
workflow trade {
  key id
  group by book
  notify ops
  expect placed
  then verified within 30m warn 20m
  then booked within 10m
  step cancel: cancelled after placed -> failure
}
"#;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn compiled(rules: &str) -> &'static Program {
    let sources = vec![SourceFile { path: "rules.mon".into(), text: rules.into() }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    let program = compilation.program.unwrap_or_else(|| panic!("rules do not compile: {:?}", compilation.diagnostics));
    Box::leak(Box::new(program))
}

/// Version 1 with `old` replaced by `new` (the replacement must happen).
fn edited(old: &str, new: &str) -> &'static Program {
    assert!(V1.contains(old), "V1 has {old:?}");
    compiled(&V1.replace(old, new))
}

fn start() -> i64 {
    mon_stdlib::time::parse_rfc3339("2026-03-02T09:00:00Z").expect("an instant")
}

fn line(kind: &str, n: &str, time: i64, data: &str) -> Input {
    let time = mon_stdlib::time::format_rfc3339(time);
    Input::Line(format!(r#"{{"type":"{kind}","id":"{kind}-{n}","time":"{time}","data":{data}}}"#))
}

fn placed(id: &str, time: i64) -> Input {
    line("placed", id, time, &format!(r#"{{"id":"{id}","book":"FX"}}"#))
}

fn verified(id: &str, time: i64) -> Input {
    line("verified", id, time, &format!(r#"{{"id":"{id}","system":"S2"}}"#))
}

fn booked(id: &str, time: i64) -> Input {
    line("booked", id, time, &format!(r#"{{"id":"{id}"}}"#))
}

fn cancelled(id: &str, time: i64) -> Input {
    line("cancelled", id, time, &format!(r#"{{"id":"{id}"}}"#))
}

/// A wall-clock `Live` with alerting, as the service runs it.
fn wall(program: &'static Program) -> Live<'static> {
    Live::new(program, mon_stdlib::registry(), ClockMode::Wall, None).with_alerts(BookConfig::default())
}

/// Applies inputs in order (ticks before events at the same instant).
fn feed_inputs(live: &mut Live<'static>, inputs: &[Input], records: &mut Vec<Record>) {
    for input in inputs {
        live.apply(input, records);
    }
}

/// Announces version `version` and activates `program`, as the driver does.
fn activate(live: &mut Live<'static>, version: u64, program: &'static Program, out: &mut Vec<Record>) -> Migration {
    let fed = live.apply(&Input::Activate(Activation { version, hash: program.hash() }), out);
    assert_eq!(fed, Fed::Activate { version });
    live.activate(program, out)
}

fn of_kind(records: &[Record], kind: Kind) -> Vec<&Record> {
    records.iter().filter(|r| r.kind == kind).collect()
}

fn key(record: &Record) -> &str {
    record.key.as_ref().and_then(|k| k.get("id")).map_or("", String::as_str)
}

// ------------------------------------------------------------ same rules

/// A plan for the property: trades with the minutes after the start when
/// each step comes (`None`: it never does), and whether ticks come only at
/// events or every five minutes too.
#[derive(Clone, Debug)]
struct TradePlan {
    placed: u16,
    verified: Option<u16>,
    booked: Option<u16>,
    cancelled: Option<u16>,
}

fn trade_plan() -> impl Strategy<Value = TradePlan> {
    (0..120u16, prop::option::of(0..60u16), prop::option::of(0..30u16), prop::option::weighted(0.2, 0..90u16))
        .prop_map(|(placed, verified, booked, cancelled)| TradePlan { placed, verified, booked, cancelled })
}

fn inputs_of(trades: &[TradePlan]) -> Vec<Input> {
    let mut timed: Vec<(i64, u8, Input)> = Vec::new();
    for (n, t) in trades.iter().enumerate() {
        let id = format!("T{n}");
        let at = start() + i64::from(t.placed) * MINUTE;
        timed.push((at, 1, placed(&id, at)));
        let verified_at = t.verified.map(|v| at + i64::from(v) * MINUTE);
        if let Some(v) = verified_at {
            timed.push((v, 1, verified(&id, v)));
        }
        if let (Some(v), Some(b)) = (verified_at, t.booked) {
            let b = v + i64::from(b) * MINUTE;
            timed.push((b, 1, booked(&id, b)));
        }
        if let Some(c) = t.cancelled {
            let c = at + i64::from(c) * MINUTE;
            timed.push((c, 1, cancelled(&id, c)));
        }
    }
    // The wall clock ticks every five minutes and at each event.
    let events: Vec<i64> = timed.iter().map(|(at, ..)| *at).collect();
    for at in events.into_iter().chain((0..60).map(|n| start() + n * 5 * MINUTE)) {
        timed.push((at, 0, Input::Tick(at)));
    }
    timed.sort_by_key(|(at, order, _)| (*at, *order));
    timed.dedup_by(|a, b| matches!((&a.2, &b.2), (Input::Tick(x), Input::Tick(y)) if x == y));
    timed.into_iter().map(|(.., input)| input).collect()
}

/// Records and notifications of one run, activating `again` (the same
/// rules, compiled a second time) before input `at`, if given.
fn run_same(mode: ClockMode, inputs: &[Input], at: Option<usize>) -> (Vec<Record>, Vec<Notification>, Migration) {
    static RULES: std::sync::OnceLock<(&'static Program, &'static Program)> = std::sync::OnceLock::new();
    let (first, again) = *RULES.get_or_init(|| (compiled(V1), compiled(V1)));
    let mut live = Live::new(first, mon_stdlib::registry(), mode, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    let mut migration = Migration::default();
    for (i, input) in inputs.iter().enumerate() {
        if at == Some(i) {
            migration = activate(&mut live, 2, again, &mut records);
        }
        live.apply(input, &mut records);
    }
    if at == Some(inputs.len()) {
        migration = activate(&mut live, 2, again, &mut records);
    }
    // Past every deadline, so the last timers fire after the activation.
    live.apply(&Input::Tick(start() + 24 * HOUR), &mut records);
    (records, live.take_notifications(), migration)
}

#[test]
fn activating_the_running_rules_changes_no_record() {
    let config = Config { cases: 48, failure_persistence: None, ..Config::default() };
    let strategy = (prop::collection::vec(trade_plan(), 1..8), any::<prop::sample::Index>());
    let mut runner = TestRunner::new(config);
    let with_records = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&strategy, |(trades, split)| {
        let inputs = inputs_of(&trades);
        let at = split.index(inputs.len() + 1);
        for mode in [ClockMode::Wall, ClockMode::Event] {
            let (records, notifications, _) = run_same(mode, &inputs, None);
            let (with, notified, migration) = run_same(mode, &inputs, Some(at));
            if !records.is_empty() {
                with_records.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            prop_assert_eq!(&with, &records, "{:?}: records, activation before input {}", mode, at);
            prop_assert_eq!(&notified, &notifications, "{:?}: notifications", mode);
            prop_assert!(migration.superseded.is_empty());
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Not a vacuous comparison: most streams leave some step undone.
    assert!(with_records.into_inner() > 48, "most of the 96 runs make records");
}

#[test]
fn activating_the_running_rules_carries_every_open_item() {
    let trades = [
        TradePlan { placed: 0, verified: None, booked: None, cancelled: None },
        TradePlan { placed: 1, verified: Some(1), booked: None, cancelled: None },
        TradePlan { placed: 2, verified: Some(1), booked: Some(1), cancelled: None },
    ];
    let inputs = inputs_of(&trades);
    let at = inputs.iter().position(|i| *i == Input::Tick(start() + 10 * MINUTE)).expect("a tick at 09:10");
    let (_, _, migration) = run_same(ClockMode::Wall, &inputs, Some(at));
    let carried: Vec<(&str, &str)> = migration.carried.iter().map(|c| (c.key.as_str(), c.stage.as_str())).collect();
    // T2 was booked at 09:04: closed, so carried but not listed.
    assert_eq!(carried, [("T0", "placed"), ("T1", "verified")]);
    assert_eq!((migration.carried_count, migration.superseded_count, migration.truncated), (2, 0, false));
}

// ------------------------------------------------------------ timing

#[test]
fn a_kept_stage_meets_the_new_deadline() {
    let v2 = edited("then verified within 30m warn 20m", "then verified within 1h");
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    feed_inputs(
        &mut live,
        &[Input::Tick(start()), placed("T1", start()), Input::Tick(start() + 10 * MINUTE)],
        &mut records,
    );
    let migration = activate(&mut live, 2, v2, &mut records);
    assert_eq!(migration.carried_count, 1);
    let ticks: Vec<Input> = (11..=70).map(|m| Input::Tick(start() + m * MINUTE)).collect();
    feed_inputs(&mut live, &ticks, &mut records);
    assert!(of_kind(&records, Kind::AtRisk).is_empty(), "the new rule has no warning: {records:?}");
    let missing = of_kind(&records, Kind::Missing);
    assert_eq!(missing.len(), 1, "{records:?}");
    assert_eq!(missing[0].deadline, Some(start() + HOUR), "within 1h of entering `placed`, not 30m");
    assert_eq!(missing[0].at, start() + HOUR);
    assert_eq!(missing[0].step.as_deref(), Some("verified"));
}

#[test]
fn a_deadline_already_past_under_the_new_rule_fires_at_the_next_tick() {
    let v2 = edited("then verified within 30m warn 20m", "then verified within 5m");
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    feed_inputs(
        &mut live,
        &[Input::Tick(start()), placed("T1", start()), Input::Tick(start() + 10 * MINUTE)],
        &mut records,
    );
    activate(&mut live, 2, v2, &mut records);
    assert!(of_kind(&records, Kind::Missing).is_empty(), "nothing fires before the next tick");
    feed_inputs(&mut live, &[Input::Tick(start() + 10 * MINUTE + 1)], &mut records);
    let missing = of_kind(&records, Kind::Missing);
    assert_eq!(missing.len(), 1, "{records:?}");
    assert_eq!(missing[0].deadline, Some(start() + 5 * MINUTE));
    let alert = live.book().and_then(|b| b.alerts().next()).expect("the missing record opened an alert");
    assert_eq!(alert.program_hash, v2.hash(), "made under the new rules");
}

// ------------------------------------------------------------ superseded

#[test]
fn an_item_whose_stage_is_removed_is_superseded_and_its_alerts_resolve() {
    let v2 = edited("  then verified within 30m warn 20m\n  then booked within 10m", "  then booked within 40m");
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    let inputs = [
        Input::Tick(start()),
        placed("T1", start()),
        placed("T2", start()),
        verified("T2", start() + MINUTE),
        // T2's booking is due at 09:11: missing, with an open alert.
        Input::Tick(start() + 12 * MINUTE),
    ];
    feed_inputs(&mut live, &inputs, &mut records);
    let alert = live.book().and_then(|b| b.alerts().find(|a| a.key["id"] == "T2")).expect("T2's alert").id.clone();
    let before = records.len();
    let migration = activate(&mut live, 2, v2, &mut records);

    let superseded = of_kind(&records[before..], Kind::Superseded);
    assert_eq!(superseded.len(), 1, "{:?}", &records[before..]);
    let record = superseded[0];
    assert_eq!((record.workflow.as_deref(), key(record)), (Some("trade"), "T2"));
    assert_eq!(record.step.as_deref(), Some("verified"));
    assert_eq!(record.reason.as_deref(), Some("rules version 2: stage verified no longer exists"));
    assert_eq!(record.at, start() + 12 * MINUTE, "made at the engine's clock");
    assert!(record.severity.is_none(), "a flag, not an alert");
    let json = serde_json::to_value(record).expect("a record serialises");
    assert_eq!(json["kind"], "superseded");

    assert_eq!(migration.superseded.len(), 1);
    assert_eq!(migration.superseded[0].key, "T2");
    assert_eq!(migration.superseded[0].stage.as_deref(), Some("verified"));
    assert_eq!(migration.carried.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["T1"]);

    let book = live.book().expect("a book");
    let alert = book.alert(&alert).expect("the alert is kept until retain");
    assert_eq!(alert.state, AlertState::Resolved);
    assert!(alert.resolution.as_deref().is_some_and(|r| r.starts_with("superseded")), "{:?}", alert.resolution);

    let engine = live.engine().expect("an engine");
    let t2 = engine.instance(0, "T2").expect("kept, closed, until retain");
    assert_eq!(t2.closed(), Some((Outcome::Superseded, start() + 12 * MINUTE)));
    assert_eq!(t2.stage, None);
    // T1 carries on under the new timing: booked within 40m of 09:00.
    feed_inputs(&mut live, &[Input::Tick(start() + 41 * MINUTE)], &mut records);
    let missing: Vec<(&str, Option<&str>)> =
        of_kind(&records[before..], Kind::Missing).iter().map(|r| (key(r), r.step.as_deref())).collect();
    assert_eq!(missing, [("T1", Some("booked"))]);
}

#[test]
fn a_renamed_step_supersedes_the_items_in_its_stage() {
    let v2 = edited("then verified within 30m warn 20m", "then verified as checked within 30m warn 20m");
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    let inputs = [Input::Tick(start()), placed("T1", start()), placed("T2", start()), verified("T2", start() + MINUTE)];
    feed_inputs(&mut live, &inputs, &mut records);
    let migration = activate(&mut live, 3, v2, &mut records);
    let reasons: Vec<(&str, Option<&str>)> =
        of_kind(&records, Kind::Superseded).iter().map(|r| (key(r), r.reason.as_deref())).collect();
    assert_eq!(reasons, [("T2", Some("rules version 3: stage verified no longer exists"))]);
    assert_eq!(migration.carried.len(), 1);
    // T1 waits in `placed` for the renamed step, which its event takes.
    feed_inputs(&mut live, &[verified("T1", start() + 2 * MINUTE)], &mut records);
    let engine = live.engine().expect("an engine");
    let checked = engine.program().workflows[0].steps.iter().find(|s| s.name == "checked").expect("the step").id;
    assert_eq!(engine.instance(0, "T1").and_then(|i| i.stage), Some(checked));
}

#[test]
fn a_removed_workflow_supersedes_its_open_items_and_drops_the_closed_ones() {
    let v2 = compiled(
        r#"
event placed { id: string, book: string }
event shipped { id: string }
workflow shipping {
  key id
  expect placed
  then shipped within 1h
}
"#,
    );
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    let inputs = [
        Input::Tick(start()),
        placed("T1", start()),
        placed("T2", start()),
        cancelled("T2", start() + MINUTE),
        Input::Tick(start() + 31 * MINUTE),
    ];
    feed_inputs(&mut live, &inputs, &mut records);
    assert_eq!(of_kind(&records, Kind::Missing).len(), 1, "T1's verification is missing");
    let migration = activate(&mut live, 4, v2, &mut records);
    let superseded = of_kind(&records, Kind::Superseded);
    assert_eq!(superseded.len(), 1, "only the open item");
    assert_eq!(key(superseded[0]), "T1");
    assert_eq!(superseded[0].reason.as_deref(), Some("rules version 4: workflow trade removed"));
    assert_eq!(superseded[0].step.as_deref(), Some("placed"));
    assert_eq!((migration.carried_count, migration.superseded_count), (0, 1));
    let alerts: Vec<(&str, AlertState)> =
        live.book().expect("a book").alerts().map(|a| (a.kind.name(), a.state)).collect();
    assert_eq!(alerts.len(), 2, "at risk, then missing: {alerts:?}");
    assert!(alerts.iter().all(|(_, state)| *state == AlertState::Resolved), "{alerts:?}");
    // The new workflow starts empty and takes the next placement.
    let engine = live.engine().expect("an engine");
    assert_eq!(engine.instances(0).count(), 0);
    feed_inputs(&mut live, &[placed("T3", start() + 40 * MINUTE), Input::Tick(start() + 101 * MINUTE)], &mut records);
    let missing: Vec<(&str, Option<&str>)> = of_kind(&records, Kind::Missing)
        .iter()
        .filter(|r| r.workflow.as_deref() == Some("shipping"))
        .map(|r| (key(r), r.step.as_deref()))
        .collect();
    assert_eq!(missing, [("T3", Some("shipped"))]);
}

#[test]
fn a_new_scheduled_workflow_expects_from_the_activation_on() {
    let v2 = compiled(&format!(
        "{V1}\nworkflow feed {{\n  timezone UTC\n  expect file_received where job == \"F\" by 08:00 every day\n}}\n"
    ));
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    // Activated at 09:00, after that day's 08:00 deadline.
    feed_inputs(&mut live, &[Input::Tick(start())], &mut records);
    activate(&mut live, 2, v2, &mut records);
    let ticks: Vec<Input> = (1..=48).map(|h| Input::Tick(start() + h * HOUR)).collect();
    feed_inputs(&mut live, &ticks, &mut records);
    let missing: Vec<(Option<&str>, Option<&String>)> = of_kind(&records, Kind::Missing)
        .iter()
        .map(|r| (r.workflow.as_deref(), r.key.as_ref().and_then(|k| k.get("date"))))
        .collect();
    assert_eq!(
        missing,
        [(Some("feed"), Some(&"2026-03-03".to_string())), (Some("feed"), Some(&"2026-03-04".to_string()))],
        "not the 2nd, whose deadline passed before the activation"
    );
}

#[test]
fn changed_group_by_fields_leave_the_group_to_the_next_step() {
    let v2 = edited("group by book", "group by system");
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    feed_inputs(&mut live, &[Input::Tick(start()), placed("T1", start())], &mut records);
    activate(&mut live, 2, v2, &mut records);
    let group = |live: &Live| {
        let engine = live.engine().expect("an engine");
        engine.state.group(engine.instance(0, "T1").expect("T1").group).to_vec()
    };
    assert_eq!(group(&live), [""], "the empty group: `book` means nothing to `group by system`");
    feed_inputs(&mut live, &[verified("T1", start() + MINUTE)], &mut records);
    assert_eq!(group(&live), ["S2"], "filled in by the next step's event");
}

#[test]
fn the_migration_lists_a_thousand_items_and_counts_them_all() {
    let mut live = Live::new(compiled(V1), mon_stdlib::registry(), ClockMode::Event, None);
    let mut records = Vec::new();
    let inputs: Vec<Input> = (0..1005).map(|n| placed(&format!("T{n:04}"), start())).collect();
    feed_inputs(&mut live, &inputs, &mut records);
    let v2 = compiled(
        &V1.replace("  expect placed\n", "  expect placed as ordered\n").replace("after placed", "after ordered"),
    );
    let migration = activate(&mut live, 2, v2, &mut records);
    assert_eq!(migration.superseded_count, 1005);
    assert_eq!(migration.superseded.len(), mon_runtime::engine::LISTED);
    assert!(migration.truncated);
    assert_eq!(of_kind(&records, Kind::Superseded).len(), 1005, "every item has its record");
}

// ------------------------------------------------------------ journal and snapshots

#[test]
fn both_new_inputs_round_trip_through_the_journal() {
    let inputs = vec![
        Input::Tick(7),
        Input::Activate(Activation { version: u64::MAX, hash: "ab12".into() }),
        Input::SetEnabled { workflow: "trade".into(), enabled: false },
        Input::Line("{}".into()),
        Input::SetEnabled { workflow: "façade".into(), enabled: true },
        Input::Activate(Activation { version: 0, hash: String::new() }),
    ];
    let bytes = encode_inputs(&inputs);
    assert_eq!(decode_inputs(&bytes), Some(inputs));
    for cut in 1..bytes.len() {
        let decoded = decode_inputs(&bytes[..cut]);
        assert!(decoded.is_none() || decoded.is_some_and(|d| d.len() < 6), "cut at {cut} decodes whole");
    }
}

#[test]
fn a_snapshot_after_an_activation_resumes_exactly() {
    let v2 = edited("then verified within 30m warn 20m", "then verified within 45m warn 40m");
    for mode in [ClockMode::Wall, ClockMode::Event] {
        let before = [
            Input::Tick(start()),
            placed("T1", start()),
            placed("T2", start()),
            verified("T2", start() + MINUTE),
            Input::SetEnabled { workflow: "trade".into(), enabled: false },
            Input::SetEnabled { workflow: "trade".into(), enabled: true },
        ];
        let after: Vec<Input> = vec![
            placed("T3", start() + 5 * MINUTE),
            Input::Tick(start() + 20 * MINUTE),
            booked("T2", start() + 30 * MINUTE),
            Input::Tick(start() + 50 * MINUTE),
            placed("T4", start() + 2 * HOUR),
            Input::Tick(start() + 3 * HOUR),
        ];
        let mut live = Live::new(compiled(V1), mon_stdlib::registry(), mode, None).with_alerts(BookConfig::default());
        let mut records = Vec::new();
        feed_inputs(&mut live, &before, &mut records);
        activate(&mut live, 2, v2, &mut records);
        let snapshot = live.snapshot_bytes().expect("a snapshot");
        let mut resumed = Live::resume_bytes(v2, mon_stdlib::registry(), &snapshot)
            .expect("resumes")
            .with_alerts(BookConfig::default());
        let (mut straight, mut again) = (Vec::new(), Vec::new());
        feed_inputs(&mut live, &after, &mut straight);
        feed_inputs(&mut resumed, &after, &mut again);
        assert!(straight.iter().any(|r| r.kind == Kind::Missing), "{mode:?}: the run after makes records");
        assert_eq!(again, straight, "{mode:?}");
        assert_eq!(resumed.take_notifications(), live.take_notifications(), "{mode:?}");
        assert_eq!(resumed.snapshot_bytes().ok(), live.snapshot_bytes().ok(), "{mode:?}: the same state after");
    }
}

// ------------------------------------------------------------ off and on

#[test]
fn a_disabled_workflow_takes_no_events_and_fires_nothing_until_switched_on() {
    let mut live = wall(compiled(V1));
    let mut records = Vec::new();
    feed_inputs(&mut live, &[Input::Tick(start()), placed("T1", start())], &mut records);
    let off = live.apply(&Input::SetEnabled { workflow: "trade".into(), enabled: false }, &mut records);
    assert_eq!(off, Fed::SetEnabled { workflow: "trade".into(), enabled: false, known: true });
    let unknown = live.apply(&Input::SetEnabled { workflow: "trades".into(), enabled: false }, &mut records);
    assert_eq!(unknown, Fed::SetEnabled { workflow: "trades".into(), enabled: false, known: false });
    feed_inputs(&mut live, &[placed("T2", start() + MINUTE), Input::Tick(start() + 40 * MINUTE)], &mut records);
    assert!(records.is_empty(), "no event taken, no timer fired: {records:?}");
    let engine = live.engine().expect("an engine");
    assert!(engine.instance(0, "T2").is_none(), "the event was not routed");
    assert!(engine.instance(0, "T1").is_some_and(|i| i.is_open()), "the item stays as it was");
    assert!(!engine.is_enabled(0));

    // Off survives a snapshot and an activation, by name.
    let snapshot = live.snapshot_bytes().expect("a snapshot");
    let mut live = Live::resume_bytes(compiled(V1), mon_stdlib::registry(), &snapshot)
        .expect("resumes")
        .with_alerts(BookConfig::default());
    activate(&mut live, 2, edited("then booked within 10m", "then booked within 15m"), &mut records);
    feed_inputs(&mut live, &[Input::Tick(start() + 45 * MINUTE)], &mut records);
    assert!(records.is_empty(), "still off: {records:?}");

    // On again: the deadline that passed meanwhile fires at the next tick.
    live.apply(&Input::SetEnabled { workflow: "trade".into(), enabled: true }, &mut records);
    assert!(records.is_empty());
    feed_inputs(&mut live, &[Input::Tick(start() + 46 * MINUTE)], &mut records);
    let fired: Vec<(Kind, &str, Option<i64>)> = records.iter().map(|r| (r.kind, key(r), r.deadline)).collect();
    let deadline = Some(start() + 30 * MINUTE);
    assert_eq!(fired, [(Kind::AtRisk, "T1", deadline), (Kind::Missing, "T1", deadline)]);
    feed_inputs(&mut live, &[placed("T5", start() + 47 * MINUTE)], &mut records);
    assert!(live.engine().and_then(|e| e.instance(0, "T5")).is_some(), "events are routed again");
}

#[test]
fn a_workflow_switched_off_before_the_first_event_stays_off() {
    for mode in [ClockMode::Wall, ClockMode::Event] {
        let mut live = Live::new(compiled(V1), mon_stdlib::registry(), mode, None);
        let mut records = Vec::new();
        live.apply(&Input::SetEnabled { workflow: "trade".into(), enabled: false }, &mut records);
        let snapshot = live.snapshot_bytes().expect("a snapshot");
        let mut live = Live::resume_bytes(compiled(V1), mon_stdlib::registry(), &snapshot).expect("resumes");
        feed_inputs(
            &mut live,
            &[Input::Tick(start()), placed("T1", start()), Input::Tick(start() + HOUR)],
            &mut records,
        );
        let engine = live.engine().expect("started by the event");
        assert!(engine.instance(0, "T1").is_none(), "{mode:?}");
        assert!(!engine.is_enabled(0), "{mode:?}");
    }
}

#[test]
fn kept_fields_carry_over_where_the_new_rules_still_keep_them() {
    let rules = |within: &str| {
        compiled(&format!(
            r#"
event ordered {{ id: string, qty: int }}
event filled {{ id: string, qty: int }}
workflow order {{
  key id
  expect ordered
  then filled where qty == ordered.qty within {within}
}}
"#
        ))
    };
    let fill = |id: &str, qty: i64, time: i64| line("filled", id, time, &format!(r#"{{"id":"{id}","qty":{qty}}}"#));
    let mut live = wall(rules("10m"));
    let mut records = Vec::new();
    let inputs = [
        Input::Tick(start()),
        line("ordered", "O1", start(), r#"{"id":"O1","qty":5}"#),
        line("ordered", "O2", start(), r#"{"id":"O2","qty":5}"#),
    ];
    feed_inputs(&mut live, &inputs, &mut records);
    activate(&mut live, 2, rules("20m"), &mut records);
    // The guard still reads the quantity kept from `ordered`: 5 fills O1,
    // 6 does not fill O2 (an event the workflow uses but cannot take).
    feed_inputs(&mut live, &[fill("O1", 5, start() + 15 * MINUTE), fill("O2", 6, start() + 15 * MINUTE)], &mut records);
    let engine = live.engine().expect("an engine");
    assert!(engine.instance(0, "O1").is_some_and(|i| !i.is_open()), "O1 filled under the new deadline");
    assert!(engine.instance(0, "O2").is_some_and(|i| i.is_open()), "O2's fill did not match its order");
    assert!(of_kind(&records, Kind::Late).is_empty(), "15 minutes is on time under `within 20m`: {records:?}");
    assert_eq!(of_kind(&records, Kind::Unexpected).iter().map(|r| key(r)).collect::<Vec<_>>(), ["O2"]);
}

#[test]
fn an_occurrence_in_flight_takes_its_new_schedule() {
    let feed = |by: &str| {
        compiled(&format!(
            "event file_received {{ job: string }}\nworkflow feed {{\n  timezone UTC\n  expect file_received where job == \"F\" by {by} every day\n}}\n"
        ))
    };
    let mut live = wall(feed("10:00"));
    let mut records = Vec::new();
    feed_inputs(&mut live, &[Input::Tick(start())], &mut records);
    let migration = activate(&mut live, 2, feed("09:30"), &mut records);
    let carried: Vec<(&str, &str)> = migration.carried.iter().map(|c| (c.key.as_str(), c.stage.as_str())).collect();
    assert_eq!(carried, [("2026-03-02", "")], "today's occurrence, not started");
    let ticks: Vec<Input> = (1..=50).map(|h| Input::Tick(start() + h * 30 * MINUTE)).collect();
    feed_inputs(&mut live, &ticks, &mut records);
    let missing: Vec<(String, Option<i64>)> = of_kind(&records, Kind::Missing)
        .iter()
        .map(|r| (r.key.as_ref().and_then(|k| k.get("date")).cloned().unwrap_or_default(), r.deadline))
        .collect();
    assert_eq!(
        missing,
        [
            ("2026-03-02".to_string(), Some(start() + 30 * MINUTE)),
            ("2026-03-03".to_string(), Some(start() + 24 * HOUR + 30 * MINUTE)),
        ]
    );
}

#[test]
fn rules_activated_before_the_engine_started_are_the_ones_it_starts_with() {
    let v2 = edited("then verified within 30m warn 20m", "then verified within 1h");
    for mode in [ClockMode::Wall, ClockMode::Event] {
        let mut live = Live::new(compiled(V1), mon_stdlib::registry(), mode, None);
        let mut records = Vec::new();
        let migration = activate(&mut live, 2, v2, &mut records);
        assert_eq!(migration, Migration::default(), "{mode:?}: nothing in flight");
        let inputs = [Input::Tick(start()), placed("T1", start()), placed("T2", start() + 2 * HOUR)];
        feed_inputs(&mut live, &[inputs[0].clone(), inputs[1].clone(), Input::Tick(start() + 2 * HOUR)], &mut records);
        feed_inputs(&mut live, &inputs[2..], &mut records);
        let missing: Vec<Option<i64>> = of_kind(&records, Kind::Missing).iter().map(|r| r.deadline).collect();
        assert_eq!(missing, [Some(start() + HOUR)], "{mode:?}");
        assert_eq!(live.program().hash(), v2.hash());
    }
}
