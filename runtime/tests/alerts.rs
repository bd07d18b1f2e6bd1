//! The alert book over replays: each test names the promise it keeps
//! (issue 11: dedup, grouping, ack, suppression, maintenance across both
//! daylight-saving changes, escalation, replay).

use mon_compiler::ir::{Escalation, Program};
use mon_compiler::{compile, NoSchemas, SourceFile};
use mon_runtime::alerts::{Action, AlertState, BookConfig, Command, CommandError, Notification, NotificationEvent};
use mon_runtime::live::{ClockMode, Fed, Input, Live};
use mon_runtime::simulate::Simulation;
use mon_runtime::Record;

const RULES: &str = r#"
event placed { id: string, book: string }
event booked { id: string }
event cancelled { id: string }
channel ops webhook "http://ops.example/hook"
channel pager pagerduty "routing-key"
channel lead email "lead@example.com"
workflow trade {
  key id
  group by book
  notify ops
  notify pager when severity >= critical
  renotify 10m
  expect placed
  then booked within 1m
  step cancel: cancelled after placed -> failure
}
"#;

const MINUTE: i64 = 60_000;

fn program(rules: &str) -> Program {
    let sources = vec![SourceFile { path: "r.mon".into(), text: rules.into() }];
    let compilation = compile(&sources, mon_stdlib::registry(), &NoSchemas);
    compilation.program.unwrap_or_else(|| panic!("rules do not compile: {:?}", compilation.diagnostics))
}

fn at(text: &str) -> i64 {
    mon_stdlib::time::parse_rfc3339(text).expect("an instant")
}

fn event(kind: &str, n: u64, time: i64, data: &str) -> String {
    let time = mon_stdlib::time::format_rfc3339(time);
    format!(r#"{{"type":"{kind}","id":"{kind}-{n}","time":"{time}","data":{data}}}"#)
}

fn placed(n: u64, time: i64) -> String {
    event("placed", n, time, &format!(r#"{{"id":"T{n}","book":"FX"}}"#))
}

/// An event no rule uses: it only moves the virtual clock.
fn clock(time: i64) -> Input {
    Input::Line(event("noise", time as u64, time, "{}"))
}

fn booked(n: u64, time: i64) -> String {
    event("booked", n, time, &format!(r#"{{"id":"T{n}"}}"#))
}

/// Replays `lines` (then up to `until`) with the book on; records and notifications.
fn replay(program: &Program, lines: &[String], until: i64) -> (Vec<Record>, Vec<Notification>) {
    let mut simulation =
        Simulation::new(program, mon_stdlib::registry(), None, Some(until)).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    (records, simulation.notifications)
}

fn brief(n: &Notification) -> String {
    format!("{} {} {} active={} new={} resolved={}", n.channel, n.event.name(), n.step, n.active, n.new, n.resolved)
}

#[test]
fn ten_thousand_stalls_in_a_minute_give_one_grouped_message_then_updates() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    // 10,000 trades placed over one minute, none booked: all missing within a minute.
    let mut lines: Vec<String> = (0..10_000).map(|n| placed(n, start + n as i64 * 6)).collect();
    // Ten more stall a little later, after the first message.
    lines.extend((10_000..10_010).map(|n| placed(n, start + 3 * MINUTE)));
    let (records, notifications) = replay(&program, &lines, start + 20 * MINUTE);
    let missing = records.iter().filter(|r| r.kind.name() == "missing").count();
    assert_eq!(missing, 10_010);
    let sent: Vec<String> = notifications.iter().map(brief).collect();
    // Group wait 30 s after the first missing (08:01:00): one firing with the
    // 5,001 gathered by 08:01:30 (a record at the instant of a message comes
    // first, as engine timers do); the rest and the late ten arrive as
    // updates at the 5-minute group interval; renotify after 10 minutes.
    assert_eq!(
        sent,
        [
            "ops firing booked active=5001 new=5001 resolved=0",
            "ops update booked active=10010 new=5009 resolved=0",
            "ops renotify booked active=10010 new=0 resolved=0",
        ]
    );
    let first = &notifications[0];
    assert_eq!(first.at, at("2026-03-02T08:01:30Z"));
    assert_eq!(first.alerts.len(), 10);
    assert_eq!(first.alerts[0].key["id"], "T0");
    assert_eq!(first.group["book"], "FX");
    assert!(
        first.summary.starts_with("FIRING high trade.booked missing: 5001 items (book=FX) — T0, T1,"),
        "{}",
        first.summary
    );
    assert_eq!(notifications[1].at, at("2026-03-02T08:06:30Z"));
    assert_eq!(notifications[2].at, at("2026-03-02T08:16:30Z"));
    // Ids are distinct and stable per group and message number.
    assert_ne!(notifications[0].id, notifications[1].id);
    assert!(notifications.iter().all(|n| n.group_key == "ops/trade.booked/missing/FX"));
}

#[test]
fn a_late_arrival_resolves_its_missing_alert_and_the_group_says_resolved() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let lines = [placed(1, start), placed(2, start), booked(1, start + 3 * MINUTE), booked(2, start + 4 * MINUTE)];
    let (records, notifications) = replay(&program, &lines, start + 30 * MINUTE);
    assert_eq!(records.iter().filter(|r| r.kind.name() == "late").count(), 2, "the engine still records lateness");
    let sent: Vec<String> = notifications.iter().map(brief).collect();
    // Firing at 08:01:30; both resolve before the group interval ends, so one
    // `resolved` at 08:06:30, and no separate alert for the late steps.
    assert_eq!(sent, ["ops firing booked active=2 new=2 resolved=0", "ops resolved booked active=0 new=0 resolved=2"]);
    assert_eq!(notifications[1].at, at("2026-03-02T08:06:30Z"));
}

#[test]
fn the_book_records_why_an_alert_resolved_and_keeps_an_excerpt() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let lines = [
        placed(1, start),
        placed(2, start),
        booked(1, start + 3 * MINUTE + 4_000),
        event("cancelled", 2, start + 5 * MINUTE, r#"{"id":"T2"}"#),
    ];
    let mut simulation =
        Simulation::new(&program, mon_stdlib::registry(), None, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    let book = simulation.book().expect("alerting is on");
    let alerts: Vec<_> = book.alerts().collect();
    assert_eq!(alerts.len(), 2, "no alert for the late step itself: {alerts:?}");
    let t1 = alerts.iter().find(|a| a.key["id"] == "T1").expect("T1's alert");
    assert_eq!(t1.state, AlertState::Resolved);
    assert_eq!(t1.resolution.as_deref(), Some("booked happened late, by 2m 4s"));
    assert_eq!(t1.excerpt["steps"]["placed"], "2026-03-02T08:00:00Z");
    assert_eq!(t1.group["book"], "FX");
    let t2 = alerts.iter().find(|a| a.key["id"] == "T2").expect("T2's alert");
    assert_eq!(t2.resolution.as_deref(), Some("the item closed"));
    let whats: Vec<&str> = t2.history.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, ["opened", "notified", "resolved"]);
}

/// Feeds lines and commands in order through `Live` on the event clock,
/// as the service does; returns the notifications and command results.
fn live_run(program: &Program, inputs: &[Input]) -> (Vec<Notification>, Vec<Result<AlertState, CommandError>>) {
    let mut live =
        Live::new(program, mon_stdlib::registry(), ClockMode::Event, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    let mut results = Vec::new();
    for input in inputs {
        if let Fed::Command(result) = live.apply(input, &mut records) {
            results.push(result.map(|a| a.state));
        }
    }
    (live.take_notifications(), results)
}

fn alert_id(program: &Program, lines: &[String], key: &str) -> String {
    let (records, _) = replay(program, lines, i64::MAX);
    records
        .iter()
        .find(|r| r.kind.name() == "missing" && r.key.as_ref().is_some_and(|k| k["id"] == key))
        .expect("a missing record")
        .id
        .clone()
}

fn command(alert: &str, action: Action) -> Input {
    Input::Command(Command { alert: alert.into(), action, by: "alice".into(), reason: Some("on it".into()), at: 0 })
}

#[test]
fn an_ack_is_told_at_once_and_stops_renotifying_until_unacknowledged() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(1, start), placed(99, start + 2 * MINUTE)], "T1");
    let tick = |_: u64, minutes: i64| clock(start + minutes * MINUTE);
    let inputs = vec![
        Input::Line(placed(1, start)),
        tick(0, 2), // T1 missing at 08:01, firing at 08:01:30
        command(&id, Action::Ack),
        tick(1, 30), // no renotify while acknowledged
        command(&id, Action::Unack),
        tick(2, 45),
        command("no-such-alert", Action::Ack),
    ];
    let (notifications, results) = live_run(&program, &inputs);
    let sent: Vec<String> = notifications
        .iter()
        .filter(|n| n.step == "booked" && n.alerts.iter().any(|a| a.key["id"] == "T1"))
        .map(|n| format!("{} at {}", n.event.name(), mon_stdlib::time::format_rfc3339(n.at)))
        .collect();
    assert_eq!(
        sent,
        [
            "firing at 2026-03-02T08:01:30Z",
            "acknowledged at 2026-03-02T08:02:00Z",
            "update at 2026-03-02T08:30:00Z",
            "renotify at 2026-03-02T08:40:00Z",
        ]
    );
    let ack = notifications.iter().find(|n| n.event == NotificationEvent::Acknowledged).expect("an ack message");
    assert_eq!(ack.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(results[0], Ok(AlertState::Acknowledged));
    assert_eq!(results[1], Ok(AlertState::Open));
    assert_eq!(results[2], Err(CommandError::NotFound("no-such-alert".into())));
}

#[test]
fn commands_refuse_what_the_state_does_not_allow() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(1, start), placed(9, start + 2 * MINUTE)], "T1");
    let inputs = vec![
        Input::Line(placed(1, start)),
        clock(start + 2 * MINUTE),
        command(&id, Action::Unack),
        command(&id, Action::Suppress { until: Some(start) }),
        command(&id, Action::Resolve),
        command(&id, Action::Ack),
    ];
    let (_, results) = live_run(&program, &inputs);
    assert!(matches!(&results[0], Err(CommandError::Conflict(why)) if why.contains("is open: cannot unacknowledge")));
    assert!(matches!(&results[1], Err(CommandError::Conflict(why)) if why.contains("`until` must be after")));
    assert_eq!(results[2], Ok(AlertState::Resolved));
    assert!(matches!(&results[3], Err(CommandError::Conflict(why)) if why.contains("is resolved")));
}

#[test]
fn a_suppression_ends_at_its_time_and_the_alert_is_told_again() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(1, start), placed(9, start + 2 * MINUTE)], "T1");
    let until = start + 20 * MINUTE;
    let inputs = vec![
        Input::Line(placed(1, start)),
        clock(start + 2 * MINUTE),
        command(&id, Action::Suppress { until: Some(until) }),
        clock(start + 40 * MINUTE),
    ];
    let (notifications, results) = live_run(&program, &inputs);
    assert_eq!(results, [Ok(AlertState::Suppressed)]);
    let t1: Vec<String> = notifications
        .iter()
        .filter(|n| n.alerts.iter().any(|a| a.key["id"] == "T1"))
        .map(|n| format!("{} at {}", n.event.name(), mon_stdlib::time::format_rfc3339(n.at)))
        .collect();
    // Firing at 08:01:30; suppressed at 08:02 (nothing else active:
    // `resolved` for the receiver at the group interval); back at 08:20.
    assert_eq!(
        t1,
        [
            "firing at 2026-03-02T08:01:30Z",
            "resolved at 2026-03-02T08:06:30Z",
            "firing at 2026-03-02T08:20:30Z",
            "renotify at 2026-03-02T08:30:30Z",
        ]
    );
}

#[test]
fn an_unacknowledged_alert_escalates_after_its_delay_and_an_acknowledged_one_does_not() {
    let program = program(&RULES.replace("renotify 10m", "renotify 10m\n  escalate after 15m to lead"));
    let lead = program.channels.iter().position(|c| c.name == "lead").expect("lead") as u32;
    let escalation = Escalation { after_ms: 15 * MINUTE as u64, channel: lead };
    assert!(program.workflows[0].steps.iter().all(|s| s.alerting.escalate == [escalation.clone()]));
    let start = at("2026-03-02T08:00:00Z");
    let acked = alert_id(&program, &[placed(2, start), placed(9, start + 2 * MINUTE)], "T2");
    let inputs = vec![
        Input::Line(placed(1, start)),
        Input::Line(placed(2, start)),
        clock(start + 2 * MINUTE),
        command(&acked, Action::Ack),
        clock(start + 20 * MINUTE),
    ];
    let (notifications, _) = live_run(&program, &inputs);
    let to_lead: Vec<&Notification> = notifications.iter().filter(|n| n.channel == "lead").collect();
    assert_eq!(to_lead.len(), 1, "{:?}", notifications.iter().map(brief).collect::<Vec<_>>());
    let escalation = to_lead[0];
    assert!(escalation.escalated);
    assert_eq!(escalation.event, NotificationEvent::Firing);
    // T1 opened at 08:01 and escalates at 08:16; the lead's group waits 30 s.
    assert_eq!(escalation.at, at("2026-03-02T08:16:30Z"));
    let keys: Vec<&str> = escalation.alerts.iter().map(|a| a.key["id"].as_str()).collect();
    assert_eq!(keys, ["T1"], "the acknowledged T2 does not escalate");
}

#[test]
fn routing_sends_only_alerts_at_or_above_a_channels_severity() {
    let critical = RULES.replace("then booked within 1m", "then booked within 1m severity critical");
    let start = at("2026-03-02T08:00:00Z");
    let lines = [placed(1, start), placed(9, start + 5 * MINUTE)];
    let (_, high) = replay(&program(RULES), &lines, start + 5 * MINUTE);
    let (_, crit) = replay(&program(&critical), &lines, start + 5 * MINUTE);
    let channels = |ns: &[Notification]| ns.iter().map(|n| n.channel.clone()).collect::<Vec<_>>();
    assert_eq!(channels(&high), ["ops"]);
    assert_eq!(channels(&crit), ["ops", "pager"]);
}

#[test]
fn at_risk_is_superseded_by_missing_and_an_alternative_step_ends_both() {
    let rules = RULES.replace("then booked within 1m", "then booked within 1m warn 30s");
    let program = program(&rules);
    let start = at("2026-03-02T08:00:00Z");
    let lines = [placed(1, start), event("cancelled", 1, start + 2 * MINUTE, r#"{"id":"T1"}"#)];
    let mut simulation =
        Simulation::new(&program, mon_stdlib::registry(), None, None).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    let book = simulation.book().expect("alerting is on");
    let mut resolutions: Vec<(String, String)> =
        book.alerts().map(|a| (a.kind.name().to_string(), a.resolution.clone().unwrap_or_default())).collect();
    resolutions.sort();
    assert_eq!(
        resolutions,
        [
            ("at_risk".to_string(), "superseded: booked is now missing".to_string()),
            ("missing".to_string(), "the item closed".to_string()),
        ]
    );
}

/// A weekly window over a night when the clocks change: alerts whose
/// records fall inside it are suppressed, and only those.
fn maintenance_case(window: &str, instants: &[&str]) -> Vec<(String, AlertState)> {
    let rules = format!("{RULES}\nmaintenance night {window} for trade\n");
    let program = program(&rules);
    let mut lines = Vec::new();
    for (n, instant) in instants.iter().enumerate() {
        // Placed a minute before: its `missing` record is made at `instant`.
        lines.push(placed(n as u64, at(instant) - MINUTE));
    }
    lines.sort_by_key(|l| l[l.find("\"time\"").unwrap_or(0)..].to_string());
    let end = at(instants.last().expect("instants")) + MINUTE;
    let mut simulation =
        Simulation::new(&program, mon_stdlib::registry(), None, Some(end)).with_alerts(BookConfig::default());
    let mut records = Vec::new();
    for line in &lines {
        simulation.feed(line, &mut records);
    }
    simulation.finish(&mut records);
    let book = simulation.book().expect("alerting is on");
    let mut states: Vec<(i64, String, AlertState)> =
        book.alerts().map(|a| (a.opened_at, mon_stdlib::time::format_rfc3339(a.opened_at), a.state)).collect();
    states.sort_by_key(|s| s.0);
    let sent_keys: Vec<String> =
        simulation.notifications.iter().flat_map(|n| n.alerts.iter().map(|a| a.key["id"].clone())).collect();
    for (n, state) in states.iter().enumerate() {
        let key = format!("T{n}");
        assert_eq!(state.2 == AlertState::Suppressed, !sent_keys.contains(&key), "{key}: {state:?}");
    }
    states.into_iter().map(|(_, at, state)| (at, state)).collect()
}

#[test]
fn a_maintenance_window_across_the_october_change_suppresses_exactly_the_alerts_inside_it() {
    // Europe/London leaves BST at 2026-10-25 01:00 UTC: Saturday 22:00 local
    // is 21:00 UTC, Sunday 06:00 local is 06:00 UTC.
    let states = maintenance_case(
        "every sat 22:00 to sun 06:00 Europe/London",
        &["2026-10-24T20:59:00Z", "2026-10-24T21:00:00Z", "2026-10-25T05:59:00Z", "2026-10-25T06:00:00Z"],
    );
    use AlertState::{Open, Suppressed};
    let expected = [
        ("2026-10-24T20:59:00Z", Open),
        ("2026-10-24T21:00:00Z", Suppressed),
        ("2026-10-25T05:59:00Z", Suppressed),
        ("2026-10-25T06:00:00Z", Open),
    ];
    assert_eq!(states, expected.map(|(a, s)| (a.to_string(), s)));
}

#[test]
fn a_maintenance_window_across_the_march_change_suppresses_exactly_the_alerts_inside_it() {
    // Europe/London enters BST at 2026-03-29 01:00 UTC: Saturday 22:00 local
    // is 22:00 UTC, Sunday 06:00 local is 05:00 UTC.
    let states = maintenance_case(
        "every sat 22:00 to sun 06:00 Europe/London",
        &["2026-03-28T21:59:00Z", "2026-03-28T22:00:00Z", "2026-03-29T04:59:00Z", "2026-03-29T05:00:00Z"],
    );
    use AlertState::{Open, Suppressed};
    let expected = [
        ("2026-03-28T21:59:00Z", Open),
        ("2026-03-28T22:00:00Z", Suppressed),
        ("2026-03-29T04:59:00Z", Suppressed),
        ("2026-03-29T05:00:00Z", Open),
    ];
    assert_eq!(states, expected.map(|(a, s)| (a.to_string(), s)));
}

#[test]
fn a_replay_resumed_from_a_snapshot_gives_the_same_book_and_notifications() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    let id = alert_id(&program, &[placed(3, start + 3000), placed(99, start + 2 * MINUTE)], "T3");
    let mut inputs: Vec<Input> = (0..6).map(|n| Input::Line(placed(n, start + n as i64 * 1000))).collect();
    inputs.push(Input::Line(booked(1, start + 90_000)));
    inputs.push(clock(start + 2 * MINUTE));
    inputs.push(command(&id, Action::Ack));
    inputs.push(Input::Line(placed(50, start + 3 * MINUTE)));
    inputs.extend((0..4).map(|n| clock(start + (5 + 5 * n as i64) * MINUTE)));

    let (whole, _) = live_run(&program, &inputs);
    for split in 1..inputs.len() {
        let mut live =
            Live::new(&program, mon_stdlib::registry(), ClockMode::Event, None).with_alerts(BookConfig::default());
        let mut records = Vec::new();
        for input in &inputs[..split] {
            live.apply(input, &mut records);
        }
        let mut notifications = live.take_notifications();
        let snapshot = live.snapshot_bytes().expect("a snapshot");
        let mut resumed = Live::resume_bytes(&program, mon_stdlib::registry(), &snapshot)
            .expect("resumes")
            .with_alerts(BookConfig::default());
        for input in &inputs[split..] {
            resumed.apply(input, &mut records);
        }
        notifications.extend(resumed.take_notifications());
        assert_eq!(notifications, whole, "split at {split}");
    }
    assert!(whole.iter().any(|n| n.acknowledged == 1), "the replay includes an ack");
    assert!(whole.len() >= 3, "{:?}", whole.iter().map(brief).collect::<Vec<_>>());
}

#[test]
fn alerting_turned_off_drops_the_book_a_snapshot_brought_back() {
    let program = program(RULES);
    let start = at("2026-03-02T08:00:00Z");
    for mode in [ClockMode::Event, ClockMode::Wall] {
        let mut live = Live::new(&program, mon_stdlib::registry(), mode, None).with_alerts(BookConfig::default());
        let mut records = Vec::new();
        live.apply(&Input::Tick(start), &mut records);
        live.apply(&Input::Line(placed(1, start)), &mut records);
        let snapshot = live.snapshot_bytes().expect("a snapshot");
        let resumed = Live::resume_bytes(&program, mon_stdlib::registry(), &snapshot).expect("resumes");
        assert!(resumed.book().is_some(), "{mode:?}: the snapshot carries the book");
        assert!(resumed.without_alerts().book().is_none(), "{mode:?}");
    }
}
